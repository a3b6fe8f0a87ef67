// The dashboard: a single-page app over the REST API (/v1), which it calls with the session
// cookie set at login. Views, by the location's hash: #/runs (live, filtered, with bulk
// actions), #/runs/<id> (a run: timeline, steps, actions), #/functions (counts and charts),
// #/events (recent events, a form to send one).
//
// When a view has rendered, #view gets data-ready="<view>" and window.durableRender holds
// {view, ms}: the time from the route's start to the rendered page (the browser tests wait
// for the first and report the second).
"use strict";

const view = document.getElementById("view");
const statuses = ["queued", "running", "sleeping", "waiting", "completed", "failed", "cancelled"];
const finished = (status) => ["completed", "failed", "cancelled"].includes(status);
let refreshTimer = null;
let generation = 0;  // of the current route: a view still loading for an older one renders nothing

// ---- helpers ----------------------------------------------------------------------------

async function api(path, options = {}) {
  const res = await fetch(path, { credentials: "same-origin", ...options });
  if (res.status === 401) { location.href = "/login"; throw new Error("logged out"); }
  const body = await res.json();
  if (!res.ok) throw Object.assign(new Error(body.error || `HTTP ${res.status}`), { status: res.status });
  return body;
}

const post = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                         body: JSON.stringify(body ?? {}) });

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    // Styles through the CSSOM: the Content-Security-Policy forbids style attributes.
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "style") node.style.cssText = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

// Times are shown in UTC, as the API and the logs give them.
const time = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 23) : "");
const shortTime = (ms) => time(ms).slice(0, 19);

// A length of time, to the unit that matters: "12 ms", "1.234 s", "15 s", "2 h 5 min", "3 d".
function span(ms) {
  if (ms == null) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60e3) return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(ms < 10e3 ? 3 : 1)} s`;
  const units = [["d", 86400e3], ["h", 3600e3], ["min", 60e3], ["s", 1e3]];
  const first = units.findIndex(([, size]) => ms >= size);
  const parts = [];
  let rest = ms;
  for (const [name, size] of units.slice(first, first + 2)) {
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n} ${name}`);
    rest -= n * size;
  }
  return parts.join(" ");
}
const duration = (a, b) => (a && b ? span(b - a) : "");

const json = (v, attrs = {}) => el("pre", attrs, JSON.stringify(v, null, 2));
// JSON on one line when it is short; else its start, which opens to the whole, formatted.
function compactJson(v) {
  const line = JSON.stringify(v);
  if (line.length <= 100) return el("code", {}, line);
  return el("details", {}, el("summary", { class: "mono" }, `${line.slice(0, 100)}…`), json(v));
}
const status = (s) => el("span", { class: `status status-${s}` }, s ?? "");
const runLink = (id) => el("a", { href: `#/runs/${encodeURIComponent(id)}` }, id);

// `body`: the rows, or a <tbody> to fill later.
function table(headers, body, attrs = {}) {
  return el("table", attrs, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
            body instanceof HTMLTableSectionElement ? body : el("tbody", {}, body));
}

// Shows the nodes as the view `name`, unless another route started meanwhile.
function render(gen, name, started, ...nodes) {
  if (gen !== generation) return false;
  view.replaceChildren(...nodes);
  view.dataset.ready = name;
  window.durableRender = { view: name, ms: performance.now() - started };
  return true;
}

// A modal dialog (a <dialog>) with `content` and buttons, each [label, action]: the action
// runs, then the dialog closes; an error it throws is shown in the dialog instead. While an
// action runs, every button is disabled and Escape does nothing, so that a double click
// cannot do it twice and closing cannot leave it half done unseen.
function openDialog(id, title, content, buttons) {
  document.getElementById(id)?.remove();
  const error = el("p", { class: "error", hidden: true });
  const row = el("div", { class: "actions" });
  const dialog = el("dialog", { id }, el("h3", {}, title), content, error, row);
  let busy = false;
  for (const [label, action] of buttons) {
    row.append(el("button", { type: "button", onclick: async () => {
      if (busy) return;
      busy = true;
      for (const b of row.querySelectorAll("button")) b.disabled = true;
      error.hidden = true;
      try {
        if (action) await action(dialog);
        dialog.close();
      } catch (e) {
        error.textContent = e.message;
        error.hidden = false;
      } finally {
        busy = false;
        for (const b of row.querySelectorAll("button")) b.disabled = false;
      }
    } }, label));
  }
  dialog.addEventListener("cancel", (e) => { if (busy) e.preventDefault(); });
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}
const dialogOpen = () => document.querySelector("dialog[open]") !== null;

// ---- runs ---------------------------------------------------------------------------------

// The API filter of the runs view's parameters (#/runs?status=&function=&q=&from=&to=&cursor=).
// `q` is a run id or an event id: an event's runs if it is one, else the run with that id.
async function runsFilter(params) {
  const filter = {};
  if (params.get("status")) filter.status = params.get("status");
  if (params.get("function")) filter.function = params.get("function");
  for (const [param, field] of [["from", "started_after"], ["to", "started_before"]]) {
    const value = params.get(param);
    if (!value) continue;
    const ms = Date.parse(`${value}Z`);  // the form's times are UTC, as shown everywhere
    if (Number.isNaN(ms)) throw new Error(`"${param}" is not a time: ${value}`);
    filter[field] = ms;
  }
  const q = params.get("q")?.trim();
  if (q) {
    // The event's runs first: an event id is what one searches most, and it answers without
    // a 404 for the run id.
    const ofEvent = await api(`/v1/runs?${new URLSearchParams({ event: q, limit: "1" })}`);
    if (ofEvent.runs.length) {
      filter.event = q;
    } else {
      const run = await api(`/v1/runs/${encodeURIComponent(q)}`).catch((e) => { if (e.status === 404) return null; throw e; });
      if (run) return { run };
      await api(`/v1/events/${encodeURIComponent(q)}`).catch((e) => {
        throw e.status === 404 ? new Error(`No run or event has the id ${q}.`) : e;
      });
      filter.event = q;  // an event that started no run
    }
  }
  return filter;
}

function runRow(r) {
  return el("tr", { "data-run-id": r.id },
    el("td", {}, runLink(r.id)), el("td", {}, status(r.status)),
    el("td", {}, el("a", { href: `#/runs?function=${encodeURIComponent(r.function_id)}` }, r.function_id)),
    el("td", {}, el("a", { href: `#/runs?q=${encodeURIComponent(r.event_id)}`, class: "mono" }, r.event_id)),
    el("td", {}, shortTime(r.started_at ?? r.created_at)),
    el("td", {}, r.started_at ? duration(r.started_at, r.ended_at ?? Date.now()) : "not started"));
}

async function runsView(params, gen, started) {
  const filter = await runsFilter(params);
  const form = el("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const f = new URLSearchParams(new FormData(e.target));
    for (const [k, v] of [...f]) if (!v.trim()) f.delete(k);
    location.hash = `#/runs?${f}`;
  } },
    el("select", { name: "status", "aria-label": "status" }, ["", ...statuses].map((s) =>
      el("option", { value: s, selected: s === (params.get("status") ?? "") }, s || "any status"))),
    el("input", { name: "function", placeholder: "function", value: params.get("function") ?? "", "aria-label": "function" }),
    el("input", { name: "q", placeholder: "run or event id", value: params.get("q") ?? "", class: "mono", "aria-label": "run or event id" }),
    el("label", {}, "from ", el("input", { type: "datetime-local", name: "from", step: 1, value: params.get("from") ?? "" })),
    el("label", {}, "to ", el("input", { type: "datetime-local", name: "to", step: 1, value: params.get("to") ?? "" })),
    el("span", { class: "muted" }, "UTC"),
    el("button", { type: "submit" }, "Filter"),
    el("a", { href: "#/runs" }, "Clear"));

  const body = el("tbody");
  const pager = el("p", { class: "pager" });
  const note = el("span", { class: "muted" });
  // Bulk actions need a filter: the API never acts on every run.
  const bulkable = !filter.run && Object.keys(filter).length > 0;
  const bulk = el("div", { class: "actions" },
    el("button", { type: "button", disabled: !bulkable, onclick: () => bulkDialog("cancellations", filter) }, "Cancel matching…"),
    el("button", { type: "button", disabled: !bulkable, onclick: () => bulkDialog("replays", filter) }, "Replay matching…"),
    note);

  // The rows: the page at the cursor. The first page is live: fetched again every 2 s, and
  // still after a failed fetch (an engine restarting), which the note reports meanwhile.
  async function refresh() {
    let runs, next = null;
    if (filter.run) {
      runs = [filter.run];
    } else {
      // The filter's fields are the API's parameters.
      const query = new URLSearchParams({ ...filter, limit: "50" });
      if (params.get("cursor")) query.set("cursor", params.get("cursor"));
      const data = await api(`/v1/runs?${query}`);
      runs = data.runs;
      next = data.next_cursor;
    }
    if (gen !== generation) return;
    body.replaceChildren(...(runs.length ? runs.map(runRow)
                                         : [el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No runs match."))]));
    const links = [];
    if (params.get("cursor")) {
      const first = new URLSearchParams(params);
      first.delete("cursor");
      links.push(el("a", { href: `#/runs?${first}` }, "← Newest runs"));
    }
    if (next) links.push(el("a", { href: `#/runs?${new URLSearchParams({ ...Object.fromEntries(params), cursor: next })}` }, "Older runs →"));
    pager.replaceChildren(...links);
  }
  const live = () => {
    if (gen !== generation) return;
    refreshTimer = setTimeout(() => refresh().then(() => { note.textContent = ""; },
                                                   (e) => { note.textContent = `not updating: ${e.message}; retrying`; })
                                             .finally(live), 2000);
  };
  await refresh();
  if (!render(gen, "runs", started, el("h2", {}, "Runs"), form, bulk,
              table(["Run", "Status", "Function", "Event", "Started (UTC)", "Duration"], body, { class: "runs" }), pager)) return;
  if (!params.get("cursor") && !filter.run) live();
}

// Cancels or replays every run matching `filter`, after a dialog that says how many.
async function bulkDialog(action, filter) {
  const verb = action === "cancellations" ? "Cancel" : "Replay";
  let total;
  try {
    total = (await post(`/v1/${action}`, { ...filter, dry_run: true })).total;
  } catch (e) { alert(e.message); return; }
  const described = Object.entries(filter).map(([k, v]) => `${k} ${k.startsWith("started") ? shortTime(v) : v}`).join(", ");
  const progress = el("p", { class: "muted" });
  openDialog("bulk", `${verb} matching runs`, el("div", {},
    el("p", {}, el("strong", { class: "bulk-total" }, String(total)), ` run${total === 1 ? "" : "s"} match ${described}.`),
    action === "cancellations" ? el("p", { class: "muted" }, "Runs already finished are left as they are.") : "",
    progress),
  [["Confirm", async () => {
    let cursor = null, done = 0;
    do {
      const page = await post(`/v1/${action}`, { ...filter, cursor });
      done += page.count;
      cursor = page.next_cursor;
      progress.textContent = `${verb === "Cancel" ? "Cancelled" : "Replayed"} ${done} of ${total}…`;
    } while (cursor);
    route();
  }], ["Close", null]]);
}

// ---- a run --------------------------------------------------------------------------------

// The error of a step or run: its name and message, then the rest (stack, step) as JSON.
function errorBlock(error, attrs = {}) {
  if (error == null) return "";
  if (typeof error !== "object") return el("div", attrs, json(error));
  const { name, message, ...rest } = error;
  return el("div", attrs, el("strong", {}, name ? `${name}: ` : ""), message ?? "",
            Object.keys(rest).length ? json(rest) : "");
}

// What a step shows: its error, what it waits for, or its output.
function stepResult(s) {
  const parts = [];
  if (s.error) parts.push(errorBlock(s.error, { class: "step-error" }));
  if (s.status === "waiting" && s.kind === "invoke") parts.push(`run `, runLink(s.invoked_run_id), ` of ${s.invoked_function}, until ${shortTime(s.until)}`);
  else if (s.status === "waiting") parts.push(`for ${s.waiting_for?.event}${s.waiting_for?.match ? ` matching ${s.waiting_for.match}` : ""}${s.waiting_for?.if ? ` if ${s.waiting_for.if}` : ""}, until ${shortTime(s.until)}`);
  else if (s.status === "sleeping") parts.push(`until ${shortTime(s.until)}`);
  else if (s.status === "retrying" && s.retry_at) parts.push(el("div", { class: "muted" }, `next attempt at ${shortTime(s.retry_at)}`));
  else if (s.timed_out) parts.push("timed out");
  else if (!s.error) parts.push(json(s.output));
  if (s.kind === "invoke" && s.status !== "waiting" && s.invoked_run_id) parts.push(el("div", { class: "muted" }, "child run ", runLink(s.invoked_run_id)));
  if ((s.attempt_errors ?? []).length > (s.status === "failed" || s.status === "retrying" ? 1 : 0)) {
    parts.push(el("details", {}, el("summary", {}, `${s.attempt_errors.length} failed attempt${s.attempt_errors.length === 1 ? "" : "s"}`),
      el("ol", { start: 0 }, s.attempt_errors.map((a) => el("li", {}, `${shortTime(a.at)} `, errorBlock(a.error))))));
  }
  return parts;
}

// The timeline, to scale: one row per step (and one for the run), from the run's creation
// to its end, or, while it runs, to the furthest deadline it waits for (a sleep's end, a
// wait's timeout, the next retry). Run steps show each attempt (failed ones red) and the time
// between them; sleeps and waits show their span, pending ones solid up to now and pale up to
// their deadline.
function timeline(run, now) {
  const t0 = run.created_at;
  const end = run.ended_at ?? now;
  const t1 = run.steps.reduce((t, s) => (finished(run.status) || s.ended_at ? t : Math.max(t, s.until ?? s.retry_at ?? 0)),
                             Math.max(end, t0 + 1));
  const total = t1 - t0;
  const pct = (t) => `${(Math.min(Math.max(t - t0, 0), total) / total) * 100}%`;
  // At least 2 px wide, and inside the track even when it ends at the run's end.
  const bar = (from, to, cls, title) => el("div", { class: `bar ${cls}`, title,
    style: `left:min(${pct(from)}, calc(100% - 2px));width:max(2px, calc(${pct(to)} - ${pct(from)}))` });
  const row = (label, bars, cls = "") => el("div", { class: `tl-row ${cls}` }, el("div", { class: "tl-label", title: label }, label),
                                           el("div", { class: "tl-track" }, bars));

  const rows = [row("run", [
    run.started_at && run.started_at > t0 ? bar(t0, run.started_at, "queued", `queued ${duration(t0, run.started_at)}`) : "",
    bar(run.started_at ?? t0, end, `run-${run.status}`, `${run.status}, ${duration(run.started_at ?? t0, end)}`),
    t1 > end ? bar(end, end, "now", `now, ${shortTime(now)}`) : "",
  ], "tl-run")];
  for (const s of run.steps) {
    const bars = [];
    if (s.kind === "run") {
      let previousEnd = null;
      for (const a of s.spans ?? []) {
        const from = a.started_at ?? a.ended_at;
        // Between attempts: the retry's backoff, or the time until an operator resumed the run.
        if (previousEnd != null && from > previousEnd) bars.push(bar(previousEnd, from, "backoff", `${duration(previousEnd, from)} until the next attempt`));
        bars.push(bar(from, a.ended_at, a.outcome, `attempt ${a.attempt + 1} ${a.outcome} after ${duration(from, a.ended_at) || "0 ms"}`));
        previousEnd = a.ended_at;
      }
      if (s.status === "retrying" && previousEnd != null) bars.push(bar(previousEnd, s.retry_at ?? now, "backoff", `next attempt at ${shortTime(s.retry_at)}`));
    } else {
      const kind = s.kind.replace(/_/g, "-");
      const stepEnd = s.ended_at ?? Math.min(now, end);
      bars.push(bar(s.started_at, stepEnd, `${kind} ${s.ended_at ? "" : "pending"}`,
                    `${s.kind} ${s.status}, ${duration(s.started_at, stepEnd)}${s.until ? `, until ${shortTime(s.until)}` : ""}`));
      if (!s.ended_at && !finished(run.status) && s.until > stepEnd) {
        bars.push(bar(stepEnd, s.until, `${kind} planned`, `${s.kind} until ${shortTime(s.until)}, in ${span(s.until - stepEnd)}`));
      }
    }
    rows.push(row(s.key, bars));
  }
  return el("div", { id: "timeline", class: "timeline" },
    el("div", { class: "tl-axis" }, el("span", {}, shortTime(t0)), el("span", {}, `${span(total)} in all`),
       el("span", {}, t1 > end ? `${shortTime(t1)} (ahead)` : shortTime(t1))),
    el("div", { class: "tl-rows" }, rows));
}

// A new run from step `s` of `run`: with the output in the box recorded for the step, or
// running the step itself again.
function rerunDialog(run, s) {
  const box = el("textarea", { name: "output", rows: 10, spellcheck: "false" }, JSON.stringify(s.output, null, 2));
  const replay = async (body) => {
    const res = await post(`/v1/runs/${encodeURIComponent(run.id)}/replay`, body);
    location.hash = `#/runs/${res.run.id}`;
  };
  openDialog("rerun", `Rerun from '${s.key}'`, el("div", {},
    el("p", {}, "A new run of the same event keeps the steps before this one. ",
       el("strong", {}, "Rerun"), " records the output below as this step's result and runs the steps after it; ",
       el("strong", {}, "Run step again"), " runs this step too."),
    box),
  [["Rerun", async () => {
    let output;
    try { output = JSON.parse(box.value); } catch (e) { throw new Error(`The output is not valid JSON: ${e.message}`); }
    await replay({ from_step: s.key, output });
  }], ["Run step again", () => replay({ from_step: s.key })], ["Close", null]]);
}

async function runView(id, gen, started) {
  let run = await api(`/v1/runs/${encodeURIComponent(id)}`);
  showRun(run, gen, started);
  // Live until it ends: fetched again every 2 s (10 s for a run of many steps), and drawn
  // again only when it changed, keeping the timeline's scroll; not while a dialog is open,
  // whose text would be lost. A failed fetch is tried again at the next turn.
  const poll = async () => {
    if (gen !== generation || finished(run.status)) return;
    if (!dialogOpen()) {
      try {
        const fresh = await api(`/v1/runs/${encodeURIComponent(id)}`);
        if (gen !== generation) return;
        if (JSON.stringify(fresh) !== JSON.stringify(run)) showRun(run = fresh, gen, performance.now());
      } catch { /* the next turn tries again */ }
    }
    refreshTimer = setTimeout(poll, run.steps.length > 200 ? 10000 : 2000);
  };
  refreshTimer = setTimeout(poll, run.steps.length > 200 ? 10000 : 2000);
}

function showRun(run, gen, started) {
  const id = run.id;
  const now = Date.now();
  const act = (verb) => async () => {
    try {
      const res = await post(`/v1/runs/${encodeURIComponent(id)}/${verb}`);
      if (res.run.id === id) route(); else location.hash = `#/runs/${res.run.id}`;
    } catch (e) { alert(e.message); }
  };
  const actions = el("div", { class: "actions" },
    finished(run.status) ? "" : el("button", { type: "button", onclick: act("cancel") }, "Cancel"),
    ["failed", "cancelled"].includes(run.status) ? el("button", { type: "button", onclick: act("resume") }, "Resume") : "",
    el("button", { type: "button", onclick: act("replay") }, "Replay"));
  const steps = run.steps.map((s) => el("tr", { "data-step-key": s.key },
    el("td", { class: "mono" }, s.key), el("td", {}, s.kind), el("td", {}, status(s.status)), el("td", {}, String(s.attempts ?? "")),
    el("td", {}, duration(s.started_at, s.ended_at)), el("td", {}, stepResult(s)),
    // From a failed step too: "Rerun" with an output stands in for a step that cannot succeed.
    el("td", {}, s.kind === "run" ? el("button", { type: "button", onclick: () => rerunDialog(run, s) }, "Rerun from here") : "")));
  const links = [];
  if (run.replay_of) links.push(el("dt", {}, "replay of"), el("dd", {}, runLink(run.replay_of)));
  if (run.replays?.length) links.push(el("dt", {}, "replays"), el("dd", {}, run.replays.flatMap((r, i) => [i ? ", " : "", runLink(r)])));
  if (run.parent_run_id) links.push(el("dt", {}, "invoked by"), el("dd", {}, runLink(run.parent_run_id)));
  const scrolled = view.querySelector(".tl-rows")?.scrollTop ?? 0;
  render(gen, "run", started,
    el("h2", {}, "Run ", el("span", { class: "mono" }, run.id)),
    el("dl", {},
      el("dt", {}, "status"), el("dd", {}, el("span", { id: "run-status", class: `status status-${run.status}` }, run.status),
                                   run.attempt ? ` (attempt ${run.attempt + 1})` : "",
                                   ["queued", "sleeping", "waiting"].includes(run.status) && run.available_at > now ? ` until ${shortTime(run.available_at)}` : ""),
      el("dt", {}, "function"), el("dd", {}, el("a", { href: `#/runs?function=${encodeURIComponent(run.function_id)}` }, run.function_id)),
      el("dt", {}, "created"), el("dd", {}, time(run.created_at)),
      el("dt", {}, "started"), el("dd", {}, time(run.started_at)),
      el("dt", {}, "ended"), el("dd", {}, time(run.ended_at), run.ended_at ? ` (${duration(run.started_at ?? run.created_at, run.ended_at)})` : ""),
      links),
    actions,
    el("h3", {}, "Timeline"), timeline(run, now),
    el("h3", {}, run.error ? "Error" : "Output"),
    el("div", { id: "run-output" }, run.error ? errorBlock(run.error, { class: "step-error" })
                                   : finished(run.status) ? json(run.output) : el("p", { class: "muted" }, "not finished yet")),
    run.body_errors?.length ? [el("h3", {}, "Errors outside steps"),
      el("ol", { start: 0 }, run.body_errors.map((b) => el("li", {}, `${shortTime(b.at)} `, errorBlock(b.error))))] : "",
    el("h3", {}, `Steps (${run.steps.length})`),
    table(["Step", "Kind", "Status", "Attempts", "Duration", "Output or error", ""], steps, { class: "steps" }),
    el("h3", {}, "Event"),
    run.event ? el("div", {}, el("p", {}, el("span", { class: "mono" }, run.event.name), ` · ${run.event.id} · received ${time(run.event.received_at)}`),
                   json(run.event.data)) : el("p", { class: "muted" }, "deleted by retention"));
  const rows = view.querySelector(".tl-rows");
  if (rows) rows.scrollTop = scrolled;
}

// ---- functions ----------------------------------------------------------------------------

// Runs over the last day: a bar per 15 minutes, completed, failed and the rest stacked.
function chart(stats) {
  const series = stats.chart.series;
  const n = series.completed.length;
  const other = series.completed.map((_, i) => statuses.reduce((sum, s) => sum + series[s][i], 0) - series.completed[i] - series.failed[i]);
  const max = Math.max(1, ...series.completed.map((c, i) => c + series.failed[i] + other[i]));
  const w = 3, h = 40;
  const bars = [];
  for (let i = 0; i < n; ++i) {
    let y = h;
    for (const [cls, value] of [["completed", series.completed[i]], ["failed", series.failed[i]], ["other", other[i]]]) {
      if (!value) continue;
      const height = Math.max(1, (value / max) * h);
      y -= height;
      const from = stats.chart.from + i * stats.chart.bucket_ms;
      bars.push(svg("rect", { x: i * w, y, width: w - 0.5, height, class: cls },
                    svg("title", {}, `${shortTime(from)}: ${value} ${cls === "other" ? "other" : cls}`)));
    }
  }
  // Each chart has its own scale: its peak is written beside it.
  return el("div", { class: "chart-box" },
    svg("svg", { class: "chart", width: n * w, height: h, viewBox: `0 0 ${n * w} ${h}`, role: "img",
                 "aria-label": "runs per 15 minutes over the last day" }, ...bars),
    el("span", { class: "muted" }, max > 1 || bars.length ? `peak ${max} / 15 min` : ""));
}

// The options that matter at a glance; every option is in the details.
function optionsSummary(o) {
  const parts = [`retries ${o.retries ?? 0}`];
  const b = o.backoff_ms ?? [];
  if (b.length && o.retries) parts.push(`backoff ${span(b[0])}${b.length > 1 ? ` … ${span(b[b.length - 1])}` : ""}`);
  if (o.timeouts_ms?.start) parts.push(`start within ${span(o.timeouts_ms.start)}`);
  if (o.timeouts_ms?.finish) parts.push(`finish within ${span(o.timeouts_ms.finish)}`);
  if (o.on_failure) parts.push("failure handler");
  if (o.failure_handler_of) parts.push(`handles failures of ${o.failure_handler_of}`);
  return parts.join(" · ");
}

// The counts by status of the runs created since `since` (ms), each a link to those runs.
function counts(c, functionId, since) {
  const shown = statuses.filter((s) => c[s]);
  if (!shown.length) return el("span", { class: "muted" }, "none");
  const from = new Date(since).toISOString().slice(0, 19);  // the runs form's UTC datetime-local
  return shown.flatMap((s, i) => [i ? ", " : "",
    el("a", { href: `#/runs?${new URLSearchParams({ status: s, function: functionId, from })}`, class: `status-${s}` }, `${c[s]} ${s}`)]);
}

async function functionsView(gen, started) {
  const data = await api("/v1/functions?stats=true");
  // The chart's last day ends now; its last hour is its last buckets.
  const hourAgo = (c) => c.from + c.series.completed.length * c.bucket_ms - 3600e3;
  const rows = data.functions.map((f) => {
    const { id, name, triggers, registered_at, registered_by, stats, ...options } = f;
    return el("tr", { "data-function-id": id },
      el("td", {}, el("a", { href: `#/runs?function=${encodeURIComponent(id)}` }, id), name && name !== id ? el("div", { class: "muted" }, name) : ""),
      el("td", {}, triggers.length ? triggers.map((t) => el("div", {}, t.cron ? `cron ${t.cron}` : t.event, t.filter ? el("span", { class: "muted" }, ` if ${t.filter}`) : ""))
                                   : el("span", { class: "muted" }, "none (invoked or a failure handler)")),
      el("td", {}, el("details", {}, el("summary", {}, optionsSummary(options)), json(options))),
      el("td", {}, counts(stats.last_hour, id, hourAgo(stats.chart))),
      el("td", {}, counts(stats.last_day, id, stats.chart.from)),
      el("td", {}, chart(stats)),
      el("td", { class: "muted" }, registered_by));
  });
  render(gen, "functions", started, el("h2", {}, "Functions"),
         table(["Function", "Triggers", "Options", "Last hour", "Last day", "Runs, last 24 h", "Registered by"], rows, { class: "functions" }));
}

// ---- events -------------------------------------------------------------------------------

async function eventsView(params, gen, started) {
  const query = new URLSearchParams({ limit: "50", runs: "true" });
  for (const k of ["name", "cursor"]) if (params.get(k)) query.set(k, params.get(k));
  const data = await api(`/v1/events?${query}`);

  const sent = el("p", { class: "sent", hidden: true });
  const form = el("form", { id: "send-event", class: "card send-event", onsubmit: async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const button = e.target.querySelector("button[type=submit]");
    if (button.disabled) return;  // sent once per click, however fast the clicks
    button.disabled = true;
    try {
      let dataValue;
      try { dataValue = JSON.parse(f.get("data") || "{}"); } catch (err) { throw new Error(`The data is not valid JSON: ${err.message}`); }
      const res = await post("/v1/events", { name: f.get("name"), data: dataValue });
      sessionStorage.setItem("durable.sent", JSON.stringify(res.ids));
      route();
    } catch (err) {
      sent.className = "sent error";
      sent.textContent = err.message;
      sent.hidden = false;
    } finally {
      button.disabled = false;
    }
  } },
    el("h3", {}, "Send a test event"),
    el("label", {}, "name ", el("input", { name: "name", required: true, placeholder: "app/user.signed_up", class: "mono", value: params.get("name") ?? "" })),
    el("label", {}, "data (JSON) ", el("textarea", { name: "data", rows: 4, spellcheck: "false" }, "{}")),
    el("div", {}, el("button", { type: "submit" }, "Send")), sent);
  const justSent = JSON.parse(sessionStorage.getItem("durable.sent") ?? "null");
  sessionStorage.removeItem("durable.sent");
  if (justSent) {
    sent.replaceChildren("Sent ", ...justSent.flatMap((id, i) => [i ? ", " : "", el("span", { class: "mono" }, id)]), ".");
    sent.hidden = false;
  }

  const rows = data.events.map((e) => el("tr", { "data-event-id": e.id, class: justSent?.includes(e.id) ? "fresh" : "" },
    el("td", { class: "mono" }, e.id), el("td", {}, el("a", { href: `#/events?name=${encodeURIComponent(e.name)}` }, e.name)),
    el("td", {}, shortTime(e.received_at), e.duplicate ? el("div", { class: "muted" }, "duplicate") : ""),
    el("td", {}, compactJson(e.data)),
    el("td", {}, e.runs.length ? e.runs.map((r) => el("div", {}, runLink(r.id), " ", status(r.status), el("span", { class: "muted" }, ` ${r.function_id}`)))
                                     : el("span", { class: "muted" }, "none"))));
  const pager = el("p", { class: "pager" },
    params.get("cursor") ? el("a", { href: `#/events${params.get("name") ? `?name=${encodeURIComponent(params.get("name"))}` : ""}` }, "← Newest events") : "",
    data.next_cursor ? el("a", { href: `#/events?${new URLSearchParams({ ...Object.fromEntries(params), cursor: data.next_cursor })}` }, "Older events →") : "");
  render(gen, "events", started, el("h2", {}, "Events", params.get("name") ? ` named ${params.get("name")}` : ""), form,
         table(["Event", "Name", "Received (UTC)", "Data", "Runs it started"], rows, { class: "events" }), pager);
}

// ---- routing ------------------------------------------------------------------------------

async function route() {
  clearTimeout(refreshTimer);
  const gen = ++generation;
  const started = performance.now();
  delete view.dataset.ready;
  const [path, query] = (location.hash.slice(1) || "/runs").split("?");
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean);
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.getAttribute("href") === `#/${parts[0] ?? "runs"}`);
  try {
    if (parts[0] === "runs" && parts[1]) await runView(decodeURIComponent(parts[1]), gen, started);
    else if (parts[0] === "functions") await functionsView(gen, started);
    else if (parts[0] === "events") await eventsView(params, gen, started);
    else await runsView(params, gen, started);
  } catch (e) {
    // A request the engine refused (4xx) stays refused; one it could not answer (restarting,
    // unreachable) is tried again.
    const again = !e.status || e.status >= 500;
    if (render(gen, "error", started, el("p", { class: "error" }, e.message, again ? " (trying again in 5 s)" : "")) && again) {
      refreshTimer = setTimeout(route, 5000);
    }
  }
}

window.addEventListener("hashchange", route);
route();
