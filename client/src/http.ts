// Calls to the functions (SPEC §4): one JSON request, its error answer turned into an ApiError
// with the server's code, and a request the browser could not make turned into code "network"
// with the likely cause named (a page on another origin that the functions do not allow is the
// usual one: the browser hides the refusal from the page and the server sees nothing).

import { randomUuid } from "./uuid.js";

const GUEST_KEY = "guestKey"; // localStorage: one guest per browser
let memoryGuestKey: string | null = null;

/** An error answer of a function, or "network" when no answer came. */
export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  /** The error object's other fields (`stored` of incomplete, `index` of a batch item). */
  readonly details: Record<string, unknown>;
  /** Seconds from Retry-After, when the answer had one. */
  readonly retryAfter: number | null;

  constructor(code: string, message: string, status = 0, details: Record<string, unknown> = {}, retryAfter: number | null = null) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}

/** True for what is worth trying again later: no answer, 429, 5xx. */
export function transient(error: unknown): boolean {
  return error instanceof ApiError && (error.status === 0 || error.status === 429 || error.status >= 500);
}

/** This browser's guest key (localStorage; in memory where storage is refused, as in some iframes). */
export function guestKey(): string {
  try {
    let key = localStorage.getItem(GUEST_KEY);
    if (!key) {
      key = randomUuid();
      localStorage.setItem(GUEST_KEY, key);
    }
    return key;
  } catch {
    memoryGuestKey ??= randomUuid();
    return memoryGuestKey;
  }
}

/** This browser's guest key if it has one (none is made). */
export function storedGuestKey(): string | null {
  try {
    return localStorage.getItem(GUEST_KEY);
  } catch {
    return memoryGuestKey;
  }
}

/** Forget this browser's guest key: after a claim (the account holds its data) or a withdrawal. */
export function forgetGuestKey(): void {
  memoryGuestKey = null;
  try {
    localStorage.removeItem(GUEST_KEY);
  } catch {
    // storage refused: the memory key was the only one
  }
}

export interface Credentials {
  /** The signed-in user's Firebase ID token, or null for a guest; `refresh` after a 401. */
  getIdToken?: (refresh?: boolean) => Promise<string | null> | string | null;
  /** An App Check token for X-Firebase-AppCheck, or null. */
  getAppCheckToken?: () => Promise<string | null> | string | null;
}

export class Api {
  readonly base: string;
  private credentials: Credentials;
  /** The headers of the last request: what a keepalive send on pagehide reuses (no await there). */
  lastHeaders: Record<string, string> = {};

  constructor(functionsUrl: string, credentials: Credentials) {
    this.base = functionsUrl.replace(/\/+$/, "");
    this.credentials = credentials;
  }

  async headers(refresh = false): Promise<Record<string, string>> {
    const headers: Record<string, string> = {};
    const token = this.credentials.getIdToken ? await this.credentials.getIdToken(refresh) : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    else headers["X-Guest-Key"] = guestKey();
    const appCheck = this.credentials.getAppCheckToken ? await this.credentials.getAppCheckToken() : null;
    if (appCheck) headers["X-Firebase-AppCheck"] = appCheck;
    this.lastHeaders = headers;
    return headers;
  }

  /**
   * POST (with a body) or GET one function; a 401 fetches the ID token again and retries once.
   * `query`: GET parameters (a list repeats the parameter); `headers`: more request headers.
   */
  async call<T = any>(name: string, body?: unknown, options: CallOptions = {}): Promise<T> {
    return (await this.request(name, body, options, false)) as T;
  }

  /** A function that answers a file (export_data): its Blob and the file name it suggests. */
  async download(name: string, query: Query = {}): Promise<{ blob: Blob; filename: string | null }> {
    return (await this.request(name, undefined, { query }, true)) as { blob: Blob; filename: string | null };
  }

  private async request(name: string, body: unknown, options: CallOptions, file: boolean): Promise<unknown> {
    try {
      return await this.once(name, body, options, file, false);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401 && this.credentials.getIdToken)) throw error;
      return this.once(name, body, options, file, true);
    }
  }

  private async once(name: string, body: unknown, options: CallOptions, file: boolean, refresh: boolean): Promise<unknown> {
    const headers = { ...(await this.headers(refresh)), ...options.headers };
    const url = `${this.base}/${name}${queryString(options.query)}`;
    let response: Response;
    try {
      response = await fetch(url, {
        method: body === undefined ? "GET" : "POST",
        headers: body === undefined ? headers : { ...headers, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError("network", networkMessage(name, url, error));
    }
    if (response.ok && file) {
      const disposition = /filename="([^"]+)"|filename=([^;\s]+)/i.exec(response.headers.get("Content-Disposition") || "");
      return { blob: await response.blob(), filename: disposition ? disposition[1] || disposition[2] : null };
    }
    let payload: any = null;
    try {
      payload = await response.json();
    } catch {
      payload = null;
    }
    if (response.ok) return payload;
    const { code, message, ...details } = (payload && payload.error) || {};
    const seconds = Number.parseFloat(response.headers.get("Retry-After") || "");
    throw new ApiError(
      code || "http_error",
      message || `${name} answered HTTP ${response.status}`,
      response.status,
      details,
      Number.isFinite(seconds) ? seconds : null,
    );
  }
}

export type Query = Record<string, string | number | boolean | null | undefined | (string | number)[]>;

export interface CallOptions {
  query?: Query;
  headers?: Record<string, string>;
}

/** "?a=1&b=x&b=y" from {a: 1, b: ["x", "y"]}; undefined, null and "" are left out. */
function queryString(query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    for (const item of [value].flat()) {
      if (item !== undefined && item !== null && item !== "") params.append(key, String(item));
    }
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** What most likely stopped a request that got no answer at all. */
export function networkMessage(name: string, url: string, error: unknown): string {
  const reason = error instanceof Error ? error.message : String(error);
  if (typeof navigator !== "undefined" && navigator.onLine === false) {
    return `Could not reach ${name}: this browser is offline (${reason}); it will try again`;
  }
  const origin = typeof location !== "undefined" ? location.origin : "this page's origin";
  const other = !url.startsWith(origin + "/") && /^https?:/.test(url);
  return (
    `Could not reach ${name} at ${url} (${reason}): ` +
    (other
      ? `refused by CORS? the page's origin ${origin} must be in the functions' ALLOWED_ORIGINS; ` +
        "or the functionsUrl is wrong, or the network is down"
      : "the functionsUrl is wrong, or the network is down")
  );
}
