// The reference page: a participant answers three questions (kept in the client package's
// outbox until the server stored them), may upload a file, finishes (complete_session, only once
// everything is stored), and may download their data or withdraw at any time; a guest signs up
// or signs in to keep a history (register claims the guest), moves to another device with a
// claim code, and finds all of it again after a reload (get_visitor).
//
// The guest is the package's key in localStorage, or with config.anonymousAuth a Firebase
// anonymous account (docs/api.md); everything else is the same.

import { Api, forgetGuestKey, start as startStudy, storedGuestKey } from "@visitor-sessions/client";

import { loadConfig } from "./config.js";
import { $, action as uiAction, showError } from "./ui.js";
import { startAppCheck } from "./app_check.js";
import { Auth } from "./auth.js";
import { storageSdk } from "./storage.js";

const EXPERIMENT = "reference-page";
const QUESTIONS = [
  "What is your favourite colour?",
  "Which city were you born in?",
  "What did you have for breakfast?",
];
const SESSION = "sessionId"; // the session this browser started
const PROGRESS = "progress"; // {sessionId, answered, finished}: what this browser recorded
const CLAIMED = "claimNote"; // what the last register claimed, shown beside the account

let config, auth, api, storage, getAppCheckToken; // made in begin(), once the config is loaded
let anonymousAuth = false; // config.anonymousAuth: the guest is a Firebase anonymous account
let study = null; // the package's Study of the current session, once started or resumed here

const EMPTY = { visitorNumber: null, sessionId: null, answered: 0, finished: false };
let state = { ...EMPTY };
let history = []; // the visitor's sessions, newest first (get_visitor's)

const plural = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`;

function render() {
  const { visitorNumber, sessionId, answered, finished } = state;
  const started = sessionId !== null;
  const answeredAll = answered >= QUESTIONS.length;
  $("status").textContent = started ? `Visitor #${visitorNumber ?? "?"}` : "Welcome";
  $("progress-line").hidden = !started;
  $("progress-bar").value = finished ? QUESTIONS.length : Math.min(answered, QUESTIONS.length);
  $("progress").textContent = finished
    ? "Finished"
    : answeredAll
      ? `All ${QUESTIONS.length} questions answered`
      : `Question ${answered + 1} of ${QUESTIONS.length}`;
  $("start-step").hidden = started;
  $("question-step").hidden = !started || answeredAll || finished;
  $("question").textContent = QUESTIONS[Math.min(answered, QUESTIONS.length - 1)];
  $("upload-step").hidden = !started || !answeredAll || finished;
  $("finish-step").hidden = !started || !answeredAll || finished;
  $("done-step").hidden = !finished;
  $("upload-status").hidden = !started || !$("upload-status").textContent;
  const user = auth ? auth.signedIn : null;
  // Sign-up and sign-in: on the welcome screen (a returning user), and once the questions are done.
  $("signup-step").hidden = user !== null || (started && !answeredAll);
  $("handoff-step").hidden = user !== null || !started;
  $("claim-step").hidden = user === null;
  $("account-line").hidden = !user;
  if (user) {
    const claimed = localStorage.getItem(CLAIMED);
    $("account").textContent = `Signed in as ${user.email}` + (claimed ? ` • ${claimed}` : "");
  }
  $("history-step").hidden = history.length === 0;
  $("history").replaceChildren(...history.map((session) => {
    const item = document.createElement("li");
    const when = new Date(session.createdAt).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" });
    const count = session.sessionId === sessionId ? Math.max(answered, session.responseCount) : session.responseCount;
    item.textContent = `Started ${when} • ${plural(count, "answer")}`;
    return item;
  }));
  $("data-step").hidden = history.length === 0 && !started;
}

function action(handler) {
  return uiAction(handler, render);
}

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

// --- the study: the package's Study of this browser's session --------------------------

// What the package's status event says, as the line beside the progress.
function showSaving({ pending, waitingSince, stopped }) {
  $("saving").textContent = stopped
    ? "Your answers can no longer be saved from this page: reload it."
    : waitingSince !== null
      ? `Not saved yet: ${plural(pending, "answer")} kept in this browser, sent as soon as the server can be reached.`
      : pending > 0 ? "Saving…" : "All answers saved";
}

// Start the session, or resume the one this browser has (and send what its outbox still holds).
async function openStudy() {
  if (anonymousAuth) await auth.anonymousUser();
  const opened = await startStudy({
    functionsUrl: config.functionsUrl,
    experimentId: EXPERIMENT,
    getIdToken: () => auth.getIdToken(),
    getAppCheckToken,
  });
  opened.addEventListener("status", (event) => showSaving(event.detail));
  showSaving(opened.status());
  study = opened;
  // What is known of this session's answers: this browser's progress, and get_visitor's count.
  const progress = savedProgress();
  const recorded = progress.sessionId === opened.sessionId ? progress.answered : 0;
  const shown = state.sessionId === opened.sessionId ? state.answered : 0;
  state = { visitorNumber: opened.visitorNumber, sessionId: opened.sessionId, answered: Math.max(recorded, shown), finished: false };
  localStorage.setItem(SESSION, opened.sessionId);
  saveProgress();
  if (!history.some((s) => s.sessionId === opened.sessionId)) {
    history = [{ sessionId: opened.sessionId, createdAt: new Date().toISOString(), responseCount: 0 }, ...history];
  }
  return opened;
}

// The Study of the session shown, opened on first need (an answer, an upload, Finish).
async function currentStudy() {
  if (study && study.sessionId === state.sessionId) return study;
  return openStudy();
}

function savedProgress() {
  try {
    return { ...EMPTY, ...JSON.parse(localStorage.getItem(PROGRESS) || "{}") };
  } catch {
    return { ...EMPTY };
  }
}

function saveProgress() {
  const { sessionId, answered, finished } = state;
  localStorage.setItem(PROGRESS, JSON.stringify({ sessionId, answered, finished }));
}

function showUpload(upload) {
  const name = upload.name.split("/").pop();
  $("upload-status").textContent = `${name} is saved (${plural(upload.size, "byte")}).`;
}

// --- restoring after a reload ----------------------------------------------------------

async function restore() {
  if (!auth.user && !storedGuestKey()) return;
  if (anonymousAuth && !auth.user) return; // a key left from the other mode is not this page's guest
  let visitor;
  try {
    visitor = await api.call("get_visitor");
  } catch (error) {
    if (error.code === "guest_claimed") await forgetVisitor();
    if (error.code !== "not_found") throw error;
    return;
  }
  history = visitor.sessions;
  const current = visitor.sessions.find((s) => s.sessionId === localStorage.getItem(SESSION)) || visitor.sessions[0];
  if (!current) { // an account without sessions yet (signed in before starting)
    state = { ...EMPTY, visitorNumber: visitor.visitorNumber };
    return;
  }
  const progress = savedProgress();
  const same = progress.sessionId === current.sessionId;
  state = {
    visitorNumber: visitor.visitorNumber,
    sessionId: current.sessionId,
    answered: Math.max(current.responseCount, same ? progress.answered : 0),
    finished: same && progress.finished,
  };
  const uploads = current.uploads || [];
  if (uploads.length) showUpload(uploads[uploads.length - 1]);
  // Answers recorded here and not yet stored (a reload while offline): resuming sends them.
  if (same && !state.finished && current.sessionId === localStorage.getItem(SESSION)
      && progress.answered > current.responseCount) {
    await openStudy();
  }
}

// The visitor is gone from this browser (claimed by an account elsewhere, withdrawn, signed
// out): forget its key, session and progress, and start afresh.
async function forgetVisitor({ signOut = true } = {}) {
  forgetGuestKey();
  if (signOut && auth.user && (auth.user.isAnonymous || signOut === "always")) await auth.signOut();
  for (const key of [SESSION, PROGRESS, CLAIMED]) localStorage.removeItem(key);
  study = null;
  state = { ...EMPTY };
  history = [];
  $("upload-status").textContent = "";
  $("saving").textContent = "";
}

// --- the participant's actions -----------------------------------------------------------

$("start").addEventListener("click", action(async () => {
  notice("");
  await openStudy();
}));

$("question-form").addEventListener("submit", action(async () => {
  const current = await currentStudy();
  const level = state.answered + 1;
  // In the outbox at once; the package sends it (and keeps it until stored, offline included).
  await current.record({ question: QUESTIONS[state.answered], answer: $("answer").value }, { key: `question-${level}`, level });
  state.answered = level;
  saveProgress();
  $("answer").value = "";
}));

$("upload-form").addEventListener("submit", action(async () => {
  const file = $("file").files[0];
  const current = await currentStudy();
  $("upload-status").textContent = `Uploading ${file.name}…`;
  try {
    showUpload(await current.upload(file, file.name, { storage }));
  } catch (error) {
    $("upload-status").textContent = "";
    throw error;
  }
  $("upload-form").reset();
}));

$("finish").addEventListener("click", action(async () => {
  const current = await currentStudy();
  // complete() sends whatever is still waiting first, and resolves only once the server holds
  // every answer (while offline it keeps trying, and the saving line says so).
  await current.complete();
  state.finished = true;
  saveProgress();
}));

$("download").addEventListener("click", action(async () => {
  const data = await api.call("export_my_data");
  const name = `visitor-${data.visitorNumber ?? "data"}.json`;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  const answers = data.sessions.reduce((sum, s) => sum + (s.responses || []).length, 0);
  notice(`Downloaded ${name}: ${plural(data.sessions.length, "session")} and ${plural(answers, "answer")}.`);
}));

$("withdraw").addEventListener("click", () => {
  $("error").hidden = true;
  $("confirm-withdraw").showModal();
});

// The dialog's two buttons: "Keep my data" closes it, "Delete my data" withdraws.
$("withdraw-form").addEventListener("submit", action(async (event) => {
  $("confirm-withdraw").close();
  if (!event.submitter || event.submitter.value !== "withdraw") return;
  const erased = await api.call("delete_my_data", {});
  const files = erased.uploads ? ` and ${plural(erased.uploads, "file")}` : "";
  await forgetVisitor({ signOut: "always" });
  notice(`Your data has been deleted: ${plural(erased.sessions, "session")}, ${plural(erased.responses, "answer")}${files}. ` +
    "Thank you for your time.");
}));

// Sign up (a new account) or sign in (an account that exists: "I already have an account"),
// then register, which claims this browser's guest into the account: the user's ID token with
// the guest key, or with the anonymous account's token (X-Anonymous-Token).
$("signup-form").addEventListener("submit", action(async (event) => {
  const signIn = event.submitter && event.submitter.value === "signin";
  const [email, password] = [$("email").value, $("password").value];
  let anonymousToken = null;
  if (auth.user && auth.user.isAnonymous) {
    ({ anonymousToken } = signIn ? await auth.signInFromAnonymous(email, password)
      : await auth.linkOrSignIn(email, password));
  } else if (signIn) {
    await auth.signIn(email, password);
  } else {
    await auth.signUp(email, password);
  }
  localStorage.removeItem(CLAIMED);
  const key = storedGuestKey();
  const extra = anonymousToken ? { "X-Anonymous-Token": anonymousToken } : key ? { "X-Guest-Key": key } : {};
  const result = await api.call("register", {}, { headers: extra });
  if (!anonymousToken) forgetGuestKey(); // claimed: the account holds it now
  await registered(result);
}));

// What a register answer says happened, for a person: which number was folded into which.
function claimNote(result) {
  if (result.mergedFromVisitorNumber !== null && result.mergedFromVisitorNumber !== undefined) {
    return `Visitor #${result.mergedFromVisitorNumber} was folded into Visitor #${result.user.visitorNumber}` +
      ` (${plural(result.migratedSessions, "session")})`;
  }
  return result.migrated ? `${plural(result.migratedSessions, "session")} migrated` : null;
}

// After register: remember what it claimed (a repeated call claims nothing and keeps the note)
// and show the account's visitor as it is now.
async function registered(result) {
  const note = claimNote(result);
  if (note) localStorage.setItem(CLAIMED, note);
  state.visitorNumber = result.user.visitorNumber;
  await restore();
  return note;
}

$("signout").addEventListener("click", action(async () => {
  await auth.signOut();
  await forgetVisitor();
  notice("");
  $("claim-status").textContent = "";
}));

// "Continue on another device": a code for this guest, to enter there after signing in.
$("handoff").addEventListener("click", action(async () => {
  const { claimCode, expiresAt } = await api.call("create_claim_code", {});
  const until = new Date(expiresAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  $("handoff-code").textContent = `Your code: ${claimCode} (valid until ${until}, once). ` +
    "Sign in on the other device and enter it there.";
  $("handoff-code").hidden = false;
}));

// The other side: a signed-in user enters the code, and that guest's sessions come here.
$("claim-form").addEventListener("submit", action(async () => {
  const result = await api.call("register", { claimCode: $("claim-code").value.trim() });
  const note = await registered(result);
  $("claim-status").textContent = note || "Nothing more to bring: that code's guest is already here.";
  $("claim-code").value = "";
}));

async function begin() {
  config = await loadConfig();
  anonymousAuth = config.anonymousAuth === true;
  auth = await Auth.start(config);
  getAppCheckToken = startAppCheck(config); // null without config.appCheck
  api = new Api(config.functionsUrl, { getIdToken: () => auth.getIdToken(), getAppCheckToken });
  storage = storageSdk(auth.app, config);
  $("start").disabled = false; // index.html disables it until the config and the SDK are ready
  await restore();
}

// A form the browser refuses (a required field empty, a password too short) is not sent, so no
// action runs: hide the last action's error then too, rather than leave it beside the browser's own.
document.addEventListener("invalid", () => { $("error").hidden = true; }, true);

try {
  await begin();
} catch (error) {
  showError(error);
}
render();
