//! Helpers for the HTTP/1.1 engine tests: a harness with a synthetic clock that resolves
//! events, and a small response parser (httparse for the head, the body decoded here) so that
//! tests check what a client would read.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use h2flow_core::http1::{Config, Connection, Event, Rejected, Sent, Version};

/// An event with its payload resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Request { id: u64, version: Version, fields: Vec<(String, String)>, end: bool },
    Data { id: u64, data: Vec<u8>, end: bool },
    Trailers { id: u64, fields: Vec<(String, String)> },
    ReadDone { id: u64, fin: bool },
    Writable { id: u64 },
    Cancelled { id: u64 },
    Upgrade { settings: Vec<(u16, u32)>, fields: Vec<(String, String)>, body: Vec<u8>, rest: Vec<u8> },
}

pub fn strings(l: &h2flow_core::hpack::HeaderList) -> Vec<(String, String)> {
    l.iter()
        .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

impl Ev {
    pub fn from(e: Event, input: &[u8]) -> Ev {
        match e {
            Event::Request { id, version, fields, end_stream, .. } => {
                Ev::Request { id, version, fields: strings(&fields), end: end_stream }
            }
            Event::Data { id, data, end_stream } => {
                Ev::Data { id, data: data.resolve(input).to_vec(), end: end_stream }
            }
            Event::Trailers { id, fields } => Ev::Trailers { id, fields: strings(&fields) },
            Event::ReadDone { id, fin } => Ev::ReadDone { id, fin },
            Event::Writable { id } => Ev::Writable { id },
            Event::Cancelled { id } => Ev::Cancelled { id },
            Event::Upgrade(u) => Ev::Upgrade {
                settings: u.settings.clone(),
                fields: strings(&u.fields),
                body: u.body.clone(),
                rest: u.rest.resolve(input).to_vec(),
            },
        }
    }

    pub fn id(&self) -> Option<u64> {
        match self {
            Ev::Request { id, .. }
            | Ev::Data { id, .. }
            | Ev::Trailers { id, .. }
            | Ev::ReadDone { id, .. }
            | Ev::Writable { id }
            | Ev::Cancelled { id } => Some(*id),
            Ev::Upgrade { .. } => None,
        }
    }
}

/// The value of the first field called `name` in a resolved list.
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

pub struct Harness {
    pub conn: Connection,
    pub now: Instant,
    /// Everything the engine wrote so far.
    pub written: Vec<u8>,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with(Config::default())
    }

    pub fn with(cfg: Config) -> Harness {
        let now = Instant::now();
        Harness { conn: Connection::new(cfg, now).expect("config"), now, written: Vec::new() }
    }

    /// Feeds bytes; returns the events (payloads resolved) and the result.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<Ev>, Result<(), Rejected>) {
        let r = self.conn.recv(input, self.now);
        let events = self.conn.take_events().into_iter().map(|e| Ev::from(e, input)).collect();
        (events, r)
    }

    /// Feeds bytes that must be accepted.
    pub fn recv(&mut self, input: &[u8]) -> Vec<Ev> {
        let (events, r) = self.feed(input);
        r.expect("request accepted");
        events
    }

    /// Flushes; returns the bytes and the events the flush produced.
    pub fn flush_events(&mut self) -> (Vec<u8>, Vec<Ev>) {
        let out = self.conn.flush(self.now);
        self.written.extend_from_slice(&out);
        let events = self.conn.take_events().into_iter().map(|e| Ev::from(e, &[])).collect();
        (out, events)
    }

    pub fn flush(&mut self) -> Vec<u8> {
        self.flush_events().0
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Answers request `id` with a complete response carrying `body` (Content-Length).
    pub fn respond(&mut self, id: u64, status: &str, body: &[u8]) {
        let len = body.len().to_string();
        let fields: Vec<(&[u8], &[u8])> =
            vec![(b":status", status.as_bytes()), (b"content-length", len.as_bytes())];
        self.conn.send_headers(id, &fields, body.is_empty()).expect("send_headers");
        if !body.is_empty() {
            assert_eq!(self.conn.send_data(id, body, true).expect("send_data"), Sent::Queued(0));
        }
    }

    /// Sends a response head without a length (chunked for HTTP/1.1).
    pub fn start_streaming(&mut self, id: u64, status: &str) {
        self.conn.send_headers(id, &[(b":status", status.as_bytes())], false).expect("send_headers");
    }
}

/// A response as a client reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// Field names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// The body was delimited by the end of the bytes (close-delimited).
    pub to_close: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        field(&self.headers, name)
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n == name).count()
    }

    pub fn closes(&self) -> bool {
        self.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Parses every response in `bytes`. `no_body[i]` says whether the i-th final response answers
/// a HEAD (no body whatever its fields say); informational responses are returned too.
pub fn parse_responses(mut bytes: &[u8], head_requests: &[bool]) -> Vec<Response> {
    let mut out = Vec::new();
    let mut finals = 0;
    while !bytes.is_empty() {
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut slots);
        let n = match r.parse(bytes).expect("valid response head") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => {
                panic!("partial response head: {:?}", String::from_utf8_lossy(bytes))
            }
        };
        assert_eq!(r.version, Some(1), "responses are HTTP/1.1");
        let status = r.code.expect("status");
        let reason = r.reason.unwrap_or("").to_string();
        let headers: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
            .collect();
        bytes = &bytes[n..];
        let mut resp =
            Response { status, reason, headers, body: Vec::new(), trailers: Vec::new(), to_close: false };
        if status < 200 {
            out.push(resp);
            continue;
        }
        let is_head = head_requests.get(finals).copied().unwrap_or(false);
        finals += 1;
        let chunked = resp.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if is_head || status == 204 || status == 304 {
        } else if chunked {
            assert!(resp.header("content-length").is_none(), "both content-length and chunked");
            loop {
                let line_end = find(bytes, b"\r\n").expect("chunk line");
                let line = std::str::from_utf8(&bytes[..line_end]).expect("chunk line");
                let size = usize::from_str_radix(line.split(';').next().unwrap(), 16).expect("chunk size");
                bytes = &bytes[line_end + 2..];
                if size == 0 {
                    let mut slots = [httparse::EMPTY_HEADER; 64];
                    match httparse::parse_headers(bytes, &mut slots).expect("trailers") {
                        httparse::Status::Complete((n, t)) => {
                            resp.trailers = t
                                .iter()
                                .map(|h| {
                                    (
                                        h.name.to_ascii_lowercase(),
                                        String::from_utf8_lossy(h.value).into_owned(),
                                    )
                                })
                                .collect();
                            bytes = &bytes[n..];
                        }
                        httparse::Status::Partial => panic!("partial trailers"),
                    }
                    break;
                }
                resp.body.extend_from_slice(&bytes[..size]);
                assert_eq!(&bytes[size..size + 2], b"\r\n", "chunk data ends with CRLF");
                bytes = &bytes[size + 2..];
            }
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().expect("content-length");
            resp.body = bytes[..len].to_vec();
            bytes = &bytes[len..];
        } else {
            resp.body = bytes.to_vec();
            resp.to_close = true;
            bytes = &[];
        }
        out.push(resp);
    }
    out
}

/// Parses the responses to requests none of which is HEAD.
pub fn responses(bytes: &[u8]) -> Vec<Response> {
    parse_responses(bytes, &[])
}

/// The one response in `bytes`.
pub fn response(bytes: &[u8]) -> Response {
    let mut r = responses(bytes);
    assert_eq!(r.len(), 1, "one response expected: {:?}", String::from_utf8_lossy(bytes));
    r.remove(0)
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n").into_bytes()
}

pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut r =
        format!("POST {path} HTTP/1.1\r\nHost: example.com\r\nContent-Length: {}\r\n\r\n", body.len())
            .into_bytes();
    r.extend_from_slice(body);
    r
}

/// A chunked encoding of `body` in chunks of `chunk` bytes, with optional trailers.
pub fn chunked(body: &[u8], chunk: usize, trailers: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    out.extend_from_slice(trailers.as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

pub fn post_chunked(path: &str, body: &[u8], chunk: usize, trailers: &str) -> Vec<u8> {
    let mut r = format!("POST {path} HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n")
        .into_bytes();
    r.extend(chunked(body, chunk, trailers));
    r
}

/// The body bytes of request `id` in `events`, and whether its end was seen.
pub fn body_of(events: &[Ev], id: u64) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    let mut ended = false;
    for e in events {
        match e {
            Ev::Data { id: i, data, end } if *i == id => {
                assert!(!ended, "data after the end of the body");
                body.extend_from_slice(data);
                ended |= *end;
            }
            Ev::Trailers { id: i, .. } if *i == id => {
                assert!(!ended, "trailers after the end of the body");
                ended = true;
            }
            _ => {}
        }
    }
    (body, ended)
}

/// The ids of the Request events, in order.
pub fn request_ids(events: &[Ev]) -> Vec<u64> {
    events.iter().filter_map(|e| if let Ev::Request { id, .. } = e { Some(*id) } else { None }).collect()
}

/// A reproducible pseudo-random generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
