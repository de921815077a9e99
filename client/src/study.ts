// A study: one session of an experiment in this browser, its outbox, its completion and uploads
// (SPEC §15). Everything recorded waits in the outbox (outbox.ts) until the server answered for
// it; one loop sends it in order, in batches of submit_response's batch form (SPEC §14.6).

import { Api, ApiError, transient, type Credentials } from "./http.js";
import { openStore, type Item, type Place, type Store } from "./outbox.js";
import { randomUuid, uuidV5 } from "./uuid.js";

/** The most a response's data may weigh (SPEC §4, submit_response). */
export const MAX_RESPONSE_BYTES = 64 * 1024;
/** The most a request body may weigh (SPEC §4), less room for the batch's envelope. */
const MAX_BATCH_BYTES = 256 * 1024 - 1024;
const MAX_BATCH_ITEMS = 500;
/** What a keepalive fetch on pagehide may carry (browsers allow 64 KiB for all of them). */
const KEEPALIVE_BYTES = 60 * 1024;

const utf8 = new TextEncoder();

/** A recruitment platform's participant (SPEC §14.3), as fromUrl reads it from the study URL. */
export interface Participant {
  participantId?: string;
  studyId?: string;
  submissionId?: string;
  assignmentId?: string;
  hitId?: string;
  turkSubmitTo?: string;
  /** An MTurk HIT's preview: start makes no call and the study records nothing. */
  preview?: boolean;
}

export interface StartOptions extends Credentials {
  /** Where /<function_name> lives (for example "/api" behind Firebase Hosting). */
  functionsUrl: string;
  experimentId: string;
  participant?: Participant | null;
  /** A researcher's test run (needs getIdToken of a researcher of the experiment). */
  test?: boolean;
  /** create_session's metadata (a JSON object, at most 16 KiB). */
  metadata?: Record<string, unknown>;
}

export interface Status {
  /** Responses recorded and not yet stored by the server. */
  pending: number;
  /** False when the outbox lives in memory only (IndexedDB unavailable): a closed tab loses it. */
  durable: boolean;
  /** Since when (ms since the epoch) sending has been failing and waiting to try again; null when not. */
  waitingSince: number | null;
  /** The last failure, or a response the server refused (set aside), or the error that stopped the study. */
  lastError: { code: string; message: string } | null;
  /** Responses the server refused (400) and that were set aside: never sent again. */
  rejected: number;
  /** True once a 403/404 (session claimed, withdrawn) stopped the study: nothing more is sent. */
  stopped: boolean;
}

export interface RecordOptions {
  /** The response's name within the session: the same key twice is one response. Default: a new one. */
  key?: string;
  level?: number | null;
}

export interface Completion {
  redirectUrl: string | null;
  completionCode: string | null;
}

/** What upload needs of the Firebase Storage SDK: `import {getStorage, ref, uploadBytes} from "firebase/storage"`. */
export interface StorageSdk {
  storage: unknown;
  ref: (storage: any, path: string) => any;
  uploadBytes: (ref: any, data: Blob | Uint8Array | ArrayBuffer, metadata?: any) => Promise<unknown>;
}

export interface Upload {
  name: string;
  contentType: string | null;
  size: number;
  uploadedAt: string;
}

/** Wait before the n-th try again (n >= 1): 0.5 s doubling to 30 s, at least Retry-After. */
export function backoffMs(failures: number, retryAfter: number | null = null): number {
  const grown = Math.min(30_000, 500 * 2 ** Math.max(0, failures - 1)) * (0.8 + Math.random() * 0.4);
  return retryAfter === null ? grown : Math.max(Math.min(retryAfter, 600) * 1000, failures > 1 ? grown : 0);
}

/** The JSON of `data` and its size, or the reason it cannot be a response. */
export function encode(data: unknown): { text: string; bytes: number } {
  let text: string | undefined;
  try {
    text = JSON.stringify(data);
  } catch (error) {
    throw new ApiError("invalid_argument", `The data is not JSON: ${(error as Error).message}`, 400);
  }
  if (text === undefined) throw new ApiError("invalid_argument", "The data is not JSON (undefined, a function or a symbol)", 400);
  const bytes = utf8.encode(text).length;
  if (bytes > MAX_RESPONSE_BYTES) {
    throw new ApiError("payload_too_large", `The data is ${bytes} bytes of JSON, more than a response may hold (${MAX_RESPONSE_BYTES})`, 413);
  }
  return { text, bytes };
}

export class Study extends EventTarget {
  readonly sessionId: string;
  readonly experimentId: string;
  readonly visitorNumber: number | null;
  /** The participant's condition (SPEC §14.2), or null where the experiment has none. */
  readonly condition: string | null;
  /** Which page load of this session in this browser this is: 1, 2, … */
  readonly attempt: number;
  /** An MTurk preview: nothing is recorded or sent. */
  readonly preview: boolean;

  private items = new Map<string, Item>();
  private nextSeq = 0;
  private sending: Promise<void> | null = null;
  private uploads = new Set<Promise<unknown>>();
  private completing: Promise<Completion> | null = null;
  private completion: Completion | null = null;
  private batchBytes = MAX_BATCH_BYTES;
  private waitingSince: number | null = null;
  private lastError: { code: string; message: string } | null = null;
  private stoppedBy: ApiError | null = null;
  private leaving = false;

  /** @internal Made by start(). */
  constructor(
    private api: Api | null,
    private store: Store,
    private place: Place | null,
    answer: { sessionId: string; visitorNumber?: number | null; condition?: string | null; experimentId: string },
    items: Item[] = [],
  ) {
    super();
    this.sessionId = answer.sessionId;
    this.experimentId = answer.experimentId;
    this.visitorNumber = answer.visitorNumber ?? null;
    this.condition = answer.condition ?? null;
    this.attempt = place ? place.loads : 1;
    this.preview = api === null;
    for (const item of items.sort((a, b) => a.seq - b.seq)) {
      this.items.set(item.responseId, item);
      this.nextSeq = item.seq + 1;
    }
    if (!this.preview && typeof addEventListener === "function") {
      addEventListener("visibilitychange", this.sendOnLeaving);
      addEventListener("pagehide", this.sendOnLeaving);
    }
    if (this.pending()) this.kick(); // what a closed tab or a reload left
  }

  /** Responses recorded and not yet stored by the server. */
  pending(): number {
    let count = 0;
    for (const item of this.items.values()) if (!item.sent && !item.rejected) count++;
    return count;
  }

  status(): Status {
    let rejected = 0;
    for (const item of this.items.values()) if (item.rejected) rejected++;
    return {
      pending: this.pending(),
      rejected,
      durable: this.store.durable,
      waitingSince: this.waitingSince,
      lastError: this.lastError,
      stopped: this.stoppedBy !== null,
    };
  }

  /**
   * Put a response in the outbox; resolves once it is there (before any network call). Data that
   * are not JSON or weigh more than 64 KiB are rejected at once and never queued.
   */
  async record(data: unknown, { key, level = null }: RecordOptions = {}): Promise<void> {
    const { text, bytes } = encode(data);
    if (this.preview) return;
    if (this.stoppedBy) throw this.stoppedBy;
    if (this.completion || this.completing) {
      throw new ApiError("conflict", "The session is completed (or completing): record before complete()", 409);
    }
    const responseId = uuidV5(this.sessionId, key ?? randomUuid());
    if (this.items.has(responseId)) return; // the same key again: one response, the first
    const item: Item = { responseId, sessionId: this.sessionId, seq: this.nextSeq++, level, data: JSON.parse(text), bytes, sent: 0 };
    this.items.set(responseId, item);
    await this.save([item]);
    this.emit();
    this.kick();
  }

  /** Resolves when the outbox is empty (rejects if a 403/404 stopped the study). */
  async flush(): Promise<void> {
    for (;;) {
      if (this.stoppedBy) throw this.stoppedBy;
      if (this.preview || this.pending() === 0) return;
      this.kick();
      await this.sending;
    }
  }

  /**
   * Complete the session: wait for uploads in flight, send everything, then complete_session with
   * the count of distinct responses recorded. Resolves only once the server answered 200/201;
   * while it cannot reach the server it keeps trying (see status()).
   */
  complete({ outcome = "completed" }: { outcome?: string } = {}): Promise<Completion> {
    if (this.preview) return Promise.resolve({ redirectUrl: null, completionCode: null });
    this.completing ??= this.completeUntilStored(outcome);
    return this.completing;
  }

  /** Go to the completion's redirectUrl (after complete() resolved); false when there is none. */
  redirect(): boolean {
    const url = this.completion?.redirectUrl;
    if (!url) return false;
    location.assign(url);
    return true;
  }

  /**
   * Upload a file to sessions/{sessionId}/{name} with an upload ticket (SPEC §5), through the
   * page's Firebase Storage SDK; resolves once get_visitor lists the upload (the storage
   * trigger recorded it). complete() waits for uploads in flight.
   */
  upload(file: Blob, name: string, { storage, timeoutMs = 120_000 }: { storage: StorageSdk; timeoutMs?: number }): Promise<Upload> {
    const api = this.api;
    if (!api) return Promise.reject(new ApiError("failed_precondition", "An MTurk preview uploads nothing", 400));
    const task = (async () => {
      const { ticket, path } = await this.retrying(() => api.call("create_upload_ticket", { sessionId: this.sessionId, name }));
      await storage.uploadBytes(storage.ref(storage.storage, path), file, {
        contentType: file.type || "application/octet-stream",
        customMetadata: { uploadTicket: ticket },
      });
      const deadline = Date.now() + timeoutMs;
      for (let round = 0; ; round++) {
        const visitor = await this.retrying(() => api.call("get_visitor"));
        const session = (visitor.sessions || []).find((s: any) => s.sessionId === this.sessionId);
        const found = (session?.uploads || []).find((u: Upload) => u.name === name || u.name === path);
        if (found) return found as Upload;
        if (Date.now() > deadline) {
          throw new ApiError("timeout", `${name} was uploaded but not recorded in time (is the storage trigger running?)`);
        }
        await sleep(Math.min(5000, 300 * 1.5 ** round));
      }
    })();
    this.uploads.add(task);
    const forget = () => this.uploads.delete(task);
    task.then(forget, forget);
    return task;
  }

  // --- sending -----------------------------------------------------------------------------

  private kick(): void {
    if (this.sending || this.preview) return;
    this.sending = this.drain().finally(() => {
      this.sending = null;
    });
  }

  /** Send batches until the outbox is empty or the study stopped. */
  private async drain(): Promise<void> {
    const api = this.api!;
    let failures = 0;
    while (!this.stoppedBy) {
      const batch = this.nextBatch();
      if (!batch.length) break;
      try {
        await api.call("submit_response", {
          sessionId: this.sessionId,
          responses: batch.map(({ responseId, level, data }) => (level === null ? { responseId, data } : { responseId, level, data })),
        });
        for (const item of batch) item.sent = 1;
        await this.save(batch);
        failures = 0;
        if (this.waitingSince !== null) {
          this.waitingSince = null;
          this.lastError = null; // the wait is over; a response set aside stays reported
        }
      } catch (error) {
        const failure = asApiError(error);
        const index = failure.details.index;
        if (failure.status === 400 && typeof index === "number" && batch[index]) {
          batch[index].rejected = failure.message; // set aside and reported; the rest goes on
          await this.save([batch[index]]);
          this.lastError = { code: failure.code, message: `A response was refused and set aside: ${failure.message}` };
        } else if (failure.status === 413 && batch.length > 1) {
          this.batchBytes = Math.max(64 * 1024, this.batchBytes / 2);
        } else if (transient(failure) || (failure.status === 401 && failures < 3)) {
          failures++;
          this.waitingSince ??= Date.now();
          this.lastError = { code: failure.code, message: failure.message };
          this.emit();
          await sleep(backoffMs(failures, failure.retryAfter), failure.status === 0);
        } else {
          this.stop(failure);
        }
      }
      this.emit();
    }
  }

  /** The oldest unsent items, in order, within the body limit and 500 items. */
  private nextBatch(limit = this.batchBytes): Item[] {
    const batch: Item[] = [];
    let bytes = 200;
    for (const item of this.items.values()) {
      if (item.sent || item.rejected) continue;
      const size = item.bytes + 100; // its responseId, level and punctuation
      if (batch.length && (bytes + size > limit || batch.length >= MAX_BATCH_ITEMS)) break;
      batch.push(item);
      bytes += size;
    }
    return batch;
  }

  /** On visibilitychange to hidden and on pagehide: a best-effort keepalive send of what is pending. */
  private sendOnLeaving = (event: Event): void => {
    if (event.type === "visibilitychange" && document.visibilityState !== "hidden") {
      this.leaving = false; // back: the next hiding may send again
      return;
    }
    // Closing a tab fires both events: one send, as the browser's keepalive budget is 64 KiB for all.
    if (this.leaving || this.stoppedBy || !this.api) return;
    this.leaving = true;
    const batch = this.nextBatch(KEEPALIVE_BYTES);
    if (!batch.length || batch[0].bytes + 300 > KEEPALIVE_BYTES) return;
    const responses = batch.map(({ responseId, level, data }) => (level === null ? { responseId, data } : { responseId, level, data }));
    try {
      fetch(`${this.api.base}/submit_response`, {
        method: "POST",
        keepalive: true,
        headers: { ...this.api.lastHeaders, "Content-Type": "application/json" },
        body: JSON.stringify({ sessionId: this.sessionId, responses }),
      }).catch(() => {}); // the outbox keeps them: the next start sends them again (same responseIds)
    } catch {
      // a browser that refuses the keepalive: the same
    }
  };

  private async completeUntilStored(outcome: string): Promise<Completion> {
    const api = this.api!;
    await Promise.allSettled([...this.uploads]);
    for (let failures = 0; ; ) {
      await this.flush();
      let responseCount = 0;
      for (const item of this.items.values()) if (!item.rejected) responseCount++;
      try {
        const answer = await api.call("complete_session", { sessionId: this.sessionId, outcome, responseCount });
        this.completion = { redirectUrl: answer.redirectUrl ?? null, completionCode: answer.completionCode ?? null };
        if (this.waitingSince !== null) {
          this.waitingSince = null;
          this.lastError = null;
        }
        if (this.place) await this.store.putPlace({ ...this.place, completed: true });
        await this.store.deleteItems(this.sessionId);
        this.emit();
        return this.completion;
      } catch (error) {
        const failure = asApiError(error);
        if (failure.code === "incomplete") {
          // The server holds fewer than recorded: send everything again (each is stored once).
          const again = [...this.items.values()].filter((item) => !item.rejected);
          for (const item of again) item.sent = 0;
          await this.save(again);
        } else if (!transient(failure)) {
          this.completing = null; // a page may try again (for example with another outcome)
          throw failure;
        }
        failures++;
        this.waitingSince ??= Date.now();
        this.lastError = { code: failure.code, message: failure.message };
        this.emit();
        await sleep(backoffMs(failures, failure.retryAfter), failure.status === 0);
      }
    }
  }

  /** Try again on transient failures with growing waits, up to `tries`. */
  private async retrying<T>(call: () => Promise<T>, tries = 8): Promise<T> {
    for (let failures = 1; ; failures++) {
      try {
        return await call();
      } catch (error) {
        if (!transient(error) || failures >= tries) throw error;
        await sleep(backoffMs(failures, (error as ApiError).retryAfter), (error as ApiError).status === 0);
      }
    }
  }

  private async save(items: Item[]): Promise<void> {
    try {
      await this.store.putItems(items);
    } catch {
      // the in-memory copy is the one this page uses; IndexedDB only helps the next load
    }
  }

  private stop(error: ApiError): void {
    this.stoppedBy = error;
    this.lastError = { code: error.code, message: error.message };
    this.emit();
  }

  /** @internal The jsPsych extension's reports (an oversized trial). */
  report(code: string, message: string): void {
    this.lastError = { code, message };
    this.emit();
  }

  private emit(): void {
    this.dispatchEvent(new CustomEvent<Status>("status", { detail: this.status() }));
  }
}

function asApiError(error: unknown): ApiError {
  return error instanceof ApiError ? error : new ApiError("internal", String((error as Error)?.message ?? error));
}

/** Wait `ms`; when `untilOnline`, also end as soon as the browser says it is online again. */
function sleep(ms: number, untilOnline = false): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      if (untilOnline) removeEventListener("online", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (untilOnline && typeof addEventListener === "function") addEventListener("online", done);
  });
}

/** Which session of this browser a start() resumes: one per functions, experiment, participant and test flag. */
function placeOf({ functionsUrl, experimentId, participant, test }: StartOptions): string {
  const { preview, ...ids } = participant || {};
  return JSON.stringify([functionsUrl.replace(/\/+$/, ""), experimentId, ids, !!test]);
}

/**
 * Create the session, or resume this browser's session of that experiment and participant when
 * it is not completed (and send what its outbox still holds). Rejects with an ApiError whose
 * code is study_closed, study_full or already_participated when the study refuses.
 */
export async function start(options: StartOptions): Promise<Study> {
  const { functionsUrl, experimentId, participant, test, metadata } = options;
  const store = await openStore();
  if (participant?.preview) {
    return new Study(null, store, null, { sessionId: "", experimentId, visitorNumber: null, condition: null });
  }
  const api = new Api(functionsUrl, options);
  const key = placeOf(options);
  let known: Place | undefined;
  try {
    known = await store.place(key);
  } catch {
    known = undefined;
  }
  const create = (sessionId: string) =>
    retryStart(() =>
      api.call("create_session", {
        sessionId,
        experimentId,
        ...(participant ? { participant } : {}),
        ...(test ? { test: true } : {}),
        ...(metadata ? { metadata } : {}),
      }),
    );
  let resumed = !!known && !known.completed;
  let answer;
  try {
    answer = await create(resumed ? known!.sessionId : randomUuid());
  } catch (error) {
    // The stored session is no longer this caller's (another guest key, a claim): a new one.
    if (!(resumed && error instanceof ApiError && error.code === "conflict")) throw error;
    resumed = false;
    answer = await create(randomUuid());
  }
  const place: Place = {
    place: key,
    sessionId: answer.sessionId,
    visitorNumber: answer.visitorNumber ?? null,
    condition: answer.condition ?? null,
    loads: (resumed ? known!.loads : 0) + 1,
    completed: false,
  };
  let items: Item[] = [];
  try {
    await store.putPlace(place);
    items = resumed ? await store.items(place.sessionId) : [];
  } catch {
    // IndexedDB failed after opening (quota, a browser's private mode): this load goes on in memory
  }
  return new Study(api, store, place, { ...answer, experimentId }, items);
}

/** create_session, tried again on network errors, 429 and 5xx for about half a minute. */
async function retryStart<T>(call: () => Promise<T>): Promise<T> {
  for (let failures = 1; ; failures++) {
    try {
      return await call();
    } catch (error) {
      if (!transient(error) || failures >= 7) throw error;
      await sleep(backoffMs(failures, (error as ApiError).retryAfter), (error as ApiError).status === 0);
    }
  }
}
