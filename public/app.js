// The page's flow: start a session, answer questions, upload a file, sign up (or sign in to an
// account that exists, merging the guest into it), move a guest to another device with a claim
// code, and restore all of it after a reload (get_visitor).
//
// The guest is a key in localStorage, or with config.anonymousAuth a Firebase anonymous
// account (docs/api.md); everything else is the same.

import { loadConfig } from "./config.js";
import { $, action as uiAction, showError } from "./ui.js";
import { ApiError, Client, forgetGuestKey, guestKey } from "./client.js";
import { startAppCheck } from "./app_check.js";
import { Auth } from "./auth.js";
import { Storage } from "./storage.js";

const QUESTIONS = [
  "What is your favourite colour?",
  "Which city were you born in?",
  "What did you have for breakfast?",
];
const SESSION = "sessionId";
const CLAIMED = "claimNote"; // what the last register claimed, shown beside the account
const LAST_UPLOAD = "lastUpload";

let auth, api, storage; // made in start(), once the config is loaded
let anonymousAuth = false; // config.anonymousAuth: the guest is a Firebase anonymous account

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
  const user = auth ? auth.signedIn : null;
  // Sign-up and sign-in: on the welcome screen (a returning user), and once the questions are done.
  $("signup-step").hidden = user !== null || (started && !done);
  $("handoff-step").hidden = user !== null || !started;
  $("claim-step").hidden = user === null;
  $("account-line").hidden = !user;
  if (user) {
    const claimed = localStorage.getItem(CLAIMED);
    $("account").textContent = `Signed in as ${user.email}` + (claimed ? ` • ${claimed}` : "");
  }
}

const plural = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`;

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
  await restoreUpload();
  return note;
}

function action(handler) {
  return uiAction(handler, render);
}

// The visitor's sessions, newest first (get_visitor's), kept up to date as answers are given.
let history = [];

function showHistory(sessions) {
  history = sessions;
  $("history-step").hidden = sessions.length === 0;
  $("history").replaceChildren(...sessions.map((session) => {
    const item = document.createElement("li");
    item.textContent = `Session ${session.sessionId.slice(0, 8)} • ${plural(session.responseCount, "answer")}`;
    return item;
  }));
}

async function restore() {
  if (!auth.user && !guestKey({ create: false })) return;
  if (anonymousAuth && !auth.user) return; // a key left from the other mode is not this page's guest
  try {
    const visitor = await api.getVisitor();
    const current = visitor.sessions.find((s) => s.sessionId === localStorage.getItem(SESSION))
      || visitor.sessions[0];
    showHistory(visitor.sessions);
    if (!current) { // an account without sessions yet (signed in before starting)
      state = { visitorNumber: visitor.visitorNumber, sessionId: null, answered: 0 };
      return;
    }
    state = { visitorNumber: visitor.visitorNumber, sessionId: current.sessionId, answered: current.responseCount };
    localStorage.setItem(SESSION, current.sessionId);
  } catch (error) {
    if (error instanceof ApiError && error.code === "guest_claimed") await forgetClaimedGuest();
    if (!(error instanceof ApiError && error.code === "not_found")) throw error;
  }
}

// This browser's guest was claimed by an account (a claim code used on another device): its
// data is there now, so this page forgets the guest and starts afresh; the error says to sign in.
async function forgetClaimedGuest() {
  forgetGuestKey();
  if (auth.user && auth.user.isAnonymous) await auth.signOut();
  for (const key of [SESSION, LAST_UPLOAD]) localStorage.removeItem(key);
  state = { visitorNumber: null, sessionId: null, answered: 0 };
}

$("start").addEventListener("click", action(async () => {
  if (anonymousAuth) await auth.anonymousUser();
  const session = await api.createSession({ experimentId: "reference-page" });
  localStorage.setItem(SESSION, session.sessionId);
  state = { visitorNumber: session.visitorNumber, sessionId: session.sessionId, answered: 0 };
  showHistory([{ sessionId: session.sessionId, responseCount: 0 },
    ...history.filter((s) => s.sessionId !== session.sessionId)]);
}));

$("question-form").addEventListener("submit", action(async () => {
  const level = state.answered + 1;
  await api.submitResponse({
    sessionId: state.sessionId,
    level,
    data: { question: QUESTIONS[state.answered], answer: $("answer").value },
  });
  state.answered = level;
  showHistory(history.map((s) => (s.sessionId === state.sessionId ? { ...s, responseCount: level } : s)));
  $("answer").value = "";
}));

function showMetadata(name, metadata) {
  $("upload-status").textContent = `${name.split("/").pop()} was tagged with:`;
  const tags = Object.entries(metadata).filter(([key]) => key !== "uploadTicket"); // the page's own
  $("upload-metadata").replaceChildren(...tags.flatMap(([key, value]) => {
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
  $("upload-status").textContent = `Uploading ${file.name}…`;
  $("upload-metadata").replaceChildren();
  // The ticket first: the storage trigger deletes an upload that has none (docs/api.md).
  const { ticket, path: name } = await api.createUploadTicket({ sessionId: state.sessionId, name: file.name });
  await storage.upload(name, file, ticket);
  $("upload-status").textContent = `Uploaded ${file.name}; waiting for the trigger…`;
  const metadata = await storage.waitForMetadata(name);
  localStorage.setItem(LAST_UPLOAD, name);
  showMetadata(name, metadata);
}));

// Sign up (a new account) or sign in (an account that exists: "I already have an account"),
// then register, which claims this browser's guest into the account. register sends the SDK's
// ID token (user.getIdToken()) with the guest key, or with the anonymous account's token.
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
  await registered(await api.register({}, { anonymousToken }));
}));

$("signout").addEventListener("click", action(async () => {
  await auth.signOut();
  for (const key of [SESSION, CLAIMED, LAST_UPLOAD]) localStorage.removeItem(key);
  state = { visitorNumber: null, sessionId: null, answered: 0 };
  showHistory([]);
  $("upload-status").textContent = "";
  $("upload-metadata").replaceChildren();
  $("claim-status").textContent = "";
}));

// "Continue on another device": a code for this guest, to enter there after signing in.
$("handoff").addEventListener("click", action(async () => {
  const { claimCode, expiresAt } = await api.createClaimCode();
  const until = new Date(expiresAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  $("handoff-code").textContent = `Your code: ${claimCode} (valid until ${until}, once). ` +
    "Sign in on the other device and enter it there.";
  $("handoff-code").hidden = false;
}));

// The other side: a signed-in user enters the code, and that guest's sessions come here.
$("claim-form").addEventListener("submit", action(async () => {
  const result = await api.register({ claimCode: $("claim-code").value.trim() });
  const note = await registered(result);
  $("claim-status").textContent = note || "Nothing more to bring: that code's guest is already here.";
  $("claim-code").value = "";
}));

async function restoreUpload() {
  const name = localStorage.getItem(LAST_UPLOAD);
  if (name && state.sessionId && name.startsWith(`sessions/${state.sessionId}/`)) {
    showMetadata(name, await storage.metadata(name));
  }
}

async function start() {
  const config = await loadConfig();
  anonymousAuth = config.anonymousAuth === true;
  auth = await Auth.start(config);
  api = new Client({ functionsUrl: config.functionsUrl, getIdToken: () => auth.getIdToken(),
                     getAppCheckToken: startAppCheck(config) }); // null without config.appCheck
  storage = new Storage(auth.app, config);
  $("start").disabled = false; // index.html disables it until the config and the SDK are ready
  await restore();
  await restoreUpload();
}

// A form the browser refuses (a required field empty, a password too short) is not sent, so no
// action runs: hide the last action's error then too, rather than leave it beside the browser's own.
document.addEventListener("invalid", () => { $("error").hidden = true; }, true);

try {
  await start();
} catch (error) {
  showError(error);
}
render();
