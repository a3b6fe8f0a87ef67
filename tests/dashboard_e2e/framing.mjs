// Clickjacking, for tests/dashboard_e2e_test.cpp: can a page of another origin show the
// dashboard in a frame? The script logs in to the dashboard (so the browser holds a session
// cookie, which SameSite=Strict still sends to frames of the same site: another port of the
// same host is the same site), then opens a page served from another port of 127.0.0.1 that
// frames the dashboard's pages, and reports what each frame shows. It also opens the
// dashboard directly, to show that the same URLs do load outside a frame.
//
// Environment (set by the test): DURABLE_URL, DURABLE_API_KEY.
// On success it prints one JSON object on stdout: {"direct": {"login": bool, "dashboard":
// bool}, "frames": [{"src", "url", "shows_dashboard"}], "console": [messages]}. On a failure
// of the script itself it says why on stderr and exits 1.
import http from "node:http";
import { chromium } from "playwright-core";

const url = process.env.DURABLE_URL;
const apiKey = process.env.DURABLE_API_KEY;
if (!url || !apiKey) {
  process.stderr.write("framing.mjs: DURABLE_URL and DURABLE_API_KEY must be set\n");
  process.exit(1);
}

const WAIT_MS = 15000;
let browser = null;
let attacker = null;

async function main() {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    timeout: 30000,
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
  });
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const consoleMessages = [];
  page.on("console", (m) => consoleMessages.push(m.text()));

  // Logged in, the dashboard shows its views (#view) to this browser.
  await page.goto(`${url}/login`);
  const loginShown = (await page.locator("input[name=api_key]").count()) === 1;
  await page.fill("input[name=api_key]", apiKey);
  await Promise.all([page.waitForURL(`${url}/`), page.click("button[type=submit]")]);
  await page.waitForSelector("#view");
  const dashboardShown = (await page.locator("#view").count()) === 1;

  // The other origin: another port of the same host, framing the dashboard's pages.
  const frames = ["/", "/login", "/v1/runs"];
  attacker = http.createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/html" });
    res.end(`<!doctype html><title>decoy</title>${frames.map((f) => `<iframe src="${url}${f}"></iframe>`).join("")}`);
  });
  await new Promise((resolve) => attacker.listen(0, "127.0.0.1", resolve));
  const attackerUrl = `http://127.0.0.1:${attacker.address().port}/`;
  await page.goto(attackerUrl, { waitUntil: "load" });

  const report = [];
  for (const frame of page.frames()) {
    if (frame === page.mainFrame()) continue;
    // A frame the browser refused to show holds its error page: no element of the dashboard,
    // and no text of its answers.
    const shows = await frame
      .evaluate(() => Boolean(document.querySelector("#view, input[name=api_key]")) ||
                      (document.body?.innerText ?? "").includes("\"runs\""))
      .catch(() => false);
    const src = await (await frame.frameElement()).getAttribute("src");
    report.push({ src, url: frame.url(), shows_dashboard: shows });
  }
  process.stdout.write(`${JSON.stringify({ direct: { login: loginShown, dashboard: dashboardShown }, frames: report,
                                           console: consoleMessages })}\n`);
}

try {
  await main();
} catch (e) {
  process.stderr.write(`framing.mjs: ${e.message}\n`);
  process.exitCode = 1;
} finally {
  attacker?.close();
  await browser?.close().catch(() => {});
}
