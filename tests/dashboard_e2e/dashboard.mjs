// The dashboard in a real browser, for tests/dashboard_e2e_test.cpp: Debian's chromium driven by
// playwright-core (package.json pins 1.61.1, the last release that runs on Node 18, Debian 12's
// nodejs: 1.62 and later refuse to start on it). The test starts an engine with a failed run, a
// completed two-step run and a 1,000-step run, then runs this script, which uses the dashboard
// as a person would: log in, find the failed run, fix its cause and resume it, rerun the other
// from a step with an edited output, open the big run and time it, look at the functions, send
// an event, open a bulk replay and close it. It takes a screenshot of each page, and checks
// every step with bounded waits (no step takes more than 15 s). The test checks the engine's
// side afterwards.
//
// Environment (set by the test): DURABLE_URL, DURABLE_API_KEY, DURABLE_FIX_FILE (the file whose
// existence fixes the failed run), DURABLE_SCREENSHOTS (a directory), the runs
// DURABLE_FAILED_RUN, DURABLE_QUOTE_RUN and DURABLE_BIG_RUN, the failed run's event
// DURABLE_FAILED_EVENT, DURABLE_PAGED_FUNCTION, a function with DURABLE_PAGED_RUNS runs, and
// DURABLE_NAP_RUNS, the comma-separated ids of runs of "nap" sleeping for an hour.
//
// On success it prints one JSON object on stdout: {"render_ms", "render": {"page_ms", "wall_ms"},
// "rerun_run", "sent_event", "bulk_count", "paging": {"runs", "pages", "first_pages_ms",
// "last_pages_ms", "max_ms"}, "screenshots": [paths]}. On the first check that does
// not hold, or any error of the page (an uncaught exception, a console error, a native dialog),
// it says which on stderr, leaves failure.png next to the screenshots and exits 1.
//
// The pages are found through the dashboard's test contract (engine/dashboard/app.js): `#view`
// gets data-ready="<view>" once a view has rendered (removed when a new route starts), and
// window.durableRender = {view, ms} the time from the route's start to that moment; the
// elements each view has are named in the flows below.
import fs from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { chromium } from "playwright-core";

const WAIT_MS = 15000;  // the longest any single wait may take
// The longest the whole script may take, below the test's own limit (180 s): past it, the
// script fails by itself, closing the browser, rather than being killed with it running.
const DEADLINE_MS = 150000;

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (tests/dashboard_e2e_test.cpp sets it)`);
  return value;
}

const url = env("DURABLE_URL");
const apiKey = env("DURABLE_API_KEY");
const fixFile = env("DURABLE_FIX_FILE");
const screenshotDir = env("DURABLE_SCREENSHOTS");
const failedRun = env("DURABLE_FAILED_RUN");
const quoteRun = env("DURABLE_QUOTE_RUN");
const bigRun = env("DURABLE_BIG_RUN");
const failedEvent = env("DURABLE_FAILED_EVENT");
const pagedFunction = env("DURABLE_PAGED_FUNCTION");
const pagedRuns = Number(env("DURABLE_PAGED_RUNS"));
const napRuns = env("DURABLE_NAP_RUNS").split(",");

let flow = "start";  // what the script is doing, for the failure message
let failing = false;  // fail() has begun
const pageErrors = [];
const screenshots = [];
const result = {};

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// Fails at the first error the page reported, rather than at some later consequence of it.
function checkNoPageErrors() {
  check(pageErrors.length === 0, `the page reported errors:\n  ${pageErrors.join("\n  ")}`);
}

const escape = (value) => JSON.stringify(value);  // a CSS attribute value in quotes

// Stopped (SIGTERM from the test's timeout, Ctrl-C) or past the deadline: fail as a check
// would, so that the browser is closed. (Playwright's own signal handlers are off: they let
// node die with chromium still running.)
process.on("SIGTERM", () => fail("stopped by SIGTERM"));
process.on("SIGINT", () => fail("stopped by SIGINT"));
const deadline = setTimeout(() => fail(`not done within ${DEADLINE_MS / 1000} s`), DEADLINE_MS);

let browser = null;
let page = null;

// Debian's chromium, launched as the issue requires, with one page of a laptop's size whose
// errors are collected.
async function openBrowser() {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    timeout: 30000,
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
  // Not UTC, so that the dashboard's "every time is UTC" is put to the test.
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, timezoneId: "America/New_York" });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.setDefaultNavigationTimeout(WAIT_MS);
  page.on("pageerror", (e) => pageErrors.push(`uncaught: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const where = m.location()?.url ?? "";
    pageErrors.push(`console: ${m.text()} (${where || "no url"})`);
  });
  // The contract's dialogs are <dialog> elements; a native alert/confirm/prompt is an error
  // message or a leftover (and would block the page until answered).
  page.on("dialog", async (d) => {
    pageErrors.push(`native ${d.type()} dialog: ${d.message()}`);
    await d.dismiss().catch(() => {});
  });
}

async function shot(name, { fullPage = true } = {}) {
  const file = path.join(screenshotDir, name);
  await page.screenshot({ path: file, fullPage });
  screenshots.push(file);
}

// Waits until `#view` has rendered `view`. Checked in the page at every animation frame
// (waitForFunction's "raf" polling), so the wait ends within a frame of the render: the timing
// of the 1,000-step run relies on it (a locator's wait polls from node, at up to 500 ms).
async function waitReady(view) {
  await page.waitForFunction((view) => document.getElementById("view")?.dataset.ready === view, view,
                             { polling: "raf" });
}

// Opens a route by its hash, as a click on a link would, and waits until its view has
// rendered. data-ready is removed first, so that the old view's cannot be taken for the new.
async function open(hash, view) {
  await page.evaluate((hash) => {
    document.getElementById("view")?.removeAttribute("data-ready");
    location.hash = hash;
  }, hash);
  await waitReady(view);
}

const runStatus = async () => ((await page.textContent("#run-status")) ?? "").trim();
const runIdInHash = () => (location.hash.match(/^#\/runs\/([^/?]+)/) ?? [])[1] ?? null;

// Sets the runs view's filters and submits them. The table is live (refreshed every 2 s), so
// callers recognise the result by its content, not by the first render after the click.
async function filterRuns(values) {
  const form = page.locator("form.filters");
  // The view shown until then must not pass for the result.
  await page.evaluate(() => document.getElementById("view")?.removeAttribute("data-ready"));
  if ("status" in values) await form.locator("select[name=status]").selectOption(values.status);
  for (const name of ["function", "q", "from", "to"]) {
    if (name in values) await form.locator(`input[name=${name}]`).fill(values[name]);
  }
  await form.getByRole("button", { name: "Filter" }).click();
}

try {
  fs.mkdirSync(screenshotDir, { recursive: true });
  flow = "launch chromium";
  await openBrowser();

  // (1) Without a session, / sends the browser to the login page; the API key logs it in.
  flow = "log in";
  await page.goto(`${url}/`);
  check(new URL(page.url()).pathname === "/login", `opening / without a session went to ${page.url()}, not /login`);
  await page.fill("input[name=api_key]", apiKey);
  await shot("login.png");
  await Promise.all([page.waitForURL((u) => u.pathname === "/"), page.click("button[type=submit]")]);
  await waitReady("runs");
  await shot("runs.png", { fullPage: false });
  checkNoPageErrors();

  // (2a) Search: a run id shows that run, an event id the runs it started; a time range.
  flow = "search and time range";
  const onlyRows = async (expected) => page.waitForFunction((expected) => {
    const rows = [...document.querySelectorAll("tr[data-run-id]")].map((r) => r.dataset.runId);
    return document.getElementById("view")?.dataset.ready === "runs" && JSON.stringify(rows) === JSON.stringify(expected);
  }, expected);
  await filterRuns({ q: failedRun });
  await onlyRows([failedRun]);
  await filterRuns({ q: failedEvent });
  await onlyRows([failedRun]);
  const utc = (ms) => new Date(ms).toISOString().slice(0, 16);  // the form's datetime-local, in UTC
  await filterRuns({ q: "", from: utc(Date.now() + 3600e3) });
  await onlyRows([]);
  check((await page.textContent("table.runs tbody")).includes("No runs match"), "an empty filter does not say so");
  await filterRuns({ from: utc(Date.now() - 3600e3), to: utc(Date.now() + 3600e3) });
  await page.waitForFunction(() => document.querySelectorAll("tr[data-run-id]").length === 50);
  await filterRuns({ from: "", to: "" });
  checkNoPageErrors();

  // (2) The failed run, found with the status filter; its page says why it failed.
  flow = "find the failed run";
  await filterRuns({ status: "failed" });
  await page.waitForFunction((id) => {
    const rows = [...document.querySelectorAll("tr[data-run-id]")];
    return document.getElementById("view")?.dataset.ready === "runs" &&
           rows.some((r) => r.dataset.runId === id) && rows.every((r) => r.querySelector(".status-failed"));
  }, failedRun);
  await page.locator(`tr[data-run-id=${escape(failedRun)}] a[href*=${escape(`runs/${failedRun}`)}]`).first().click();
  await page.waitForFunction((id) => document.getElementById("view")?.dataset.ready === "run" &&
                                     (location.hash.match(/^#\/runs\/([^/?]+)/) ?? [])[1] === id, failedRun);
  check(/\bfailed\b/.test(await runStatus()), `#run-status of the failed run says "${await runStatus()}"`);
  const chargeError = (await page.textContent(`tr[data-step-key="charge"] .step-error`)) ?? "";
  check(chargeError.includes("payment provider unavailable"),
        `the charge step's .step-error says "${chargeError}", not "payment provider unavailable"`);
  check(await page.locator("#timeline .bar").count() > 0, "the run page has no #timeline with .bar elements");
  await shot("run-failed.png");
  checkNoPageErrors();

  // (3) The cause fixed, Resume: the same run goes on from "charge" and completes; the page
  // follows it live.
  flow = "resume the failed run";
  fs.writeFileSync(fixFile, "fixed\n");
  await page.locator(".actions").getByRole("button", { name: "Resume", exact: true }).click();
  await page.waitForFunction((id) => {
    const status = document.getElementById("run-status")?.textContent ?? "";
    const output = document.getElementById("run-output")?.textContent ?? "";
    const shown = (location.hash.match(/^#\/runs\/([^/?]+)/) ?? [])[1];
    return shown === id && /\bcompleted\b/.test(status) && output.includes("paid");
  }, failedRun);
  const chargeBars = await page.$$eval(`#timeline .tl-row:has(.tl-label[title="charge"]) .bar`, (bars) => bars.map((b) => b.className));
  check(chargeBars.some((c) => /\bfailed\b/.test(c)) && chargeBars.some((c) => /\bcompleted\b/.test(c)),
        `the charge step's timeline after the resume is ${JSON.stringify(chargeBars)}: not a failed and a completed attempt`);
  await shot("run-completed.png");
  checkNoPageErrors();

  // (4) Rerun from "quote" with an edited output: a new run, whose total is computed from it.
  flow = "rerun from a step with an edited output";
  await open(`#/runs/${quoteRun}`, "run");
  await page.locator(`tr[data-step-key="quote"]`).getByRole("button", { name: "Rerun from here" }).click();
  const dialog = page.locator("dialog#rerun[open]");
  await dialog.waitFor();
  const shownOutput = await dialog.locator("textarea[name=output]").inputValue();
  let parsed = null;
  try { parsed = JSON.parse(shownOutput); } catch { /* reported below */ }
  check(parsed?.price === 10, `the rerun dialog shows the step's output as ${JSON.stringify(shownOutput)}, not {"price": 10}`);
  await dialog.locator("textarea[name=output]").fill('{"price": 21}');
  await shot("rerun-dialog.png", { fullPage: false });
  // A double click, as impatient people do: one rerun all the same (the test counts them).
  await dialog.getByRole("button", { name: "Rerun", exact: true }).dblclick();
  await page.waitForFunction(({ original }) => {
    const shown = (location.hash.match(/^#\/runs\/([^/?]+)/) ?? [])[1];
    const status = document.getElementById("run-status")?.textContent ?? "";
    const output = document.getElementById("run-output")?.textContent ?? "";
    return shown && shown !== original && document.getElementById("view")?.dataset.ready === "run" &&
           /\bcompleted\b/.test(status) && output.includes("42");
  }, { original: quoteRun });
  result.rerun_run = await page.evaluate(runIdInHash);
  await shot("run-rerun.png");
  checkNoPageErrors();

  // (5) The 1,000-step run, opened from the runs view: the page's own measure (route start to
  // rendered) and the test's (hash change to data-ready, round trips included); the larger
  // counts.
  flow = "render the 1,000-step run";
  await open("#/runs", "runs");
  const start = performance.now();
  await page.evaluate((hash) => { location.hash = hash; }, `#/runs/${bigRun}`);
  await waitReady("run");
  const wallMs = performance.now() - start;
  const render = await page.evaluate(() => window.durableRender ?? null);
  check(render?.view === "run" && typeof render.ms === "number",
        `window.durableRender is ${JSON.stringify(render)}, not {view: "run", ms: <number>}`);
  const stepRows = await page.locator("tr[data-step-key]").count();
  check(stepRows === 1000, `the 1,000-step run's page has ${stepRows} tr[data-step-key] rows`);
  result.render = { page_ms: Math.round(render.ms * 10) / 10, wall_ms: Math.round(wallMs * 10) / 10 };
  result.render_ms = Math.max(result.render.page_ms, result.render.wall_ms);
  await shot("run-1000-steps.png", { fullPage: false });
  checkNoPageErrors();

  // (6) Functions, each with its chart; events, with one sent from the page's form.
  flow = "functions";
  await open("#/functions", "functions");
  for (const id of ["charge-order", "quote-order", "bulk-import"]) {
    check(await page.locator(`tr[data-function-id=${escape(id)}]`).count() === 1, `no row for function ${id}`);
  }
  const charts = await page.locator("svg.chart").count();
  check(charts >= 3, `the functions view has ${charts} svg.chart, not one per function`);
  const pingRow = page.locator(`tr[data-function-id=${escape(pagedFunction)}]`);
  const pingText = (await pingRow.textContent()) ?? "";
  check(pingText.includes(`${pagedRuns} completed`), `the ${pagedFunction} row does not count ${pagedRuns} completed runs: ${pingText}`);
  check(await pingRow.locator("svg.chart rect.completed").count() > 0, `the ${pagedFunction} chart has no bar`);
  await shot("functions.png");
  checkNoPageErrors();

  flow = "send an event";
  await open("#/events", "events");
  const before = await page.$$eval("tr[data-event-id]", (rows) => rows.map((r) => r.dataset.eventId));
  const form = page.locator("form#send-event");
  await form.locator("input[name=name]").fill("shop/quote.requested");
  await form.locator("textarea[name=data]").fill('{"note":"from the dashboard"}');
  await form.getByRole("button", { name: "Send" }).click();
  const sent = await page.waitForFunction((before) => {
    const row = [...document.querySelectorAll("tr[data-event-id]")]
      .find((r) => !before.includes(r.dataset.eventId) && r.textContent.includes("shop/quote.requested") &&
                   r.textContent.includes("from the dashboard"));
    return row?.dataset.eventId ?? false;
  }, before);
  result.sent_event = await sent.jsonValue();
  await shot("events.png", { fullPage: false });
  checkNoPageErrors();

  // (7) Replay matching…: the dialog counts the runs it would replay; closed, nothing happens.
  flow = "bulk replay dialog";
  await open("#/runs", "runs");
  await filterRuns({ status: "completed", function: "quote-order" });
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("tr[data-run-id]")];
    return document.getElementById("view")?.dataset.ready === "runs" && rows.length > 0 &&
           rows.every((r) => r.querySelector(".status-completed") && r.textContent.includes("quote-order"));
  });
  await page.getByRole("button", { name: /^Replay matching/ }).click();
  const bulk = page.locator("dialog#bulk[open]");
  await bulk.waitFor();
  // The count comes from the server (a dry run): wait for it rather than for the dialog.
  await page.waitForFunction(() => /\d/.test(document.querySelector("dialog#bulk[open]")?.textContent ?? ""));
  const bulkText = (await bulk.textContent()) ?? "";
  result.bulk_count = Number(bulkText.match(/\d+/)[0]);
  await shot("bulk.png");
  await bulk.getByRole("button", { name: "Close", exact: true }).click();
  await page.locator("dialog#bulk[open]").waitFor({ state: "detached" });
  checkNoPageErrors();

  // (7b) Cancel matching…, confirmed: the runs of "nap", asleep, whose page shows the sleep.
  flow = "bulk cancel";
  await open(`#/runs/${napRuns[0]}`, "run");
  check(/\bsleeping\b/.test(await runStatus()), `#run-status of a nap run says "${await runStatus()}"`);
  // To scale: the hour ahead takes nearly all the track, the seconds slept so far a sliver.
  const track = await page.locator(`#timeline .tl-row:has(.bar.sleep) .tl-track`).boundingBox();
  const slept = await page.locator("#timeline .bar.sleep.pending").boundingBox();
  const ahead = await page.locator("#timeline .bar.sleep.planned").boundingBox();
  check(track && slept && ahead, "the sleeping run's timeline lacks its sleep, slept and ahead");
  check(ahead.width / track.width > 0.9 && slept.width / track.width < 0.1,
        `the sleep's bars are not to scale: ${slept.width} px slept, ${ahead.width} px ahead, of ${track.width} px`);
  await shot("run-sleeping.png", { fullPage: false });
  await open("#/runs", "runs");
  await filterRuns({ status: "sleeping", function: "nap" });
  await page.waitForFunction((n) => document.querySelectorAll("tr[data-run-id] .status-sleeping").length === n &&
                                    document.querySelectorAll("tr[data-run-id]").length === n, napRuns.length);
  await page.getByRole("button", { name: /^Cancel matching/ }).click();
  const cancelDialog = page.locator("dialog#bulk[open]");
  await cancelDialog.waitFor();
  const total = Number(await cancelDialog.locator(".bulk-total").textContent());
  check(total === napRuns.length, `the cancel dialog counts ${total} runs, not ${napRuns.length}`);
  await cancelDialog.getByRole("button", { name: "Confirm", exact: true }).click();
  await page.locator("dialog#bulk").waitFor({ state: "detached" });
  await onlyRows([]);  // none of them sleeps any more
  checkNoPageErrors();

  // (8) Paging through thousands of runs with "Older runs →": each run once, and the time of
  // each page (click to rendered), which must not grow with the depth.
  flow = "page through many runs";
  await open(`#/runs?function=${encodeURIComponent(pagedFunction)}`, "runs");
  const seen = new Set();
  const pageMs = [];
  for (;;) {
    const ids = await page.$$eval("tr[data-run-id]", (rows) => rows.map((r) => r.dataset.runId));
    for (const id of ids) {
      check(!seen.has(id), `run ${id} shown on two pages`);
      seen.add(id);
    }
    const older = page.getByRole("link", { name: "Older runs →" });
    if (await older.count() === 0) break;
    const started = performance.now();
    await page.evaluate(() => document.getElementById("view").removeAttribute("data-ready"));
    await older.click();
    await waitReady("runs");
    pageMs.push(performance.now() - started);
  }
  check(seen.size === pagedRuns, `paging showed ${seen.size} runs of ${pagedFunction}, not ${pagedRuns}`);
  const avg = (xs) => Math.round((xs.reduce((a, b) => a + b, 0) / xs.length) * 10) / 10;
  result.paging = { runs: seen.size, pages: pageMs.length + 1, first_pages_ms: avg(pageMs.slice(0, 5)),
                    last_pages_ms: avg(pageMs.slice(-5)), max_ms: Math.round(Math.max(...pageMs)) };
  checkNoPageErrors();

  flow = "done";
  result.screenshots = screenshots;
  clearTimeout(deadline);
  await browser.close();
  process.stdout.write(`${JSON.stringify(result)}\n`);
} catch (e) {
  await fail(e.message);
}

// Says what failed, where, and what the page reported; leaves failure.png; closes the browser
// and exits 1. Once: a signal may arrive while a failure is being reported.
async function fail(message) {
  if (failing) return;
  failing = true;
  process.stderr.write(`dashboard.mjs: ${flow}: ${message}\n`);
  if (pageErrors.length) process.stderr.write(`errors the page reported:\n  ${pageErrors.join("\n  ")}\n`);
  if (page) {
    process.stderr.write(`at ${page.url()}; screenshots so far: ${screenshots.join(", ") || "none"}\n`);
    await page.screenshot({ path: path.join(screenshotDir, "failure.png"), fullPage: true, timeout: 5000 }).catch(() => {});
  }
  await browser?.close().catch(() => {});
  process.exit(1);
}
