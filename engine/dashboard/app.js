// The dashboard: a small single-page app over the REST API (/v1), which it calls with the
// session cookie set at login. Views: #/runs (live), #/runs/<id>, #/functions, #/events.
"use strict";

const view = document.getElementById("view");
let refreshTimer = null;

async function api(path, options = {}) {
  const res = await fetch(path, { credentials: "same-origin", ...options });
  if (res.status === 401) { location.href = "/login"; throw new Error("logged out"); }
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

const time = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "");
const duration = (a, b) => (a && b ? `${((b - a) / 1000).toFixed(3)} s` : "");
const json = (v) => el("pre", {}, JSON.stringify(v, null, 2));
const status = (s) => el("span", { class: `status-${s}` }, s ?? "");

// What a step shows: its error, what it waits for, or its output.
function stepResult(s) {
  if (s.error) return json(s.error);
  if (s.status === "waiting" && s.kind === "invoke") return `run ${s.invoked_run_id} of ${s.invoked_function}, until ${time(s.until)}`;
  if (s.status === "waiting") return `for ${s.waiting_for?.event}, until ${time(s.until)}`;
  if (s.status === "sleeping") return `until ${time(s.until)}`;
  if (s.timed_out) return "timed out";
  return json(s.output);
}

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
            el("tbody", {}, rows));
}

// Runs: filters in the hash's query (#/runs?status=failed&function=f), refreshed every 2 s.
async function runsView(params) {
  const query = new URLSearchParams(params);
  query.set("limit", "50");
  const data = await api(`/v1/runs?${query}`);
  const filters = el("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const f = new URLSearchParams(new FormData(e.target));
    for (const [k, v] of [...f]) if (!v) f.delete(k);
    location.hash = `#/runs?${f}`;
  } },
    el("select", { name: "status" }, ["", "queued", "running", "sleeping", "waiting", "completed", "failed", "cancelled"]
      .map((s) => { const o = el("option", { value: s }, s || "any status"); if (s === params.get("status")) o.selected = true; return o; })),
    el("input", { name: "function", placeholder: "function", value: params.get("function") ?? "" }),
    el("button", { type: "submit" }, "Filter"));
  const rows = data.runs.map((r) => el("tr", {},
    el("td", {}, el("a", { href: `#/runs/${r.id}` }, r.id)), el("td", {}, status(r.status)),
    el("td", {}, r.function_id), el("td", {}, r.event_id), el("td", {}, time(r.started_at)),
    el("td", {}, duration(r.started_at, r.ended_at))));
  const next = data.next_cursor
    ? el("a", { href: `#/runs?${new URLSearchParams({ ...Object.fromEntries(params), cursor: data.next_cursor })}` }, "Older runs →")
    : "";
  view.replaceChildren(el("h2", {}, "Runs"), filters,
                       table(["Run", "Status", "Function", "Event", "Started (UTC)", "Duration"], rows), el("p", {}, next));
  if (!params.get("cursor")) refreshTimer = setTimeout(() => route(), 2000);  // live: the first page
}

async function runView(id) {
  const run = await api(`/v1/runs/${encodeURIComponent(id)}`);
  const act = (verb, body) => async () => {
    try {
      const res = await api(`/v1/runs/${id}/${verb}`, { method: "POST", headers: { "Content-Type": "application/json" },
                                                      body: JSON.stringify(body ?? {}) });
      location.hash = `#/runs/${res.run.id}`;
      route();
    } catch (e) { alert(e.message); }
  };
  const actions = el("div", { class: "actions" });
  if (!["completed", "failed", "cancelled"].includes(run.status)) actions.append(el("button", { onclick: act("cancel") }, "Cancel"));
  if (["failed", "cancelled"].includes(run.status)) actions.append(el("button", { onclick: act("resume") }, "Resume"));
  actions.append(el("button", { onclick: act("replay") }, "Replay"));
  const steps = (run.steps ?? []).map((s) => el("tr", {},
    el("td", {}, s.key), el("td", {}, s.kind), el("td", {}, status(s.status)), el("td", {}, String(s.attempts ?? "")),
    el("td", {}, duration(s.started_at, s.ended_at)),
    el("td", {}, stepResult(s)),
    el("td", {}, s.kind === "run" ? el("button", { onclick: () => {
      const output = prompt(`Rerun from '${s.key}' with this output (JSON), or leave it as is to run the step again:`,
                            JSON.stringify(s.output));
      if (output === null) return;
      const body = { from_step: s.key };
      if (output !== JSON.stringify(s.output)) body.output = JSON.parse(output);
      act("replay", body)();
    } }, "Rerun from here") : "")));
  view.replaceChildren(
    el("h2", {}, `Run ${run.id}`),
    el("dl", {}, el("dt", {}, "function"), el("dd", {}, run.function_id), el("dt", {}, "status"), el("dd", {}, status(run.status)),
       el("dt", {}, "started"), el("dd", {}, time(run.started_at)), el("dt", {}, "ended"), el("dd", {}, time(run.ended_at)),
       el("dt", {}, "event"), el("dd", {}, json(run.event))),
    actions,
    el("h3", {}, "Steps"), table(["Step", "Kind", "Status", "Attempts", "Duration", "Output or error", ""], steps),
    el("h3", {}, run.error ? "Error" : "Output"), json(run.error ?? run.output));
  if (!["completed", "failed", "cancelled"].includes(run.status)) refreshTimer = setTimeout(() => route(), 2000);
}

async function functionsView() {
  const data = await api("/v1/functions");
  const rows = data.functions.map((f) => el("tr", {},
    el("td", {}, el("a", { href: `#/runs?function=${encodeURIComponent(f.id)}` }, f.id)),
    el("td", {}, f.triggers.map((t) => t.cron ? `cron ${t.cron}` : t.event + (t.filter ? ` if ${t.filter}` : "")).join(", ")),
    el("td", {}, String(f.retries)), el("td", {}, f.registered_by)));
  view.replaceChildren(el("h2", {}, "Functions"), table(["Function", "Triggers", "Retries", "Registered by"], rows));
}

async function eventsView() {
  const data = await api("/v1/events?limit=50");
  const rows = data.events.map((e) => el("tr", {},
    el("td", {}, e.id), el("td", {}, e.name), el("td", {}, time(e.received_at)), el("td", {}, json(e.data)),
    el("td", {}, el("a", { href: `#/runs?event=${e.id}` }, "runs"))));
  view.replaceChildren(el("h2", {}, "Events"), table(["Event", "Name", "Received (UTC)", "Data", ""], rows));
}

async function route() {
  clearTimeout(refreshTimer);
  const [path, query] = (location.hash.slice(1) || "/runs").split("?");
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean);
  try {
    if (parts[0] === "runs" && parts[1]) await runView(parts[1]);
    else if (parts[0] === "functions") await functionsView();
    else if (parts[0] === "events") await eventsView();
    else await runsView(params);
  } catch (e) {
    view.replaceChildren(el("p", { class: "error" }, e.message));
  }
}

window.addEventListener("hashchange", route);
route();
