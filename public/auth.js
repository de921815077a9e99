// Email/password sign-up against the Firebase Auth emulator's REST API (the calls the
// Firebase JS SDK makes), with the session kept in localStorage so a reload stays signed in.

import { ApiError } from "./client.js";

const USER = "authUser";

export class Auth {
  constructor({ authEmulatorUrl, apiKey }) {
    this.base = authEmulatorUrl.replace(/\/$/, "");
    this.apiKey = apiKey;
  }

  get user() {
    const saved = localStorage.getItem(USER);
    return saved ? JSON.parse(saved) : null;
  }

  async signUp(email, password) {
    const data = await this.post("identitytoolkit.googleapis.com/v1/accounts:signUp",
      { email, password, returnSecureToken: true });
    return this.keep({ email: data.email, uid: data.localId, idToken: data.idToken,
                       refreshToken: data.refreshToken, expiresIn: data.expiresIn });
  }

  // The ID token, refreshed when it is (about to be) expired; null when signed out.
  async getIdToken() {
    const user = this.user;
    if (!user) return null;
    if (Date.now() < user.expiresAt - 60_000) return user.idToken;
    const data = await this.post("securetoken.googleapis.com/v1/token",
      { grant_type: "refresh_token", refresh_token: user.refreshToken });
    return this.keep({ ...user, idToken: data.id_token, refreshToken: data.refresh_token,
                       expiresIn: data.expires_in }).idToken;
  }

  signOut() {
    localStorage.removeItem(USER);
  }

  keep({ expiresIn, ...user }) {
    const saved = { ...user, expiresAt: Date.now() + Number(expiresIn || 3600) * 1000 };
    localStorage.setItem(USER, JSON.stringify(saved));
    return saved;
  }

  async post(path, body) {
    let response;
    try {
      response = await fetch(`${this.base}/${path}?key=${encodeURIComponent(this.apiKey)}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError("network", `Could not reach the Auth emulator: ${error.message}`);
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const message = (data.error && data.error.message) || `HTTP ${response.status}`;
      throw new ApiError("auth", `Sign-up failed: ${message}`, response.status);
    }
    return data;
  }
}
