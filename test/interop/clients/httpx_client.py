"""httpx (PyPI httpx[http2]) client for the interop suite (test/interop/httpx_test.exs).

    python3 httpx_client.py BASE_URL CA N [http1]

One AsyncClient with HTTP/2 (prior knowledge for http://, ALPN over TLS with CA trusted;
"-" for none), or with HTTP/1.1 only when the fourth argument is "http1" (its pool of
keep-alive connections), sends N requests at once, mixed: GET /hello, GET /bytes of various sizes
(checked against x-sha256), POST /upload of various sizes (checked against the answer), GET
/slow. Prints "RESULT <json>": ok, failures, HTTP versions seen, time.
"""

import asyncio
import hashlib
import json
import os
import ssl
import sys
import time

import httpx

SIZES = [0, 1, 1024, 16_384, 100_000, 262_144, 1_048_576]


async def one(client, i):
    kind = i % 4
    size = SIZES[(i // 4) % len(SIZES)]
    if kind == 0:
        r = await client.get("/hello")
        ok = r.status_code == 200 and r.text == "hello /hello"
    elif kind == 1:
        r = await client.get(f"/bytes?n={size}")
        ok = (
            r.status_code == 200
            and len(r.content) == size
            and hashlib.sha256(r.content).hexdigest() == r.headers["x-sha256"]
        )
    elif kind == 2:
        body = os.urandom(size)
        r = await client.post("/upload", content=body)
        ok = r.status_code == 200 and r.text == f"{size} {hashlib.sha256(body).hexdigest()}"
    else:
        r = await client.get("/slow?ms=50")
        ok = r.status_code == 200
    return r.http_version, ok, f"{kind}/{size}: status {r.status_code}"


async def main(base, ca, n, only_http1):
    verify = ssl.create_default_context(cafile=ca) if ca != "-" else False
    # Over TLS ALPN picks h2; h2c needs prior knowledge.
    http1 = only_http1 or base.startswith("https")
    async with httpx.AsyncClient(
        base_url=base, http2=not only_http1, http1=http1, verify=verify, timeout=60
    ) as client:
        started = time.monotonic()
        outcomes = await asyncio.gather(*(one(client, i) for i in range(n)), return_exceptions=True)
        ms = round((time.monotonic() - started) * 1000)
    ok, failures, versions = 0, {}, {}
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            key = f"{type(outcome).__name__}: {outcome}"
            failures[key] = failures.get(key, 0) + 1
            continue
        version, good, what = outcome
        versions[version] = versions.get(version, 0) + 1
        if good:
            ok += 1
        else:
            failures[what] = failures.get(what, 0) + 1
    return {"ok": ok, "failures": failures, "versions": versions, "ms": ms}


if __name__ == "__main__":
    base, ca, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    only_http1 = len(sys.argv) > 4 and sys.argv[4] == "http1"
    print("RESULT " + json.dumps(asyncio.run(main(base, ca, n, only_http1))), flush=True)
