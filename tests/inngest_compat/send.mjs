// Sends events to durable with the real inngest SDK's send(), configured by the environment as
// an application would be (INNGEST_BASE_URL or INNGEST_DEV, INNGEST_EVENT_KEY), and prints
// what it got as one line of JSON on stdout. Run by tests/inngest_compat_test.cpp.
//
//   node send.mjs send <event name>    send() once with one event, once with an array of two:
//                                      {"single": [id], "batch": [id, id]}
//   node send.mjs retry <event name>   send() of two events whose first attempt reaches
//                                      durable but loses its answer, so the SDK retries:
//                                      {"ids": [id, id], "attempts": [{"seed", "status", "ids"}, ...]}
import http from "node:http";

import { Inngest } from "inngest";

const [mode, name] = process.argv.slice(2);

if (mode === "send") {
  const inngest = new Inngest({ id: "durable-inngest-compat" });
  const single = await inngest.send({ name, data: { n: 0 } });
  const batch = await inngest.send([
    { name, data: { n: 1 } },
    { name, data: { n: 2 }, user: { email: "a@example.com" } },
  ]);
  console.log(JSON.stringify({ single: single.ids, batch: batch.ids }));
} else if (mode === "retry") {
  // The SDK retries a send() whose request failed (a network error, an answer that is not
  // {"status": 200}) up to 4 times, keeping its x-inngest-event-id-seed header. The failure
  // that matters is the one after durable stored the events: the answer is lost on the way
  // back. A proxy between the SDK and durable plays it: it forwards every attempt, and cuts
  // the first one's connection instead of answering. The SDK's own retry then sends the very
  // same request again; durable must recognise it by the seed and answer the same ids.
  const target = new URL(process.env.INNGEST_BASE_URL);
  const attempts = [];
  const proxy = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const headers = { ...req.headers };
    delete headers.host;
    delete headers.connection;
    delete headers["content-length"];
    const answer = await fetch(new URL(req.url, target), {
      method: req.method,
      headers,
      body: Buffer.concat(chunks),
    });
    const text = await answer.text();
    let ids = null;
    try {
      ids = JSON.parse(text).ids ?? null;
    } catch {}
    attempts.push({ seed: req.headers["x-inngest-event-id-seed"] ?? null, status: answer.status, ids });
    if (attempts.length === 1) {
      req.socket.destroy();  // stored by durable, but the SDK never hears so
      return;
    }
    res.writeHead(answer.status, { "content-type": "application/json" });
    res.end(text);
  });
  await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const inngest = new Inngest({
    id: "durable-inngest-compat",
    baseUrl: `http://127.0.0.1:${proxy.address().port}/`,
  });
  const sent = await inngest.send([
    { name, data: { n: 1 } },
    { name, data: { n: 2 } },
  ]);
  proxy.closeAllConnections();
  proxy.close();
  console.log(JSON.stringify({ ids: sent.ids, attempts }));
} else {
  console.error("usage: node send.mjs send|retry <event name>");
  process.exit(2);
}
