// Node.js's http / https modules (HTTP/1.1) for the interop suite (test/interop/http1_test.exs).
//
//   node node_http1.mjs URL CA N TIMEOUT_MS
//
// A keep-alive agent (at most 8 sockets) sends N requests at once, mixed: GET /hello, GET
// /bytes (checked against x-sha256), POST /upload with a content-length (req.end(buffer)) and
// without one (written in pieces: chunked), checked against the server's answer. CA is the PEM
// file of the CA to trust ("-" for cleartext). Prints "RESULT <json>". Every request has a
// deadline.
import http from "node:http";
import https from "node:https";
import fs from "node:fs";
import crypto from "node:crypto";

const [url, ca, n, timeoutMs] = process.argv.slice(2);
const tls = url.startsWith("https");
const mod = tls ? https : http;
const agent = new mod.Agent({
  keepAlive: true,
  maxSockets: 8,
  ...(tls ? { ca: fs.readFileSync(ca) } : {}),
});
let sockets = 0;
const SIZES = [0, 1, 1000, 65536, 262145, 1048576];

function request(method, path, { body, chunked } = {}) {
  return new Promise((resolve, reject) => {
    const headers = body && !chunked ? { "content-length": body.length } : {};
    const req = mod.request(new URL(path, url), { method, agent, headers }, (res) => {
      const parts = [];
      res.on("data", (d) => parts.push(d));
      res.on("end", () =>
        resolve({ status: res.statusCode, version: res.httpVersion, headers: res.headers, body: Buffer.concat(parts) }),
      );
      res.on("error", reject);
    });
    req.on("socket", (s) => {
      if (!s.h2flowCounted) {
        s.h2flowCounted = true;
        sockets += 1;
      }
    });
    req.setTimeout(Number(timeoutMs), () => req.destroy(new Error(`${method} ${path}: timeout`)));
    req.on("error", reject);
    if (body && chunked) {
      // Pieces without a content-length: Node sends them chunked.
      for (let i = 0; i < body.length; i += 10000) req.write(body.subarray(i, i + 10000));
      req.end();
    } else {
      req.end(body);
    }
  });
}

const sha = (b) => crypto.createHash("sha256").update(b).digest("hex");

async function one(i) {
  const kind = i % 4;
  const size = SIZES[Math.floor(i / 4) % SIZES.length];
  if (kind === 0) {
    const r = await request("GET", "/hello");
    return [r, r.status === 200 && r.body.toString() === "hello /hello", "hello"];
  }
  if (kind === 1) {
    const r = await request("GET", `/bytes?n=${size}`);
    return [r, r.body.length === size && sha(r.body) === r.headers["x-sha256"], `bytes ${size}`];
  }
  const body = crypto.randomBytes(size);
  const chunked = kind === 3;
  const r = await request("POST", "/upload", { body, chunked });
  const what = `${chunked ? "chunked " : ""}upload ${size}`;
  return [r, r.status === 200 && r.body.toString() === `${size} ${sha(body)}`, what];
}

const started = performance.now();
const outcomes = await Promise.allSettled(Array.from({ length: Number(n) }, (_, i) => one(i)));
const result = { ok: 0, failures: {}, versions: {}, sockets: 0, ms: 0 };
for (const o of outcomes) {
  if (o.status === "rejected") {
    const key = String(o.reason);
    result.failures[key] = (result.failures[key] || 0) + 1;
    continue;
  }
  const [r, good, what] = o.value;
  result.versions[r.version] = (result.versions[r.version] || 0) + 1;
  if (good) result.ok += 1;
  else result.failures[what] = (result.failures[what] || 0) + 1;
}
result.sockets = sockets;
result.ms = Math.round(performance.now() - started);
agent.destroy();
console.log("RESULT " + JSON.stringify(result));
