// A thin client for the visitor-sessions functions, meant to be copied into a real app.
//
//   const api = new Client({ functionsUrl: "/api", getIdToken: async () => token });
//   const session = await api.createSession({ experimentId: "demo" });
//
// Guests are identified by a key kept in localStorage (made once with crypto.randomUUID());
// a signed-in user by a Firebase ID token. Every error answer ({"error": {"code", "message"}})
// becomes an ApiError carrying that code; a request the browser could not make (network
// down, refused by CORS) becomes an ApiError with code "network".

const GUEST_KEY = "guestKey";

export class ApiError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
  }
}

export function guestKey({ create = true } = {}) {
  let key = localStorage.getItem(GUEST_KEY);
  if (!key && create) {
    key = crypto.randomUUID();
    localStorage.setItem(GUEST_KEY, key);
  }
  return key;
}

export function forgetGuestKey() {
  localStorage.removeItem(GUEST_KEY);
}

export class Client {
  // functionsUrl: where /<function_name> lives ("/api" behind Firebase Hosting's rewrites).
  // getIdToken: async () => the signed-in user's ID token, or null for a guest.
  constructor({ functionsUrl, getIdToken = async () => null }) {
    this.functionsUrl = functionsUrl.replace(/\/$/, "");
    this.getIdToken = getIdToken;
  }

  createSession(body = {}) {
    return this.call("create_session", { method: "POST", body });
  }

  submitResponse({ sessionId, data, level, responseId = crypto.randomUUID() }) {
    return this.call("submit_response", { method: "POST", body: { sessionId, data, level, responseId } });
  }

  getVisitor() {
    return this.call("get_visitor", { method: "GET" });
  }

  // Right after sign-up: both headers, so the user claims the guest's sessions.
  // Safe to repeat; the guest key is forgotten once it has succeeded.
  async register(body = {}) {
    const result = await this.call("register", { method: "POST", body, withGuestKey: true });
    forgetGuestKey();
    return result;
  }

  async call(name, { method, body, withGuestKey = false }) {
    const headers = {};
    const token = await this.getIdToken();
    if (token) headers["Authorization"] = `Bearer ${token}`;
    if (!token || withGuestKey) {
      const key = guestKey({ create: !token });
      if (key) headers["X-Guest-Key"] = key;
    }
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(`${this.functionsUrl}/${name}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError("network", `Could not reach ${name} (network error, or refused by CORS): ${error.message}`);
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      payload = null;
    }
    if (!response.ok) {
      const error = payload && payload.error;
      throw new ApiError(
        (error && error.code) || "http_error",
        (error && error.message) || `${name} answered HTTP ${response.status}`,
        response.status,
      );
    }
    return payload;
  }
}
