// The page's flow: start a session, answer questions, upload a file, sign up, and
// restore all of it after a reload (get_visitor).

import { loadConfig } from "./config.js";
import { $, action as uiAction, showError } from "./ui.js";
import { ApiError, Client, guestKey } from "./client.js";
import { Auth } from "./auth.js";
import { Storage } from "./storage.js";

const QUESTIONS = [
  "What is your favourite colour?",
  "Which city were you born in?",
  "What did you have for breakfast?",
];
const SESSION = "sessionId";
const MIGRATED = "migratedSessions";
const LAST_UPLOAD = "lastUpload";

let auth, api, storage; // made in start(), once the config is loaded

let state = { visitorNumber: null, sessionId: null, answered: 0 };

function render() {
  const { visitorNumber, sessionId, answered } = state;
  const started = sessionId !== null;
  const level = Math.min(answered + 1, QUESTIONS.length);
  const percent = Math.round((answered / QUESTIONS.length) * 100);
  $("status").textContent = started
    ? `Visitor #${visitorNumber ?? "?"} • Level ${level} • ${percent}% Complete`
    : "Welcome";
  $("start-step").hidden = started;
  $("question-step").hidden = !started || answered >= QUESTIONS.length;
  $("question").textContent = QUESTIONS[Math.min(answered, QUESTIONS.length - 1)];
  const done = started && answered >= QUESTIONS.length;
  $("upload-step").hidden = !done;
  const user = auth ? auth.user : null;
  $("signup-step").hidden = !done || user !== null;
  $("account").hidden = !user;
  if (user) {
    const migrated = localStorage.getItem(MIGRATED);
    $("account").textContent = `Signed in as ${user.email}` +
      (migrated !== null ? ` • ${migrated} session${migrated === "1" ? "" : "s"} migrated` : "");
  }
}

function action(handler) {
  return uiAction(handler, render);
}

function showHistory(sessions) {
  $("history-step").hidden = sessions.length === 0;
  $("history").replaceChildren(...sessions.map((session) => {
    const item = document.createElement("li");
    item.textContent = `Session ${session.sessionId.slice(0, 8)} • ${session.responseCount} answers`;
    return item;
  }));
}

async function restore() {
  if (!auth.user && !guestKey({ create: false })) return;
  try {
    const visitor = await api.getVisitor();
    const current = visitor.sessions.find((s) => s.sessionId === localStorage.getItem(SESSION))
      || visitor.sessions[0];
    state = { visitorNumber: visitor.visitorNumber, sessionId: current.sessionId, answered: current.responseCount };
    localStorage.setItem(SESSION, current.sessionId);
    showHistory(visitor.sessions);
  } catch (error) {
    if (!(error instanceof ApiError && error.code === "not_found")) throw error;
  }
}

$("start").addEventListener("click", action(async () => {
  const session = await api.createSession({ experimentId: "reference-page" });
  localStorage.setItem(SESSION, session.sessionId);
  state = { visitorNumber: session.visitorNumber, sessionId: session.sessionId, answered: 0 };
}));

$("question-form").addEventListener("submit", action(async () => {
  const level = state.answered + 1;
  await api.submitResponse({
    sessionId: state.sessionId,
    level,
    data: { question: QUESTIONS[state.answered], answer: $("answer").value },
  });
  state.answered = level;
  $("answer").value = "";
}));

function showMetadata(name, metadata) {
  $("upload-status").textContent = `${name.split("/").pop()} was tagged with:`;
  $("upload-metadata").replaceChildren(...Object.entries(metadata).flatMap(([key, value]) => {
    const term = document.createElement("dt");
    term.textContent = key;
    const definition = document.createElement("dd");
    definition.textContent = value;
    definition.dataset.key = key;
    return [term, definition];
  }));
}

$("upload-form").addEventListener("submit", action(async () => {
  const file = $("file").files[0];
  const name = `sessions/${state.sessionId}/${file.name}`;
  $("upload-status").textContent = `Uploading ${file.name}…`;
  $("upload-metadata").replaceChildren();
  await storage.upload(name, file);
  $("upload-status").textContent = `Uploaded ${file.name}; waiting for the trigger…`;
  const metadata = await storage.waitForMetadata(name);
  localStorage.setItem(LAST_UPLOAD, name);
  showMetadata(name, metadata);
}));

$("signup-form").addEventListener("submit", action(async () => {
  await auth.signUp($("email").value, $("password").value);
  // register sends the SDK's ID token (user.getIdToken()) with the guest key.
  const result = await api.register({});
  localStorage.setItem(MIGRATED, String(result.migratedSessions));
  state.visitorNumber = result.user.visitorNumber;
  await restore();
}));

async function restoreUpload() {
  const name = localStorage.getItem(LAST_UPLOAD);
  if (name && state.sessionId && name.startsWith(`sessions/${state.sessionId}/`)) {
    showMetadata(name, (await storage.object(name)).metadata || {});
  }
}

async function start() {
  const config = await loadConfig();
  auth = await Auth.start(config);
  api = new Client({ functionsUrl: config.functionsUrl, getIdToken: () => auth.getIdToken() });
  storage = new Storage(config);
  $("start").disabled = false; // index.html disables it until the config and the SDK are ready
  await restore();
  await restoreUpload();
}

try {
  await start();
} catch (error) {
  showError(error);
}
render();
