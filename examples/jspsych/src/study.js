// A short jsPsych 8 study saved through @visitor-sessions/client (docs/jspsych.md): the
// server chooses the condition (the timeline depends on it, so the study is started before
// jsPsych), the participant comes from Prolific's URL parameters, a "Saving…" indicator follows
// the outbox, and the extension completes the session and redirects to Prolific at the end.

import htmlButtonResponse from "@jspsych/plugin-html-button-response";
import htmlKeyboardResponse from "@jspsych/plugin-html-keyboard-response";
import { JsPsychExtension, fromUrl, start } from "@visitor-sessions/client";
import { initJsPsych } from "jspsych";
import "jspsych/css/jspsych.css";

// Where the functions are: make dev serves them at /api beside this page. A page on another
// origin names their URL here, and that origin must be in the functions' ALLOWED_ORIGINS.
const FUNCTIONS_URL = "/api";
const EXPERIMENT_ID = "jspsych-example";

const COLOURS = { red: "#d32f2f", green: "#2e7d32", blue: "#1565c0" };
const KEYS = { r: "red", g: "green", b: "blue" };

const target = document.getElementById("study");
const indicator = document.getElementById("saving");

function showSaving({ pending, waitingSince, stopped }) {
  const [state, text] = stopped
    ? ["stopped", "Your answers can no longer be saved: please contact the researcher."]
    : waitingSince !== null
      ? ["waiting", `No connection: ${pending} answer(s) kept in this browser, sent when it is back.`]
      : pending > 0
        ? ["saving", "Saving…"]
        : ["saved", "All answers saved"];
  indicator.dataset.state = state;
  indicator.textContent = text;
}

const REFUSED = {
  study_closed: "This study is closed.",
  study_full: "This study is full.",
  already_participated: "You have already taken part in this study.",
};

function trials(condition) {
  // congruent: the word names its own ink; incongruent: another colour's.
  const words = ["red", "green", "blue", "green", "blue", "red"];
  return words.map((word) => {
    const names = Object.keys(COLOURS);
    const ink = condition === "incongruent" ? names[(names.indexOf(word) + 1) % names.length] : word;
    return {
      type: htmlKeyboardResponse,
      stimulus: `<p class="word" style="font-size: 48px; color: ${COLOURS[ink]}">${word.toUpperCase()}</p>`,
      prompt: "<p>The colour of the ink? Press R, G or B.</p>",
      choices: Object.keys(KEYS),
      data: { word, ink },
      on_finish: (data) => {
        data.correct = KEYS[data.response] === ink;
      },
    };
  });
}

async function main() {
  let study;
  try {
    study = await start({ functionsUrl: FUNCTIONS_URL, experimentId: EXPERIMENT_ID, participant: fromUrl(location.href) });
  } catch (error) {
    const todo = fromUrl(location.href)?.studyId ? " Please return the study on Prolific." : "";
    const message = document.createElement("p");
    message.className = "refused";
    message.dataset.code = error.code;
    message.textContent = (REFUSED[error.code] ?? `The study could not start (${error.message}).`) + todo;
    target.replaceChildren(message);
    return;
  }
  study.addEventListener("status", (event) => showSaving(event.detail));
  showSaving(study.status());

  const jsPsych = initJsPsych({
    display_element: target,
    extensions: [{ type: JsPsychExtension, params: { study } }],
  });
  jsPsych.data.addProperties({ condition: study.condition });
  await jsPsych.run([
    {
      type: htmlButtonResponse,
      stimulus: "<p>Name the <b>ink colour</b> of each word, as fast as you can.</p>",
      choices: ["Start"],
    },
    ...trials(study.condition),
    {
      type: htmlButtonResponse,
      stimulus: "<p>That's all: thank you! Your answers are saved before you go back to Prolific.</p>",
      choices: ["Finish"],
    },
  ]);
}

main();
