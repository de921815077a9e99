// The researcher page's experiment configurations (docs/researchers.md): each configured
// experiment's settings and, from get_study_stats when it gives them, its figures per condition;
// a form that edits the whole document (configure_experiment replaces it); one empty form for a
// new experiment. Only what the elements show is here; research.js calls the functions.

const PLATFORMS = ["none", "prolific", "sona", "mturk"];

function element(tag, { text, className, attributes = {} } = {}, ...children) {
  const made = document.createElement(tag);
  if (text !== undefined) made.textContent = text;
  if (className) made.className = className;
  for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, value);
  made.append(...children);
  return made;
}

function input(label, { name, type = "text", value = "", ...attributes }) {
  const field = element("input", { attributes: { name, type, ...attributes } });
  if (type === "checkbox") field.checked = Boolean(value);
  else field.value = value ?? "";
  return element("label", {}, `${label} `, field);
}

function select(label, name, options, chosen) {
  const field = element("select", { attributes: { name } },
    ...options.map((option) => {
      const made = element("option", { text: option });
      made.selected = option === chosen;
      return made;
    }));
  return element("label", {}, `${label} `, field);
}

function removeButton(what) {
  const button = element("button", { text: `Remove ${what}`, attributes: { type: "button" } });
  button.addEventListener("click", () => button.closest(".row").remove());
  return button;
}

function conditionRow(condition = { name: "", quota: null }) {
  return element("div", { className: "row", attributes: { "data-row": "condition" } },
    input("Condition", { name: "condition-name", value: condition.name, maxlength: 64, pattern: "[A-Za-z0-9._\\-]+" }),
    input("Quota", { name: "condition-quota", type: "number", min: 1, value: condition.quota ?? "" }),
    removeButton("condition"));
}

function outcomeRow(name = "", outcome = {}) {
  return element("div", { className: "row", attributes: { "data-row": "outcome" } },
    input("Outcome", { name: "outcome-name", value: name, maxlength: 64, pattern: "[A-Za-z0-9._\\-]+" }),
    input("Code", { name: "outcome-code", value: outcome.code ?? "", maxlength: 64, autocomplete: "off" }),
    input("Server code", { name: "outcome-server-code", value: outcome.serverCode ?? "", maxlength: 64, autocomplete: "off" }),
    input("Credit URL", { name: "outcome-credit-url", value: outcome.creditUrl ?? "", maxlength: 2048 }),
    removeButton("outcome"));
}

function rows(title, kind, made, addRow) {
  const holder = element("div", { attributes: { "data-rows": kind } }, ...made);
  const add = element("button", { text: `Add ${kind === "condition" ? "a condition" : "an outcome"}`, attributes: { type: "button" } });
  add.addEventListener("click", () => holder.append(addRow()));
  return element("fieldset", {}, element("legend", { text: title }), holder, add);
}

// A form for one configuration (null: a new experiment), whose submit event goes to onSave (which
// reads the document with documentOf(event.target)). Every field has a label.
export function configurationForm(config, onSave) {
  const value = config || { experimentId: "", active: true, maxParticipants: null, leaseMinutes: 60,
    conditions: [], platform: "none", allowRepeat: false, outcomes: {}, redirectUrl: null, prolificServerSide: false };
  const form = element("form", { className: "configuration-form" },
    input("Experiment id", { name: "experimentId", value: value.experimentId, required: "", maxlength: 128,
      pattern: "[A-Za-z0-9._\\-]+", ...(config ? { readonly: "" } : {}) }),
    input("Active (admits new participants)", { name: "active", type: "checkbox", value: value.active }),
    input("Max participants (empty: no cap)", { name: "maxParticipants", type: "number", min: 0, value: value.maxParticipants ?? "" }),
    input("Lease minutes", { name: "leaseMinutes", type: "number", min: 1, max: 10080, value: value.leaseMinutes, required: "" }),
    select("Platform", "platform", PLATFORMS, value.platform),
    input("Allow repeat participation", { name: "allowRepeat", type: "checkbox", value: value.allowRepeat }),
    input("Prolific completion from the server", { name: "prolificServerSide", type: "checkbox", value: value.prolificServerSide }),
    input("Redirect URL (platform none)", { name: "redirectUrl", type: "url", value: value.redirectUrl ?? "", maxlength: 2048 }),
    rows("Conditions", "condition", value.conditions.map((condition) => conditionRow(condition)), () => conditionRow()),
    rows("Outcomes", "outcome", Object.entries(value.outcomes).map(([name, outcome]) => outcomeRow(name, outcome)), () => outcomeRow()),
    element("button", { text: config ? "Save the configuration" : "Configure the experiment", attributes: { type: "submit" } }));
  form.addEventListener("submit", onSave);
  return form;
}

// The configure_experiment document the form describes: empty fields are null (or left out).
export function documentOf(form) {
  const field = (name, within = form) => within.querySelector(`[name="${name}"]`);
  const text = (name, within) => field(name, within).value.trim();
  const number = (name, within) => (text(name, within) === "" ? null : Number(text(name, within)));
  const outcomes = {};
  for (const row of form.querySelectorAll('[data-row="outcome"]')) {
    const name = text("outcome-name", row);
    if (!name) continue;
    const outcome = {};
    for (const [key, fieldName] of [["code", "outcome-code"], ["serverCode", "outcome-server-code"], ["creditUrl", "outcome-credit-url"]]) {
      if (text(fieldName, row)) outcome[key] = text(fieldName, row);
    }
    outcomes[name] = outcome;
  }
  return {
    experimentId: text("experimentId"),
    active: field("active").checked,
    maxParticipants: number("maxParticipants"),
    leaseMinutes: number("leaseMinutes"),
    conditions: [...form.querySelectorAll('[data-row="condition"]')]
      .filter((row) => text("condition-name", row))
      .map((row) => ({ name: text("condition-name", row), quota: number("condition-quota", row) })),
    platform: field("platform").value,
    allowRepeat: field("allowRepeat").checked,
    outcomes,
    redirectUrl: text("redirectUrl") || null,
    prolificServerSide: field("prolificServerSide").checked,
  };
}

function describe(config) {
  const conditions = config.conditions.map((c) => (c.quota === null ? c.name : `${c.name} (quota ${c.quota})`));
  // The codes themselves are in the form (Edit) only, not in the summary.
  const given = (o) => [o.code && "code", o.serverCode && "server code", o.creditUrl && "credit URL"].filter(Boolean);
  const outcomes = Object.entries(config.outcomes).map(([name, o]) =>
    (given(o).length ? `${name} (${given(o).join(", ")})` : name));
  return [
    ["Status", config.active ? "active: admits new participants" : "inactive: admits no new participant"],
    ["Platform", config.platform + (config.prolificServerSide ? " (completion from the server)" : "")],
    ["Cap", config.maxParticipants === null ? "no cap" : `${config.maxParticipants} participants`],
    ["Lease", `${config.leaseMinutes} minutes`],
    ["Conditions", conditions.length ? conditions.join(", ") : "none"],
    ["Repeat participation", config.allowRepeat ? "allowed" : "refused"],
    ["Outcomes", outcomes.length ? outcomes.join("; ") : "completed (no code)"],
    ...(config.redirectUrl ? [["Redirect URL", config.redirectUrl]] : []),
  ];
}

function definitions(pairs) {
  return element("dl", {}, ...pairs.flatMap(([term, value]) => [element("dt", { text: term }), element("dd", { text: String(value) })]));
}

// The study's figures of §14 that get_study_stats gives for a configured experiment: per
// condition places, started, completed and abandoned; outcomes; deliveries; test and excluded
// sessions. Each part only when the answer has it.
function figures(stats) {
  const parts = [];
  if (!stats) return parts;
  if (Array.isArray(stats.conditions) && stats.conditions.length) {
    const head = ["Condition", "Quota", "Places", "Started", "Completed", "Abandoned"];
    parts.push(element("div", { className: "scroll" }, element("table", { className: "figures", attributes: { "data-figures": "conditions" } },
      element("thead", {}, element("tr", {}, ...head.map((name) => element("th", { text: name, attributes: { scope: "col" } })))),
      element("tbody", {}, ...stats.conditions.map((c) => {
        const row = element("tr", { attributes: { "data-condition": c.name } },
          element("th", { text: c.name, attributes: { scope: "row" } }),
          ...[c.quota ?? "—", c.places, c.started, c.completed, c.abandoned].map((v) => element("td", { text: String(v ?? "—") })));
        return row;
      })))));
  }
  const counts = [];
  for (const [name, label] of [["completed", "Completed sessions"], ["abandoned", "Abandoned sessions"],
    ["testSessions", "Test sessions"], ["excluded", "Excluded sessions"]]) {
    if (typeof stats[name] === "number") counts.push([label, stats[name]]);
  }
  if (stats.outcomes && typeof stats.outcomes === "object") {
    const entries = Object.entries(stats.outcomes);
    counts.push(["Outcomes", entries.length ? entries.map(([name, n]) => `${name} ${n}`).join(", ") : "none yet"]);
  }
  if (stats.deliveries && typeof stats.deliveries === "object") {
    const d = stats.deliveries;
    counts.push(["Prolific deliveries", `${d.delivered ?? 0} delivered, ${d.pending ?? 0} pending, ${d.failed ?? 0} failed`]);
  }
  if (counts.length) parts.push(element("div", { className: "figures", attributes: { "data-figures": "sessions" } }, definitions(counts)));
  return parts;
}

// One configured experiment: its settings, its figures, and the form that edits it.
export function configurationArticle(config, stats, onSave) {
  const edit = element("details", {}, element("summary", { text: "Edit" }), configurationForm(config, onSave));
  return element("article", { className: "configuration", attributes: { "data-experiment": config.experimentId } },
    element("h3", { text: config.experimentId, className: "experiment-name" }),
    element("p", { text: `Configured; last changed ${utc(config.updatedAt)}.` }),
    definitions(describe(config)),
    ...figures(stats),
    edit);
}

// "2026-12-03T12:00:00.000000Z" → "2026-12-03 12:00 UTC"
export function utc(time) {
  return time ? `${time.slice(0, 10)} ${time.slice(11, 16)} UTC` : "—";
}
