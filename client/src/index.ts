// @visitor-sessions/client (SPEC §15): a study page's few lines to the visitor-sessions functions.
//
//   import { start, fromUrl } from "@visitor-sessions/client";
//   const study = await start({ functionsUrl, experimentId: "stroop", participant: fromUrl(location.href) });
//   await study.record({ rt: 512 }, { key: "trial-1" });
//   await study.complete();
//   study.redirect();

export { Api, ApiError, forgetGuestKey, guestKey, storedGuestKey, type CallOptions, type Credentials, type Query } from "./http.js";
export { JsPsychExtension, type ExtensionParams } from "./jspsych.js";
export {
  MAX_RESPONSE_BYTES,
  Study,
  start,
  type Completion,
  type Participant,
  type RecordOptions,
  type StartOptions,
  type Status,
  type StorageSdk,
  type Upload,
} from "./study.js";
export { fromUrl } from "./url.js";
export { uuidV5 } from "./uuid.js";
export const version = "0.1.0";
