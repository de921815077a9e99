// The participant a recruitment platform puts in the study URL (SPEC §14.3, §15).

import type { Participant } from "./study.js";

/**
 * The participant in `href`'s parameters: Prolific's PROLIFIC_PID, STUDY_ID, SESSION_ID; MTurk's
 * workerId, assignmentId, hitId, turkSubmitTo ({preview: true} for a HIT's preview); SONA's
 * survey code under `sonaParameter`. null when there is none (a study without a platform).
 */
export function fromUrl(href: string = location.href, { sonaParameter }: { sonaParameter?: string } = {}): Participant | null {
  const params = new URL(href, typeof location === "undefined" ? "http://localhost/" : location.href).searchParams;
  const get = (name: string) => params.get(name) ?? undefined;
  if (get("assignmentId") === "ASSIGNMENT_ID_NOT_AVAILABLE") return { preview: true };
  if (params.has("PROLIFIC_PID")) {
    return dropUndefined({ participantId: get("PROLIFIC_PID"), studyId: get("STUDY_ID"), submissionId: get("SESSION_ID") });
  }
  if (params.has("workerId")) {
    return dropUndefined({
      participantId: get("workerId"),
      assignmentId: get("assignmentId"),
      hitId: get("hitId"),
      turkSubmitTo: get("turkSubmitTo"),
    });
  }
  if (sonaParameter && params.has(sonaParameter)) return { participantId: get(sonaParameter) };
  return null;
}

function dropUndefined(participant: Participant): Participant {
  return Object.fromEntries(Object.entries(participant).filter(([, value]) => value !== undefined));
}
