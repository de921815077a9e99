// A thin client for the visitor-sessions functions, meant to be copied into a real app.
//
//   const api = new Client({ functionsUrl: "/api", getIdToken: async () => token });
//   const session = await api.createSession({ experimentId: "demo" });
//
// Guests are identified by a key kept in localStorage (made once with crypto.randomUUID());
// a signed-in user by a Firebase ID token. Every error answer ({"error": {"code", "message"}})
// becomes an ApiError carrying that code; a request the browser could not make (network
// down, refused by CORS) becomes an ApiError with code "network".
//
// A 503 (the database unavailable) is tried once more after its Retry-After. That is safe
// because every write carries its own id: createSession a sessionId and submitResponse a
// responseId (made here unless given), and register may be repeated. A 503 after a timeout
// may come from a request the database ran after all; the retry then answers 200 with it.

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
  // getAppCheckToken: async () => an App Check token for X-Firebase-AppCheck, or null
  //   (startAppCheck in app_check.js; null or absent: no header).
  constructor({ functionsUrl, getIdToken = async () => null, getAppCheckToken = null }) {
    this.functionsUrl = functionsUrl.replace(/\/$/, "");
    this.getIdToken = getIdToken;
    this.getAppCheckToken = getAppCheckToken || (async () => null);
  }

  createSession({ sessionId = crypto.randomUUID(), ...body } = {}) {
    return this.call("create_session", { method: "POST", body: { sessionId, ...body } });
  }

  submitResponse({ sessionId, data, level, responseId = crypto.randomUUID() }) {
    return this.call("submit_response", { method: "POST", body: { sessionId, data, level, responseId } });
  }

  getVisitor() {
    return this.call("get_visitor", { method: "GET" });
  }

  // Right after sign-up or sign-in: the user's token and the visitor to claim (docs/api.md), one of
  //   - this browser's guest (X-Guest-Key; the default), forgotten once the claim succeeded;
  //   - an anonymous account: {anonymousToken} (its ID token, taken before signing in);
  //   - a guest or anonymous account of another device: body {claimCode}.
  // Safe to repeat: a second call claims nothing more.
  async register(body = {}, { anonymousToken = null } = {}) {
    const byGuestKey = !anonymousToken && body.claimCode === undefined;
    const result = await this.call("register", {
      method: "POST",
      body,
      withGuestKey: byGuestKey,
      headers: anonymousToken ? { "X-Anonymous-Token": anonymousToken } : {},
    });
    if (byGuestKey) forgetGuestKey();
    return result;
  }

  // Before each upload: {ticket, expiresAt, path} for the file `name` in one of the caller's
  // sessions. Upload to `path` with the ticket in the object's custom metadata as uploadTicket
  // (Storage.upload): the storage trigger deletes an upload without a valid one (docs/api.md).
  createUploadTicket({ sessionId, name }) {
    return this.call("create_upload_ticket", { method: "POST", body: { sessionId, name } });
  }

  // A code that lets a signed-in user on another device claim this guest or anonymous account:
  // {claimCode, expiresAt}. A new code replaces the last one.
  createClaimCode() {
    return this.call("create_claim_code", { method: "POST", body: {} });
  }

  // A researcher's figures (docs/researchers.md): {generatedAt, experiments: [...]}.
  getStudyStats({ experimentId } = {}) {
    return this.call("get_study_stats", { method: "GET", query: { experimentId } });
  }

  // The researchers' trail (docs/researchers.md), for `researcher: true` only: {actions: [...], limit},
  // the latest acts (exports, erasures) newest first.
  getResearcherActions() {
    return this.call("get_researcher_actions", { method: "GET" });
  }

  // A researcher's export (docs/researchers.md): {blob, filename}. params: format, table, experimentId
  // (a string or a list), from, to. The whole file is read into browser memory (a Blob): fine
  // for a page that saves it at once, not for an app that would stream it.
  exportData(params = {}) {
    return this.call("export_data", { method: "GET", query: params, file: true });
  }

  async call(name, request) {
    try {
      return await this.callOnce(name, request);
    } catch (error) {
      if (error.code !== "unavailable") throw error;
      await new Promise((resolve) => setTimeout(resolve, retryAfterMs(error.retryAfter)));
      return this.callOnce(name, request);
    }
  }

  async callOnce(name, { method, body, query, file = false, withGuestKey = false, headers: extra = {} }) {
    const headers = { ...extra };
    const token = await this.getIdToken();
    if (token) headers["Authorization"] = `Bearer ${token}`;
    if (!token || withGuestKey) {
      const key = guestKey({ create: !token });
      if (key) headers["X-Guest-Key"] = key;
    }
    const appCheckToken = await this.getAppCheckToken();
    if (appCheckToken) headers["X-Firebase-AppCheck"] = appCheckToken;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(`${this.functionsUrl}/${name}${queryString(query)}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError("network", `Could not reach ${name} (network error, or refused by CORS): ${error.message}`);
    }
    if (response.ok && file) {
      const filename = filenameOf(response.headers.get("Content-Disposition"));
      return { blob: await response.blob(), filename };
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch {
      payload = null;
    }
    if (!response.ok) {
      const error = payload && payload.error;
      const failure = new ApiError(
        (error && error.code) || "http_error",
        (error && error.message) || `${name} answered HTTP ${response.status}`,
        response.status,
      );
      failure.retryAfter = response.headers.get("Retry-After");
      throw failure;
    }
    return payload;
  }
}

// Retry-After in seconds (the functions send whole seconds), within 0.5-10 s.
function retryAfterMs(header) {
  const seconds = Number.parseInt(header, 10);
  return Math.min(Math.max(Number.isFinite(seconds) ? seconds : 2, 0.5), 10) * 1000;
}

// "?a=1&b=x&b=y" from {a: 1, b: ["x", "y"]}; undefined, null and "" are left out.
function queryString(query = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    for (const item of [value].flat()) {
      if (item !== undefined && item !== null && item !== "") params.append(key, String(item));
    }
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

// The file name of `Content-Disposition: attachment; filename="..."`; null when the header is
// absent or not readable (another origin must list it in Access-Control-Expose-Headers).
function filenameOf(header) {
  const match = /filename="([^"]+)"|filename=([^;\s]+)/i.exec(header || "");
  return match ? match[1] || match[2] : null;
}
