// Email/password sign-up and sign-in with the Firebase JS SDK (bundled from npm), on the Auth
// emulator when config.authEmulatorUrl is set. The SDK keeps the user in IndexedDB, so a reload
// stays signed in, and refreshes the ID token when it expires. In the anonymous-auth mode
// (config.anonymousAuth) the guest is a Firebase anonymous account (signInAnonymously), and
// signing up links it to the email credential (same uid, docs/api.md).

import { initializeApp } from "firebase/app";
import {
  browserLocalPersistence,
  connectAuthEmulator,
  createUserWithEmailAndPassword,
  EmailAuthProvider,
  indexedDBLocalPersistence,
  initializeAuth,
  linkWithCredential,
  signInAnonymously,
  signInWithCredential,
  signInWithEmailAndPassword,
  signOut,
} from "firebase/auth";

import { ApiError } from "@visitor-sessions/client";

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

  get app() {
    return this.auth.app;
  }

  get user() {
    return this.auth.currentUser;
  }

  // A user who signed up or in (not a guest, not an anonymous account); null otherwise.
  get signedIn() {
    const user = this.auth.currentUser;
    return user && !user.isAnonymous ? user : null;
  }

  // The anonymous account this page's guest is (anonymous-auth mode), made on first use.
  async anonymousUser() {
    if (this.user) return this.user;
    try {
      return (await signInAnonymously(this.auth)).user;
    } catch (error) {
      throw authError("Could not start as a guest", error);
    }
  }

  async signUp(email, password) {
    try {
      return (await createUserWithEmailAndPassword(this.auth, email, password)).user;
    } catch (error) {
      throw authError("Sign-up failed", error);
    }
  }

  async signIn(email, password) {
    try {
      return (await signInWithEmailAndPassword(this.auth, email, password)).user;
    } catch (error) {
      throw authError("Sign-in failed", error);
    }
  }

  // Sign-up of the current anonymous account: link it to the email credential, so the uid and
  // everything under it stay (then register claims nothing: {anonymousToken: null}). When the
  // credential belongs to an account that exists already, Firebase refuses the link
  // (auth/email-already-in-use for an email credential; auth/credential-already-in-use for an
  // OAuth one, whose credential an app takes from GoogleAuthProvider.credentialFromError(error)):
  // then sign in to that account instead, and hand back the anonymous account's ID token, taken
  // before signing in, for register's X-Anonymous-Token, which moves its data there (docs/api.md).
  async linkOrSignIn(email, password) {
    const anonymous = this.user;
    const credential = EmailAuthProvider.credential(email, password);
    try {
      await linkWithCredential(anonymous, credential);
      await anonymous.getIdToken(true); // a token that says the new provider, for register
      return { anonymousToken: null };
    } catch (error) {
      if (error.code !== "auth/email-already-in-use" && error.code !== "auth/credential-already-in-use") {
        throw authError("Sign-up failed", error);
      }
    }
    const anonymousToken = await anonymous.getIdToken();
    try {
      await signInWithCredential(this.auth, credential);
    } catch (error) {
      throw authError("This email already has an account, and signing in to it failed", error);
    }
    return { anonymousToken };
  }

  // Sign-in to an existing account from the current anonymous account: the anonymous account's
  // ID token, taken before signing in, for register's X-Anonymous-Token (null without one).
  async signInFromAnonymous(email, password) {
    const anonymousToken = this.user && this.user.isAnonymous ? await this.user.getIdToken() : null;
    await this.signIn(email, password);
    return { anonymousToken };
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

// The Firebase Auth error codes a person can act on, as sentences; others keep the SDK's text.
const AUTH_ERRORS = {
  "auth/email-already-in-use": "an account with this email exists already: use \u201cI already have an account\u201d",
  "auth/invalid-credential": "the email or the password is not right",
  "auth/wrong-password": "the email or the password is not right",
  "auth/user-not-found": "there is no account with this email",
  "auth/invalid-email": "this is not an email address",
  "auth/weak-password": "the password is too short: use at least 6 characters",
  "auth/too-many-requests": "too many attempts: wait a few minutes and try again",
  "auth/network-request-failed": "the sign-in service could not be reached",
};

function authError(what, error) {
  const sentence = AUTH_ERRORS[error.code] || error.message;
  return new ApiError(error.code || "auth", `${what}: ${sentence}.`);
}
