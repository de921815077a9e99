// The researcher page (docs/researchers.md): sign in, each experiment's figures and charts
// (get_study_stats), the configured experiments with a form to edit each (configure_experiment)
// and the exclusion of a session (exclude_session), the exports (export_data) saved as files, and
// for `researcher: true` the researchers' trail (get_researcher_actions).

import { loadConfig } from "./config.js";
import { $, action as uiAction, showError } from "./ui.js";
import { Api, ApiError } from "@visitor-sessions/client";
import { Auth } from "./auth.js";
import { dailySessionsChart, levelFunnelChart } from "./charts.js";
import { configurationArticle, configurationForm, documentOf, utc } from "./research_config.js";

let auth, api; // made in start(), once the config is loaded
let charts = [];

function showNotice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

// The `researcher` claim of the token: true (every experiment), a list of experimentIds, or none.
function scopeOf(claims) {
  const claim = claims.researcher;
  if (claim === true) return { every: true, experiments: [] };
  if (Array.isArray(claim) && claim.length > 0) return { every: false, experiments: claim.map(String) };
  return null;
}

function experimentName(experimentId) {
  return experimentId === null ? "(no experiment)" : experimentId;
}

function cell(tag, text) {
  const element = document.createElement(tag);
  element.textContent = text;
  return element;
}

function clearStudies() {
  charts.forEach((chart) => chart.destroy());
  charts = [];
  $("experiments").tBodies[0].replaceChildren();
  $("charts").replaceChildren();
  $("export-experiment").replaceChildren($("export-experiment").options[0]);
  $("download-status").textContent = "";
  $("trail").tBodies[0].replaceChildren();
  $("configurations").replaceChildren();
  $("new-experiment-form").replaceChildren();
  $("exclude-status").textContent = "";
  for (const id of ["studies-step", "configure-step", "downloads-step", "charts-step", "trail-step"]) $(id).hidden = true;
}

// A researcher function, called once more with a fresh ID token when it answers
// permission_denied: a token taken before `make researcher ARGS="grant EMAIL"` lacks the claim
// until it is refreshed, which the SDK would otherwise do only when it expires (within the hour).
async function asResearcher(call) {
  try {
    return await call();
  } catch (error) {
    if (!(error instanceof ApiError && error.code === "permission_denied") || !auth.user) throw error;
    await auth.user.getIdToken(true);
    return call();
  }
}

function showTable(experiments) {
  $("experiments").tBodies[0].replaceChildren(...experiments.map((experiment) => {
    const row = document.createElement("tr");
    row.dataset.experiment = experiment.experimentId ?? "";
    row.append(
      cell("th", experimentName(experiment.experimentId)),
      ...["visitors", "registeredVisitors", "sessions", "responses", "uploads"].map((name) => cell("td", experiment[name])),
      cell("td", utc(experiment.firstSessionAt)),
      cell("td", utc(experiment.lastSessionAt)),
    );
    row.firstChild.scope = "row";
    return row;
  }));
  $("experiments").hidden = experiments.length === 0;
  $("no-data").hidden = experiments.length > 0;
}

function figure(kind, caption) {
  const element = document.createElement("figure");
  const holder = document.createElement("div");
  holder.className = "chart";
  const canvas = document.createElement("canvas");
  canvas.dataset.chart = kind;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", caption);
  holder.append(canvas);
  element.append(holder, cell("figcaption", caption));
  return [element, canvas];
}

function showCharts(experiments) {
  for (const experiment of experiments) {
    const article = document.createElement("article");
    article.dataset.experiment = experiment.experimentId ?? "";
    const [daily, dailyCanvas] = figure("daily", "Sessions per day (last 30 UTC days)");
    // No response with a level: a sentence, not an empty frame.
    const levelled = experiment.levels.length > 0;
    const [funnel, funnelCanvas] = levelled
      ? figure("levels", "Level funnel: sessions that reached each level")
      : [cell("p", "Level funnel: no response has a level yet (submit_response's level), so there is nothing to draw."), null];
    if (!levelled) funnel.className = "no-levels";
    article.append(cell("h3", experimentName(experiment.experimentId)), daily, funnel);
    $("charts").append(article);
    // Drawn once the canvases are in the page, so Chart.js can size them.
    charts.push(dailySessionsChart(dailyCanvas, experiment.daily));
    if (levelled) charts.push(levelFunnelChart(funnelCanvas, experiment.levels));
  }
}

// Which experiments an export asks for: the one chosen, or else (a scoped researcher) every
// experiment of its claim, or (researcher: true) none, which means every experiment.
function exportExperiments(scope) {
  const chosen = $("export-experiment").value;
  if (chosen) return [chosen];
  return scope.every ? [] : scope.experiments;
}

function showDownloads(experiments, scope) {
  const ids = scope.every
    ? experiments.map((experiment) => experiment.experimentId).filter((id) => id !== null)
    : scope.experiments;
  $("export-experiment").append(...ids.map((id) => {
    const option = cell("option", id);
    option.value = id;
    return option;
  }));
  $("downloads-step").hidden = false;
}

// An act's filters, as one line: "experimentIds: all; format: zip". In this order (the database
// keeps JSON objects' keys in an order of its own), then any other.
const DETAILS_ORDER = ["visitorNumber", "experimentId", "experimentIds", "sessionId", "from", "to", "format", "table", "erasureId"];

function describeDetails(details) {
  const rank = (name) => (DETAILS_ORDER.includes(name) ? DETAILS_ORDER.indexOf(name) : DETAILS_ORDER.length);
  return Object.entries(details)
    .sort(([a], [b]) => rank(a) - rank(b))
    .filter(([, value]) => value !== null && value !== undefined)
    .map(([name, value]) => `${name}: ${Array.isArray(value) ? value.map((v) => v ?? "(none)").join(", ") : value}`)
    .join("; ");
}

// The researchers' trail, under the figures: for a researcher with `researcher: true` only.
async function showTrail() {
  const { actions } = await asResearcher(() => api.call("get_researcher_actions"));
  $("trail").tBodies[0].replaceChildren(...actions.map((act) => {
    const row = document.createElement("tr");
    row.dataset.action = act.action;
    row.append(cell("td", utc(act.at)), cell("td", act.uid), cell("td", act.action), cell("td", describeDetails(act.details)));
    return row;
  }));
  $("no-trail").hidden = actions.length > 0;
  $("trail").hidden = actions.length === 0;
  $("trail-step").hidden = false;
}

function describeScope(scope, experiments) {
  if (scope.every) return "This account covers every experiment.";
  const shown = new Set(experiments.map((experiment) => experiment.experimentId));
  const empty = scope.experiments.filter((id) => !shown.has(id));
  return `This account covers only experiment${scope.experiments.length === 1 ? "" : "s"} ` +
    `${scope.experiments.join(", ")}: other experiments are neither shown nor exported.` +
    (empty.length ? ` No sessions yet in ${empty.join(", ")}.` : "");
}

// The configured experiments the account covers, each with its settings, its figures (from
// get_study_stats, when it gives them) and a form; and the form for a new one.
async function showConfigurations(stats) {
  const { experiments } = await asResearcher(() => api.call("configure_experiment"));
  const byId = new Map(stats.experiments.map((experiment) => [experiment.experimentId, experiment]));
  $("configurations").replaceChildren(...experiments.map((config) =>
    configurationArticle(config, byId.get(config.experimentId), saveConfiguration)));
  $("no-configurations").hidden = experiments.length > 0;
  $("new-experiment-form").replaceChildren(configurationForm(null, saveConfiguration));
  $("configure-step").hidden = false;
}

const saveConfiguration = action(async (event) => {
  const config = documentOf(event.target);
  const saved = await asResearcher(() => api.call("configure_experiment", config));
  await showStudies();
  showNotice(`Saved the configuration of ${saved.experimentId} (${utc(saved.updatedAt)}).`);
});

async function showStudies() {
  clearStudies();
  let stats;
  try {
    // A token taken before the role was granted is refreshed and tried again (asResearcher).
    stats = await asResearcher(() => api.call("get_study_stats"));
  } catch (error) {
    if (error instanceof ApiError && error.code === "permission_denied") {
      showNotice(`${auth.user.email} is not a researcher, so this page shows it no study data. ` +
        "The role is given by whoever runs the study (make researcher ARGS=\"grant EMAIL\"); " +
        "once it is granted, reload this page (it asks for a new token itself). " +
        "Or sign out and sign in with a researcher's account.");
      return;
    }
    throw error;
  }
  const claims = await auth.claims(); // the token that was just accepted
  const scope = scopeOf(claims) || { every: false, experiments: stats.experiments.map((e) => e.experimentId) };
  showNotice(describeScope(scope, stats.experiments));
  $("generated").textContent = `Figures as of ${utc(stats.generatedAt)}.`;
  $("studies-step").hidden = false;
  showTable(stats.experiments);
  showDownloads(stats.experiments, scope);
  $("charts-step").hidden = stats.experiments.length === 0;
  showCharts(stats.experiments);
  await showConfigurations(stats);
  if (scope.every) await showTrail();
}

function render() {
  const user = auth ? auth.user : null;
  $("signin-step").hidden = user !== null;
  $("sign-out").hidden = !user;
  $("account").hidden = !user;
  if (user) $("account").textContent = `Signed in as ${user.email}`;
}

function action(handler) {
  return uiAction(handler, render);
}

// The export is fetched with the ID token (a plain link could not send the Authorization
// header), so the whole file is held in browser memory as a Blob, then saved through a Blob URL
// under the name the function gave in Content-Disposition. Fine for this page; an export too
// large for the browser is for `make export ARGS="--out FILE"` next to the database.
async function download(button) {
  const { format, table } = button.dataset;
  const scope = scopeOf(await auth.claims()) || { every: true, experiments: [] };
  const experimentId = exportExperiments(scope);
  $("download-status").textContent = `Preparing ${button.textContent}…`;
  const { blob, filename } = await asResearcher(() => api.download("export_data", { format, table, experimentId }));
  const name = filename || (format === "zip" ? "export.zip" : `${table}.${format}`);
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  // Revoked a minute later, not at once: some browsers read the URL after click() returns.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  $("download-status").textContent = `Saved ${name} (${blob.size} bytes).`;
  if (scope.every) await showTrail(); // the export is in the trail now
}

document.querySelectorAll("#downloads-step button[data-format]").forEach((button) => {
  button.addEventListener("click", action(() => download(button)));
});

$("exclude-form").addEventListener("submit", action(async () => {
  const sessionId = $("exclude-session-id").value.trim();
  const excluded = await asResearcher(() => api.call("exclude_session", { sessionId }));
  $("exclude-session-id").value = "";
  await showStudies();
  $("exclude-status").textContent = `Excluded session ${excluded.sessionId}` +
    (excluded.experimentId ? ` of ${excluded.experimentId}.` : ".");
}));

$("signin-form").addEventListener("submit", action(async () => {
  await auth.signIn($("email").value, $("password").value);
  $("password").value = "";
  render();
  await showStudies();
}));

$("sign-out").addEventListener("click", action(async () => {
  await auth.signOut();
  clearStudies();
  showNotice("");
}));

async function start() {
  const config = await loadConfig();
  auth = await Auth.start(config);
  api = new Api(config.functionsUrl, { getIdToken: () => auth.getIdToken() });
  render();
  if (auth.user) await showStudies();
}

try {
  await start();
} catch (error) {
  showError(error);
}
render();
