// Email/password sign-up and sign-in with the Firebase JS SDK (bundled from npm), on the Auth
// emulator when config.authEmulatorUrl is set. The SDK keeps the user in IndexedDB, so a reload
// stays signed in, and refreshes the ID token when it expires.

import { initializeApp } from "firebase/app";
import {
  browserLocalPersistence,
  connectAuthEmulator,
  createUserWithEmailAndPassword,
  indexedDBLocalPersistence,
  initializeAuth,
  signInWithEmailAndPassword,
  signOut,
} from "firebase/auth";

import { ApiError } from "./client.js";

export class Auth {
  // Resolves once the SDK has restored the user of an earlier visit (or knows there is none).
  static async start({ firebase, authEmulatorUrl }) {
    // initializeAuth rather than getAuth: email/password only, so no popup/redirect
    // resolver and nothing loaded from the authDomain.
    const auth = initializeAuth(initializeApp(firebase), {
      persistence: [indexedDBLocalPersistence, browserLocalPersistence],
    });
    if (authEmulatorUrl) connectAuthEmulator(auth, authEmulatorUrl, { disableWarnings: true });
    await auth.authStateReady();
    return new Auth(auth);
  }

  constructor(auth) {
    this.auth = auth;
  }

  get user() {
    return this.auth.currentUser;
  }

  async signUp(email, password) {
    try {
      return (await createUserWithEmailAndPassword(this.auth, email, password)).user;
    } catch (error) {
      // error.code is the SDK's, e.g. "auth/email-already-in-use".
      throw new ApiError(error.code || "auth", `Sign-up failed: ${error.message}`);
    }
  }

  async signIn(email, password) {
    try {
      return (await signInWithEmailAndPassword(this.auth, email, password)).user;
    } catch (error) {
      throw new ApiError(error.code || "auth", `Sign-in failed: ${error.message}`);
    }
  }

  signOut() {
    return signOut(this.auth);
  }

  // The signed-in user's custom claims ({} for a guest). refresh: ask for a new token first, so
  // that a claim granted or revoked since the last token shows.
  async claims({ refresh = false } = {}) {
    return this.user ? (await this.user.getIdTokenResult(refresh)).claims : {};
  }

  // The signed-in user's ID token (the SDK refreshes it when needed); null for a guest.
  getIdToken() {
    return this.user ? this.user.getIdToken() : Promise.resolve(null);
  }
}
