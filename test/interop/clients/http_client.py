"""Python's http.client (the standard library's HTTP/1.1 client) for the interop suite
(test/interop/http1_test.exs).

    python3 http_client.py HOST PORT CA N

One keep-alive connection (HTTPSConnection with the CA trusted when CA is not "-") sends N
rounds of: GET /hello, GET /bytes (checked against x-sha256), POST /upload with a
content-length and POST /upload chunked (encode_chunked=True), both checked against the
server's answer (size and SHA-256 of what its handler read). Prints "RESULT <json>": ok,
failures, HTTP versions seen, connections opened.
"""

import hashlib
import http.client
import json
import os
import ssl
import sys

SIZES = [0, 1, 1000, 65_536, 262_145, 1_048_576]


class Counting(http.client.HTTPConnection):
    connects = 0

    def connect(self):
        Counting.connects += 1
        super().connect()


class CountingTLS(http.client.HTTPSConnection):
    def connect(self):
        Counting.connects += 1
        super().connect()


def chunks(body, size=10_000):
    for i in range(0, len(body), size):
        yield body[i : i + size]


def main(host, port, ca, n):
    if ca == "-":
        conn = Counting(host, port, timeout=30)
    else:
        conn = CountingTLS(host, port, timeout=30, context=ssl.create_default_context(cafile=ca))
    ok, failures, versions = 0, {}, {}

    def check(what, good, r):
        nonlocal ok
        versions[r.version] = versions.get(r.version, 0) + 1
        if good:
            ok += 1
        else:
            failures[what] = failures.get(what, 0) + 1

    for i in range(n):
        size = SIZES[i % len(SIZES)]
        conn.request("GET", "/hello")
        r = conn.getresponse()
        check("hello", r.status == 200 and r.read() == b"hello /hello", r)

        conn.request("GET", f"/bytes?n={size}")
        r = conn.getresponse()
        data = r.read()
        check(f"bytes {size}", hashlib.sha256(data).hexdigest() == r.headers["x-sha256"], r)

        body = os.urandom(size)
        want = f"{size} {hashlib.sha256(body).hexdigest()}".encode()
        conn.request("POST", "/upload", body=body)
        r = conn.getresponse()
        check(f"upload {size}", r.read() == want, r)

        conn.request("POST", "/upload", body=chunks(body), encode_chunked=True)
        r = conn.getresponse()
        check(f"chunked upload {size}", r.read() == want, r)
    conn.close()
    return {"ok": ok, "failures": failures, "versions": versions, "connections": Counting.connects}


if __name__ == "__main__":
    host, port, ca, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    print("RESULT " + json.dumps(main(host, port, ca, n)), flush=True)
