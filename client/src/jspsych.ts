// VisitorSessions.JsPsychExtension: every trial of a jsPsych 7 or 8 experiment recorded through
// a Study, and the completion redirect only once the server holds them all (SPEC §15).
//
// What jsPsych does that shapes this (read from the packages' dist/index.js, jsPsych 8.3.0 and
// 7.3.4; the interface is jsPsych's src/modules/extensions.ts: static info {name, version, data},
// initialize(params): Promise<void>, on_start, on_load, on_finish(params) → data to add; and
// https://www.jspsych.org/latest/developers/extension-development/):
// - An extension's per-trial hooks (on_start, on_load, on_finish) run only for trials that list it
//   in their `extensions`; so the extension instead wraps the experiment-wide callbacks of the
//   instance's init settings: `jsPsych.getInitSettings()` is the very options object jsPsych reads
//   `on_data_update(data)` (after each trial's finish handlers) and `on_finish(data)` from at the
//   time it calls them, in both versions.
// - jsPsych 8's ExtensionManager.initializeExtensions calls initialize(params) without awaiting
//   it, and 7.3's loadExtensions awaits it before the first trial: initialize therefore returns
//   at once, and trials recorded before the study has started wait in a buffer.
// - Both await a promise returned by the experiment's on_finish before ending run(): the saving
//   message and the redirect happen there.
// - Ending on a refusal: abortExperiment(message) in 8, endExperiment(message) in 7.

import { ApiError } from "./http.js";
import { MAX_RESPONSE_BYTES, start, type Participant, type StartOptions, type StorageSdk, type Study } from "./study.js";
import { fromUrl } from "./url.js";

export interface ExtensionParams extends Partial<StartOptions> {
  /** A started study (await VisitorSessions.start first when the timeline depends on the condition). */
  study?: Study;
  /** For SONA: the URL parameter that holds the survey code. */
  sonaParameter?: string;
  /** The outcome to complete with, from jsPsych's data at the end (default: the last trial's `outcome`, else "completed"). */
  outcome?: (data: any) => string;
  /** false: record nothing and start nothing (for jsPsych's simulate). */
  enabled?: boolean;
  /** false: complete but do not go to the redirect URL (the page calls study.redirect() itself). */
  redirect?: boolean;
  /** The page's Firebase Storage SDK: a trial's values over the limit are uploaded instead of omitted. */
  storage?: StorageSdk;
}

const REFUSALS: Record<string, string> = {
  study_closed: "This study is closed: it is not taking any more participants.",
  study_full: "This study is full: it has all the participants it needs.",
  already_participated: "You have already taken part in this study, and it can be taken only once.",
};

export class JsPsychExtension {
  static info = { name: "visitor-sessions", version: "0.1.0", data: {} };

  /** The study, once started (for a "Saving…" indicator: its "status" event). */
  started: Promise<Study> | null = null;
  /** Trials finished before the study started: jsPsych's data object and its copy as it was then. */
  private buffer: [Record<string, unknown>, Record<string, unknown>][] = [];
  private study: Study | null = null;
  private refused = false;
  private params: ExtensionParams = {};

  constructor(private jsPsych: any) {}

  initialize(params: ExtensionParams = {}): Promise<void> {
    this.params = params;
    if (params.enabled === false) return Promise.resolve();
    const settings = this.jsPsych.getInitSettings();
    const onData = settings.on_data_update;
    const onFinish = settings.on_finish;
    settings.on_data_update = (data: any) => {
      this.trialFinished(data);
      return onData?.(data);
    };
    settings.on_finish = async (data: any) => {
      await onFinish?.(data);
      await this.experimentFinished(data);
    };
    this.started = params.study ? Promise.resolve(params.study) : this.startStudy(params);
    this.started.then(
      (study) => {
        this.study = study;
        for (const [data, copy] of this.buffer.splice(0)) {
          data.attempt = study.attempt;
          this.recordTrial(copy);
        }
      },
      (error) => this.refuse(error),
    );
    this.started.catch(() => {}); // reported by refuse
    return Promise.resolve();
  }

  // jsPsych calls these only for trials that list the extension; nothing to do there.
  on_start(): void {}
  on_load(): void {}
  on_finish(): Record<string, never> {
    return {};
  }

  private startStudy(params: ExtensionParams): Promise<Study> {
    if (!params.functionsUrl || !params.experimentId) {
      return Promise.reject(new ApiError("invalid_argument", "JsPsychExtension needs params {study} or {functionsUrl, experimentId}", 400));
    }
    const participant: Participant | null = params.participant ?? fromUrl(location.href, { sonaParameter: params.sonaParameter });
    return start({ ...params, functionsUrl: params.functionsUrl, experimentId: params.experimentId, participant });
  }

  private trialFinished(data: Record<string, unknown>): void {
    if (this.refused) return;
    let copy: Record<string, unknown>;
    try {
      copy = JSON.parse(JSON.stringify(data));
    } catch {
      copy = { trial_index: data.trial_index, omitted: "not JSON" };
    }
    if (this.study) {
      data.attempt = this.study.attempt; // also in jsPsych's own data
      this.recordTrial(copy);
    } else {
      this.buffer.push([data, copy]);
    }
  }

  private recordTrial(data: Record<string, unknown>): void {
    const study = this.study!;
    const { data: fitted, omitted } = fit({ ...data, attempt: study.attempt });
    const storage = this.params.storage;
    for (const key of omitted) {
      if (!storage) continue;
      // With the page's Storage SDK the value goes to a file of the session, named in the marker.
      const name = `trial-${study.attempt}-${data.trial_index}-${key.replace(/[^\w.-]/g, "_")}.json`;
      fitted[key] = { ...(fitted[key] as object), omitted: "uploaded", upload: name };
      const file = new Blob([JSON.stringify(data[key])], { type: "application/json" });
      study.upload(file, name, { storage }).catch((error) => study.report(error.code ?? "upload_failed", `${name}: ${error.message}`));
    }
    if (omitted.length) {
      const where = storage ? "uploaded" : "omitted";
      study.report("too_large", `Trial ${data.trial_index}: ${omitted.join(", ")} ${where} (more than ${MAX_RESPONSE_BYTES} bytes)`);
    }
    study.record(fitted, { key: `${study.attempt}:${data.trial_index}` }).catch((error) => {
      study.report(error.code ?? "invalid_argument", `Trial ${data.trial_index} not recorded: ${error.message}`);
    });
  }

  private async experimentFinished(data: any): Promise<void> {
    if (this.params.enabled === false || this.refused || !this.started) return;
    const study = await this.started.catch(() => null);
    if (!study || study.preview) return;
    const display: HTMLElement | null = this.jsPsych.getDisplayElement?.() ?? null;
    const show = () => {
      const { pending, waitingSince } = study.status();
      if (!display) return;
      display.innerHTML =
        `<p class="visitor-sessions-saving">Saving your answers… please keep this page open.</p>` +
        (waitingSince !== null
          ? `<p>Waiting for the connection to come back (${pending} answers to send).</p>`
          : "");
    };
    show();
    study.addEventListener("status", show);
    const values = typeof data?.values === "function" ? data.values() : [];
    const last = values[values.length - 1];
    const outcome = this.params.outcome ? this.params.outcome(data) : typeof last?.outcome === "string" ? last.outcome : "completed";
    try {
      await study.complete({ outcome });
    } catch (error) {
      // Refused for good (the session was withdrawn, or a 400): say so rather than "Saving…" forever.
      const message = `Your answers could not all be saved (${(error as Error).message}). Please tell the researcher.`;
      if (display) display.innerHTML = `<p class="visitor-sessions-failed">${escapeHtml(message)}</p>`;
      throw error;
    } finally {
      study.removeEventListener("status", show);
    }
    if (display) display.innerHTML = `<p class="visitor-sessions-saved">Your answers are saved. Thank you!</p>`;
    if (this.params.redirect !== false) study.redirect();
  }

  private refuse(error: unknown): void {
    this.refused = true;
    const code = error instanceof ApiError ? error.code : "";
    const participant = this.params.participant ?? fromUrl(location.href, { sonaParameter: this.params.sonaParameter });
    const what = REFUSALS[code] ?? `The study could not start: ${(error as Error)?.message ?? error}`;
    const todo = participant?.studyId
      ? "Please return the study on Prolific (press “Return”), so that your place goes to someone else."
      : participant?.hitId
        ? "Please return the HIT on MTurk."
        : REFUSALS[code]
          ? "You may close this page."
          : "Please try again later, or tell the researcher.";
    const message = `<div class="visitor-sessions-refused" data-code="${escapeHtml(code)}"><p>${escapeHtml(what)}</p><p>${escapeHtml(todo)}</p></div>`;
    const end = this.jsPsych.abortExperiment ?? this.jsPsych.endExperiment;
    try {
      end.call(this.jsPsych, message);
    } catch {
      // the timeline has not started yet: show it directly
      const display = this.jsPsych.getDisplayElement?.();
      if (display) display.innerHTML = message;
    }
  }
}

/** `data` within the response limit: its largest values replaced by {"omitted": "too large", "bytes": N}. */
export function fit(data: Record<string, unknown>): { data: Record<string, unknown>; omitted: string[] } {
  const utf8 = new TextEncoder();
  const size = (value: unknown) => utf8.encode(JSON.stringify(value) ?? "").length;
  const out = { ...data };
  const omitted: string[] = [];
  const sizes = Object.entries(out)
    .map(([key, value]) => [key, size(value)] as const)
    .sort((a, b) => b[1] - a[1]);
  for (const [key, bytes] of sizes) {
    if (size(out) <= MAX_RESPONSE_BYTES) break;
    out[key] = { omitted: "too large", bytes };
    omitted.push(key);
  }
  return { data: out, omitted };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
