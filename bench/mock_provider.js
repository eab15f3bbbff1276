// Mock OpenAI-shaped provider for the benchmark: fast enough never to be the bottleneck.
//
//   node bench/mock_provider.js [port]          (default 9900; binds 127.0.0.1 only)
//
//   GET  /v1/models                 -> a small model list
//   POST /v1/chat/completions       -> a chat.completion (JSON), or with "stream": true
//                                      20 SSE content chunks, a usage chunk, then [DONE]
//
// Delay between stream chunks, in milliseconds (first that is set wins):
//   query ?delay_ms=5 · header x-mock-delay-ms: 5 · a model name ending in "-delay-5"
// The first chunk leaves at once with the headers; the delay is before each later chunk.
// Plain `http` module, no npm packages; one process (the machine has 2 cores to share).
"use strict";

const http = require("http");

const PORT = Number(process.argv[2] || process.env.MOCK_PORT || 9900);
const CHUNKS = 20;
const CREATED = 1700000000;
const MODELS = JSON.stringify({
  object: "list",
  data: ["mock-model", "mock-model-delay-5"].map((id) => ({ id, object: "model", created: CREATED, owned_by: "mock" })),
});

const completionCache = new Map(); // model -> serialized chat.completion
function completion(model) {
  let body = completionCache.get(model);
  if (body === undefined) {
    body = JSON.stringify({
      id: "chatcmpl-mock",
      object: "chat.completion",
      created: CREATED,
      model,
      choices: [{ index: 0, message: { role: "assistant", content: "Hello from the mock provider. ".repeat(4).trim() }, finish_reason: "stop" }],
      usage: { prompt_tokens: 12, completion_tokens: CHUNKS, total_tokens: 12 + CHUNKS },
    });
    if (completionCache.size < 64) completionCache.set(model, body);
  }
  return body;
}

const streamCache = new Map(); // model -> array of SSE events (strings)
function streamEvents(model) {
  let events = streamCache.get(model);
  if (events === undefined) {
    events = [];
    for (let i = 0; i < CHUNKS; i++) {
      const delta = i === 0 ? { role: "assistant", content: "tok0 " } : { content: `tok${i} ` };
      const finish = i === CHUNKS - 1 ? "stop" : null;
      events.push(`data: ${JSON.stringify({ id: "chatcmpl-mock", object: "chat.completion.chunk", created: CREATED, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`);
    }
    events.push(`data: ${JSON.stringify({ id: "chatcmpl-mock", object: "chat.completion.chunk", created: CREATED, model, choices: [], usage: { prompt_tokens: 12, completion_tokens: CHUNKS, total_tokens: 12 + CHUNKS } })}\n\n`);
    events.push("data: [DONE]\n\n");
    if (streamCache.size < 64) streamCache.set(model, events);
  }
  return events;
}

function delayOf(req, url, model) {
  const q = url.indexOf("delay_ms=");
  if (q >= 0) return Number.parseInt(url.slice(q + 9), 10) || 0;
  const h = req.headers["x-mock-delay-ms"];
  if (h !== undefined) return Number.parseInt(h, 10) || 0;
  const m = /-delay-(\d+)$/.exec(model);
  return m ? Number(m[1]) : 0;
}

function sendJson(res, status, body) {
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

function stream(res, events, delay) {
  res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
  if (delay <= 0) {
    for (let i = 0; i < events.length - 1; i++) res.write(events[i]);
    res.end(events[events.length - 1]);
    return;
  }
  let i = 0;
  let timer = null;
  res.on("close", () => clearTimeout(timer)); // client hung up: stop sending
  const next = () => {
    if (i === events.length - 1) return res.end(events[i]);
    res.write(events[i++]);
    timer = setTimeout(next, delay);
  };
  next();
}

const server = http.createServer((req, res) => {
  const url = req.url;
  const path = url.split("?", 1)[0];
  if (req.method === "GET" && path === "/v1/models") return sendJson(res, 200, MODELS);
  if (req.method !== "POST" || path !== "/v1/chat/completions") {
    req.resume();
    return sendJson(res, 404, '{"error":{"message":"not found","type":"not_found_error","code":"not_found"}}');
  }
  const parts = [];
  req.on("data", (c) => parts.push(c));
  req.on("end", () => {
    let payload;
    try {
      payload = JSON.parse(parts.length === 1 ? parts[0] : Buffer.concat(parts));
    } catch {
      return sendJson(res, 400, '{"error":{"message":"body is not JSON","type":"invalid_request_error","code":"invalid_json"}}');
    }
    const model = typeof payload.model === "string" ? payload.model : "mock-model";
    if (payload.stream === true) return stream(res, streamEvents(model), delayOf(req, url, model));
    return sendJson(res, 200, completion(model));
  });
});

server.keepAliveTimeout = 120000;
server.headersTimeout = 125000;
server.requestTimeout = 0;
server.listen(PORT, "127.0.0.1", () => process.stdout.write(`mock provider on http://127.0.0.1:${PORT}\n`));
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
