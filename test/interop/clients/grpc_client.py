"""gRPC client (PyPI grpcio) for the interop suite (test/interop/grpc_test.exs).

    python3 grpc_client.py TARGET CA SCENARIO

TARGET is host:port, CA the PEM file of the CA to trust ("-": h2c, no TLS). Generic bytes
methods, no protobuf: the server echoes every message of a bidirectional stream. Scenarios:

    large       4 streams of 8 messages of 1 MiB each
    small       4 streams of 1,000 messages of 100 B each, one message in flight at a time
    concurrent  150 bidirectional RPCs at once, 4 messages of 1 KiB each, one at a time
    keepalive   one stream sending 100 B every 50 ms for 5 s, keepalive pings every second

Prints "RESULT <json>": RPCs ok, failures by status and message, messages echoed, time.
"""

import json
import os
import queue
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

METHOD = "/grpc/Echo"
DEADLINE = 60  # seconds per RPC: a stalled stream fails instead of hanging


def channel(target, ca, extra=()):
    options = [
        ("grpc.max_receive_message_length", 8 << 20),
        ("grpc.max_send_message_length", 8 << 20),
    ] + list(extra)
    if ca == "-":
        return grpc.insecure_channel(target, options=options)
    with open(ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    # The certificate names localhost and 127.0.0.1; grpc checks the name it is given here.
    options.append(("grpc.ssl_target_name_override", "localhost"))
    return grpc.secure_channel(target, creds, options=options)


def echo_all(stub, messages):
    """Sends every message, then checks that each came back in order."""
    got = list(stub(iter(messages), timeout=DEADLINE))
    if got != messages:
        raise AssertionError(f"echo mismatch: sent {len(messages)}, got {len(got)}")
    return len(got)


def ping_pong(stub, messages, pause=0.0):
    """One message in flight at a time: the next goes once the previous came back."""
    outbox = queue.Queue()

    def requests():
        while True:
            item = outbox.get()
            if item is None:
                return
            yield item

    outbox.put(messages[0])
    replies = stub(requests(), timeout=DEADLINE)
    count = 0
    for i, reply in enumerate(replies):
        if reply != messages[i]:
            raise AssertionError(f"message {i}: echo differs")
        count += 1
        if pause:
            time.sleep(pause)
        outbox.put(messages[i + 1] if i + 1 < len(messages) else None)
    if count != len(messages):
        raise AssertionError(f"sent {len(messages)}, got {count}")
    return count


def run(target, ca, scenario):
    extra = []
    if scenario == "keepalive":
        extra = [
            ("grpc.keepalive_time_ms", 1000),
            ("grpc.keepalive_timeout_ms", 5000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
        ]
    ch = channel(target, ca, extra)
    stub = ch.stream_stream(METHOD, request_serializer=None, response_deserializer=None)

    if scenario == "large":
        jobs = [[os.urandom(1 << 20) for _ in range(8)] for _ in range(4)]
        work = lambda msgs: echo_all(stub, msgs)
        workers = 4
    elif scenario == "small":
        jobs = [[os.urandom(100) for _ in range(1000)] for _ in range(4)]
        work = lambda msgs: ping_pong(stub, msgs)
        workers = 4
    elif scenario == "concurrent":
        # All 150 start at once; beyond the server's limit of concurrent streams, grpc queues
        # them. Each stays open for 4 round trips.
        jobs = [[os.urandom(1024) for _ in range(4)] for _ in range(150)]
        work = lambda msgs: ping_pong(stub, msgs)
        workers = 150
    elif scenario == "keepalive":
        jobs = [[os.urandom(100) for _ in range(100)]]
        work = lambda msgs: ping_pong(stub, msgs, pause=0.05)
        workers = 1
    else:
        raise SystemExit(f"unknown scenario {scenario}")

    ok, echoed, failures = 0, 0, {}
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(work, job) for job in jobs]:
            try:
                echoed += future.result()
                ok += 1
            except grpc.RpcError as e:
                key = f"{e.code().name}: {e.details()}"
                failures[key] = failures.get(key, 0) + 1
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                key = f"{type(e).__name__}: {e}"
                failures[key] = failures.get(key, 0) + 1
    ms = round((time.monotonic() - started) * 1000)
    ch.close()
    return {"ok": ok, "rpcs": len(jobs), "echoed": echoed, "failures": failures, "ms": ms}


if __name__ == "__main__":
    target, ca, scenario = sys.argv[1:4]
    print("RESULT " + json.dumps(run(target, ca, scenario)), flush=True)
