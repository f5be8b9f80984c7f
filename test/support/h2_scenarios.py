#!/usr/bin/env python3
"""Client scenarios for h2flow's server tests, driven by python-hyper's h2: an HTTP/2 client
written by others, with its own flow control and frame handling.

Usage: h2_scenarios.py SCENARIO HOST PORT [ARGS...]

Progress lines ("blocked 1048576") go to stdout as they happen; the last line is the result,
written as an Elixir term (maps with atom and integer keys, lists, strings, integers), which
the ExUnit test evaluates. Every scenario gives up after a deadline and exits non-zero.

Scenarios:
  posts N SIZE PATH       N concurrent POSTs of SIZE bytes each, sent as flow control allows
  refuse N PATH AFTER     N GETs at once, before the server's SETTINGS are read; then one more
                          GET to AFTER once every stream was answered or refused
  upload SIZE PATH        one POST of SIZE bytes; prints "blocked SENT" when flow control stops
                          it, then waits for the response
  reset N PATH AFTER      N GETs with 2 KiB stream windows; once each has received DATA,
                          prints "streaming" and waits for a line on stdin; then resets them
                          all (CANCEL), prints "reset", and makes one more GET to AFTER
  get PATH                one GET (trailers included in the result)
  hold N PATH             N connections, each past its handshake (SETTINGS read and
                          acknowledged both ways); prints "ready" and waits for a line on
                          stdin; then one GET to PATH on every connection, prints "sent", and
                          reads every response
"""

import socket
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

DEADLINE = time.monotonic() + 30


def ex(value):
    """An Elixir literal for value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nil"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("#", "\\#") + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(ex(v) for v in value) + "]"
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            key = str(k) if isinstance(k, int) else ":" + k
            items.append(key + " => " + ex(v))
        return "%{" + ", ".join(items) + "}"
    raise TypeError(repr(value))


def progress(line):
    print(line, flush=True)


class Client:
    def __init__(self, host, port, window=None):
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=config)
        if window is not None:
            # Our SETTINGS_INITIAL_WINDOW_SIZE, in force from the first SETTINGS we send.
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE:
                    self.conn.DEFAULT_MAX_HEADER_LIST_SIZE,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window,
            })
        # Whether to give back the credit of response DATA as it arrives.
        self.ack_data = True
        self.reads = 0
        self.reads_with_window_update = 0
        self.window_updates = {"connection": 0, "stream": 0}
        self.responses = {}
        self.terminated = None
        self.settings_acked = False
        self.conn.initiate_connection()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def headers(self, method, path, extra=()):
        return [
            (":method", method),
            (":scheme", "http"),
            (":authority", "%s:%d" % (self.host, self.port)),
            (":path", path),
        ] + list(extra)

    def request(self, method, path, extra=(), end_stream=True):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, self.headers(method, path, extra), end_stream=end_stream)
        self.responses[sid] = {"status": None, "body": 0, "trailers": [], "ended": False,
                               "reset": None, "data_frames": 0}
        return sid

    def read(self):
        """One socket read; returns its events (answering what h2 answers on its own)."""
        timeout = DEADLINE - time.monotonic()
        if timeout <= 0:
            raise TimeoutError("scenario deadline")
        self.sock.settimeout(timeout)
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("server closed the connection")
        self.reads += 1
        events = self.conn.receive_data(data)
        saw_update = False
        for e in events:
            if isinstance(e, h2.events.WindowUpdated):
                saw_update = True
                self.window_updates["connection" if e.stream_id == 0 else "stream"] += 1
            elif isinstance(e, h2.events.ResponseReceived):
                status = dict(e.headers)[":status"]
                self.responses[e.stream_id]["status"] = int(status)
            elif isinstance(e, h2.events.DataReceived):
                r = self.responses.get(e.stream_id)
                if r is not None:
                    r["body"] += len(e.data)
                    r["data_frames"] += 1
                # Give the credit back at once (unless told not to): these scenarios test
                # the server's receiving.
                if e.flow_controlled_length and self.ack_data:
                    self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, h2.events.TrailersReceived):
                self.responses[e.stream_id]["trailers"] = [list(h) for h in e.headers]
            elif isinstance(e, h2.events.StreamEnded):
                self.responses[e.stream_id]["ended"] = True
            elif isinstance(e, h2.events.StreamReset):
                r = self.responses.get(e.stream_id)
                if r is not None:
                    r["reset"] = h2.errors.ErrorCodes(e.error_code).name.lower()
            elif isinstance(e, h2.events.SettingsAcknowledged):
                self.settings_acked = True
            elif isinstance(e, h2.events.ConnectionTerminated):
                self.terminated = h2.errors.ErrorCodes(e.error_code).name.lower()
        if saw_update:
            self.reads_with_window_update += 1
        self.flush()
        return events

    def done(self, sid):
        r = self.responses[sid]
        return r["ended"] or r["reset"] is not None

    def wait(self, sids):
        while not all(self.done(s) for s in sids):
            self.read()

    def result(self, **extra):
        out = {
            "reads": self.reads,
            "reads_with_window_update": self.reads_with_window_update,
            "window_updates": self.window_updates,
            "responses": self.responses,
            "terminated": self.terminated,
        }
        out.update(extra)
        return out


def send_bodies(c, bodies):
    """Sends {sid: remaining} as the windows allow, reading (for WINDOW_UPDATEs) when stuck."""
    while any(bodies.values()):
        progressed = False
        for sid, left in bodies.items():
            n = min(left, c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size)
            if left and n > 0:
                c.conn.send_data(sid, b"x" * n, end_stream=(n == left))
                bodies[sid] = left - n
                progressed = True
        c.flush()
        if not progressed:
            c.read()


def posts(host, port, n, size, path):
    c = Client(host, port)
    await_preface(c)
    sids = [c.request("POST", path, [("content-length", str(size))], end_stream=False)
            for _ in range(n)]
    send_bodies(c, {sid: size for sid in sids})
    c.wait(sids)
    return c.result()


def refuse(host, port, n, path, after):
    c = Client(host, port)
    sids = [c.request("GET", path) for _ in range(n)]
    # The preface, SETTINGS and every HEADERS frame in one write, as a browser's burst.
    c.flush()
    c.wait(sids)
    last = c.request("GET", after)
    c.flush()
    c.wait([last])
    return c.result(after=last)


def await_preface(c):
    """Reads until the server's SETTINGS and connection WINDOW_UPDATE are in."""
    c.flush()
    while c.conn.outbound_flow_control_window <= 65535:
        c.read()


def upload(host, port, size, path):
    c = Client(host, port)
    await_preface(c)
    sid = c.request("POST", path, [("content-length", str(size))], end_stream=False)
    c.flush()
    sent = 0
    blocked = False
    while not c.done(sid):
        window = c.conn.local_flow_control_window(sid)
        if sent < size and window > 0:
            n = min(size - sent, window, c.conn.max_outbound_frame_size)
            c.conn.send_data(sid, b"u" * n, end_stream=(sent + n == size))
            sent += n
            c.flush()
            continue
        if sent < size and not blocked:
            blocked = True
            progress("blocked %d" % sent)
        c.read()
    return c.result(sent=sent, stream=sid)


def reset(host, port, n, path, after):
    # Stream windows of 2 KiB, not given back: every handler gets to send, then blocks.
    c = Client(host, port, window=2048)
    c.ack_data = False
    sids = [c.request("GET", path) for _ in range(n)]
    c.flush()
    while not all(c.responses[s]["data_frames"] > 0 for s in sids):
        c.read()
    # The test looks at the server while every handler is streaming, then lets us go on.
    progress("streaming")
    sys.stdin.readline()
    for s in sids:
        c.conn.reset_stream(s, h2.errors.ErrorCodes.CANCEL)
    c.flush()
    progress("reset")
    last = c.request("GET", after)
    c.flush()
    c.wait([last])
    return c.result(after=last)


def get(host, port, path):
    c = Client(host, port)
    sid = c.request("GET", path)
    c.flush()
    c.wait([sid])
    return c.result(stream=sid)


def hold(host, port, n, path):
    clients = [Client(host, port) for _ in range(n)]
    for c in clients:
        c.flush()
    for c in clients:
        # h2 acknowledges the server's SETTINGS as it reads them (flushed by read()).
        while c.conn.outbound_flow_control_window <= 65535 or not c.settings_acked:
            c.read()
    progress("ready")
    sys.stdin.readline()
    sids = []
    for c in clients:
        sids.append(c.request("GET", path))
        c.flush()
    progress("sent")
    statuses = {}
    for c, sid in zip(clients, sids):
        c.wait([sid])
        r = c.responses[sid]
        key = r["status"] if r["reset"] is None else r["reset"]
        statuses[key] = statuses.get(key, 0) + 1
    for c in clients:
        c.sock.close()
    return {"statuses": statuses}


def main(argv):
    scenario, host, port, args = argv[1], argv[2], int(argv[3]), argv[4:]
    if scenario == "posts":
        out = posts(host, port, int(args[0]), int(args[1]), args[2])
    elif scenario == "refuse":
        out = refuse(host, port, int(args[0]), args[1], args[2])
    elif scenario == "upload":
        out = upload(host, port, int(args[0]), args[1])
    elif scenario == "reset":
        out = reset(host, port, int(args[0]), args[1], args[2])
    elif scenario == "get":
        out = get(host, port, args[0])
    elif scenario == "hold":
        out = hold(host, port, int(args[0]), args[1])
    else:
        raise SystemExit("unknown scenario " + scenario)
    print(ex(out), flush=True)


if __name__ == "__main__":
    main(sys.argv)
