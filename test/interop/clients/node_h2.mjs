// Node.js http2 (nghttp2) client for the interop suite (test/interop/node_test.exs).
//
//   node node_h2.mjs uploads    URL CA DIR SIZES MODES TIMEOUT_MS
//   node node_h2.mjs concurrent URL CA N PATH TIMEOUT_MS
//   node node_h2.mjs cycles     URL CA N PARALLEL TIMEOUT_MS
//
// CA is the PEM file of the CA to trust ("-" for h2c). Prints progress lines, then one line
// "RESULT <json>". Every wait has a deadline: a stream or session that stalls is reported as
// such, never waited on for ever.
import http2 from "node:http2";
import fs from "node:fs";
import crypto from "node:crypto";
import path from "node:path";

const [mode, url, ca, ...args] = process.argv.slice(2);
const tlsOptions = ca && ca !== "-" ? { ca: fs.readFileSync(ca) } : {};
const now = () => performance.now();

function connect() {
  const session = http2.connect(url, tlsOptions);
  session.on("error", () => {}); // reported through the streams that it ends
  return session;
}

// A file of `size` random bytes and its SHA-256, written 1 MiB at a time.
function makeFile(dir, size) {
  const file = path.join(dir, `upload-${size}`);
  const hash = crypto.createHash("sha256");
  const fd = fs.openSync(file, "w");
  for (let left = size; left > 0; ) {
    const chunk = crypto.randomBytes(Math.min(left, 1 << 20));
    hash.update(chunk);
    fs.writeSync(fd, chunk);
    left -= chunk.length;
  }
  fs.closeSync(fd);
  return { file, sha256: hash.digest("hex") };
}

// One upload: "pipe-cl" and "pipe" pipe a file stream into the request (with and without
// content-length), "end-cl" writes the whole body with req.end(buffer).
function upload(session, { file, sha256 }, size, how, timeoutMs) {
  return new Promise((resolve) => {
    const headers = { ":method": "POST", ":path": "/upload" };
    if (how.endsWith("-cl")) headers["content-length"] = String(size);
    const started = now();
    const req = session.request(headers);
    let status = null;
    let body = "";
    let sent = 0;
    let done = false;
    const finish = (result) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!result.ok && !req.closed) req.close(http2.constants.NGHTTP2_CANCEL);
      resolve({ size, how, ms: Math.round(now() - started), ...result });
    };
    const timer = setTimeout(
      () =>
        finish({
          ok: false,
          error: `no response within ${timeoutMs} ms`,
          sent,
          status,
          requestEnded: req.writableFinished,
        }),
      timeoutMs,
    );
    req.on("response", (h) => (status = h[":status"]));
    req.setEncoding("utf8");
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const [n, hex] = body.split(" ");
      const ok = status === 200 && Number(n) === size && hex === sha256;
      finish(ok ? { ok } : { ok, status, body: body.slice(0, 200), expected: `${size} ${sha256}` });
    });
    req.on("error", (e) => finish({ ok: false, error: String(e), sent, status }));
    if (how.startsWith("pipe")) {
      const source = fs.createReadStream(file);
      source.on("data", (chunk) => (sent += chunk.length));
      source.pipe(req);
    } else {
      const data = fs.readFileSync(file);
      sent = data.length;
      req.end(data);
    }
  });
}

async function uploads([dir, sizes, hows, timeoutMs]) {
  const results = [];
  const session = connect();
  for (const size of sizes.split(",").map(Number)) {
    const file = makeFile(dir, size);
    for (const how of hows.split(",")) {
      // Large bodies get time in proportion: 1 s per 16 MiB on top of the base (256 MiB take
      // 0.5 to 1.5 s on a 2-core machine).
      const timeout = Number(timeoutMs) + Math.ceil(size / (16 << 20)) * 1000;
      const result = await upload(session, file, size, how, timeout);
      console.log(`upload ${how} ${size}: ${result.ok ? "ok" : "FAILED"} in ${result.ms} ms`);
      results.push(result);
    }
    fs.unlinkSync(file.file);
  }
  session.destroy();
  return { results };
}

async function concurrent([n, reqPath, timeoutMs]) {
  const session = connect();
  let remoteMax = null;
  session.on("remoteSettings", (s) => {
    if (remoteMax === null) remoteMax = s.maxConcurrentStreams;
  });
  const started = now();
  const outcomes = {};
  const count = (key) => (outcomes[key] = (outcomes[key] || 0) + 1);
  const one = () =>
    new Promise((resolve) => {
      const req = session.request({ ":path": reqPath });
      let status = null;
      const timer = setTimeout(() => {
        count("timeout");
        req.close(http2.constants.NGHTTP2_CANCEL);
        resolve();
      }, Number(timeoutMs));
      req.on("response", (h) => (status = h[":status"]));
      req.resume();
      req.on("end", () => {
        clearTimeout(timer);
        count(`status ${status}`);
        resolve();
      });
      req.on("error", (e) => {
        clearTimeout(timer);
        count(e.code || String(e));
        resolve();
      });
    });
  await Promise.all(Array.from({ length: Number(n) }, one));
  const ms = Math.round(now() - started);
  session.destroy();
  return { outcomes, ms, remoteMax };
}

// One connect/request/destroy cycle, in one of three ways.
function cycle(kind, timeoutMs) {
  return new Promise((resolve) => {
    const session = connect();
    let outcome = null;
    const end = (o) => {
      if (outcome) return;
      outcome = o;
      clearTimeout(timer);
      if (!session.destroyed) session.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => end("timeout"), timeoutMs);
    session.on("error", (e) => end(`session error ${e.code || e}`));
    if (kind === "destroy-on-connect") {
      session.on("connect", () => end("ok"));
      return;
    }
    const reqPath = kind === "destroy-mid-response" ? "/bytes?n=1048576" : "/hello";
    const req = session.request({ ":path": reqPath });
    req.on("error", (e) => end(`stream error ${e.code || e}`));
    let status = null;
    req.on("response", (h) => (status = h[":status"]));
    if (kind === "destroy-mid-response") {
      req.on("data", () => end(status === 200 ? "ok" : `status ${status}`));
    } else {
      req.resume();
      req.on("end", () => end(status === 200 ? "ok" : `status ${status}`));
    }
  });
}

async function cycles([n, parallel, timeoutMs]) {
  const kinds = ["destroy-on-connect", "destroy-mid-response", "complete"];
  const outcomes = {};
  let next = 0;
  const started = now();
  const worker = async () => {
    while (next < Number(n)) {
      const kind = kinds[next++ % kinds.length];
      const o = await cycle(kind, Number(timeoutMs));
      const key = `${kind}: ${o}`;
      outcomes[key] = (outcomes[key] || 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: Number(parallel) }, worker));
  return { outcomes, ms: Math.round(now() - started) };
}

const modes = { uploads, concurrent, cycles };
if (!modes[mode]) {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
const result = await modes[mode](args);
console.log("RESULT " + JSON.stringify(result));
