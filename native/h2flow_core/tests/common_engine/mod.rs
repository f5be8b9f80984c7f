//! A tiny HTTP/2 client for engine tests: builds frames with the codec and a literal-only
//! HPACK encoding, and decodes what the engine writes.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use h2flow_core::frame::{self, setting, Frame, Settings};
use h2flow_core::{Config, Connection, Event};

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An HPACK block of literal fields without indexing (RFC 7541 6.2.2), no Huffman.
pub fn literal_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        put_string(&mut out, name.as_bytes());
        put_string(&mut out, value.as_bytes());
    }
    out
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_int(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

pub fn put_int(out: &mut Vec<u8>, first: u8, prefix: u8, mut n: usize) {
    let max = (1usize << prefix) - 1;
    if n < max {
        out.push(first | n as u8);
        return;
    }
    out.push(first | max as u8);
    n -= max;
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
}

pub fn request_fields<'a>(method: &'a str, path: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![(":method", method), (":scheme", "http"), (":authority", "localhost"), (":path", path)]
}

pub fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    Settings::encode_params(params, &mut out);
    out
}

pub fn settings_ack() -> Vec<u8> {
    let mut out = Vec::new();
    Settings::encode_ack(&mut out);
    out
}

pub fn headers(stream_id: u32, fields: &[(&str, &str)], end_stream: bool) -> Vec<u8> {
    let block = literal_block(fields);
    let mut out = Vec::new();
    frame::encode_header_block(stream_id, &block, end_stream, 16_384, &mut out);
    out
}

/// `n` body bytes in DATA frames of at most 16 KiB, the last one with `end_stream`.
pub fn body(id: u32, n: usize, end_stream: bool) -> Vec<u8> {
    let chunk = vec![0x5a; 16 * 1024];
    let mut out = Vec::new();
    let mut left = n;
    while left > chunk.len() {
        out.extend(data(id, &chunk, false));
        left -= chunk.len();
    }
    out.extend(data(id, &chunk[..left], end_stream));
    out
}

pub fn data(stream_id: u32, payload: &[u8], end_stream: bool) -> Vec<u8> {
    let mut out = Vec::new();
    Frame::Data(frame::Data { stream_id, end_stream, data: payload, pad_len: None }).encode(&mut out);
    out
}

pub fn window_update(stream_id: u32, increment: u32) -> Vec<u8> {
    let mut out = Vec::new();
    Frame::WindowUpdate(frame::WindowUpdate { stream_id, increment }).encode(&mut out);
    out
}

pub fn rst_stream(stream_id: u32, code: u32) -> Vec<u8> {
    let mut out = Vec::new();
    Frame::RstStream(frame::RstStream { stream_id, error_code: h2flow_core::ErrorCode(code) })
        .encode(&mut out);
    out
}

pub fn ping(data: [u8; 8]) -> Vec<u8> {
    let mut out = Vec::new();
    Frame::Ping(frame::Ping { ack: false, data }).encode(&mut out);
    out
}

/// A frame written by the server, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    Settings { ack: bool, params: Vec<(u16, u32)> },
    WindowUpdate { stream_id: u32, increment: u32 },
    Headers { stream_id: u32, end_stream: bool, end_headers: bool, block: Vec<u8> },
    Continuation { stream_id: u32, end_headers: bool, block: Vec<u8> },
    Data { stream_id: u32, len: usize, end_stream: bool },
    RstStream { stream_id: u32, code: u32 },
    Ping { ack: bool, data: [u8; 8] },
    GoAway { last_stream_id: u32, code: u32, debug: String },
    Other(u8),
}

/// Decodes server output completely; panics on invalid frames (the engine must not write them).
pub fn parse_output(mut buf: &[u8]) -> Vec<Out> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (f, len) = frame::decode(buf, frame::MAX_MAX_FRAME_SIZE)
            .expect("server wrote an invalid frame")
            .expect("server wrote a partial frame");
        out.push(match f {
            Frame::Settings(s) => Out::Settings { ack: s.ack, params: s.params().collect() },
            Frame::WindowUpdate(w) => Out::WindowUpdate { stream_id: w.stream_id, increment: w.increment },
            Frame::Headers(h) => Out::Headers {
                stream_id: h.stream_id,
                end_stream: h.end_stream,
                end_headers: h.end_headers,
                block: h.fragment.to_vec(),
            },
            Frame::Continuation(c) => Out::Continuation {
                stream_id: c.stream_id,
                end_headers: c.end_headers,
                block: c.fragment.to_vec(),
            },
            Frame::Data(d) => {
                Out::Data { stream_id: d.stream_id, len: d.data.len(), end_stream: d.end_stream }
            }
            Frame::RstStream(r) => Out::RstStream { stream_id: r.stream_id, code: r.error_code.0 },
            Frame::Ping(p) => Out::Ping { ack: p.ack, data: p.data },
            Frame::GoAway(g) => Out::GoAway {
                last_stream_id: g.last_stream_id,
                code: g.error_code.0,
                debug: String::from_utf8_lossy(g.debug_data).into_owned(),
            },
            other => Out::Other(other.kind()),
        });
        buf = &buf[len..];
    }
    out
}

/// An engine driven with a synthetic clock.
pub struct Harness {
    pub conn: Connection,
    pub now: Instant,
    /// Every frame the server wrote so far.
    pub written: Vec<Out>,
    pub flushes_with_output: usize,
    /// A client engine's first flush starts with the connection preface, before any frame.
    pub preface_due: bool,
}

impl Harness {
    pub fn new(cfg: Config) -> Harness {
        let now = Instant::now();
        Harness {
            conn: Connection::new(cfg, now).expect("config"),
            now,
            written: Vec::new(),
            flushes_with_output: 0,
            preface_due: false,
        }
    }

    /// A client engine, nothing written yet.
    pub fn client(cfg: Config) -> Harness {
        let now = Instant::now();
        Harness {
            conn: Connection::new_client(cfg, now).expect("config"),
            now,
            written: Vec::new(),
            flushes_with_output: 0,
            preface_due: true,
        }
    }

    /// A client engine past the handshake: its preface written, the server's SETTINGS
    /// (`server_settings`) received and acknowledged, ours acknowledged.
    pub fn client_established(cfg: Config, server_settings: &[(u16, u32)]) -> Harness {
        let mut h = Harness::client(cfg);
        h.flush();
        let mut input = settings(server_settings);
        input.extend(settings_ack());
        h.recv(&input).expect("handshake");
        h.flush();
        h
    }

    /// A connection past the preface: client SETTINGS sent, server SETTINGS acknowledged.
    pub fn established(cfg: Config) -> Harness {
        Harness::established_with(cfg, &[])
    }

    /// Like [`Harness::established`], the client's SETTINGS carrying `client_settings`.
    pub fn established_with(cfg: Config, client_settings: &[(u16, u32)]) -> Harness {
        let mut h = Harness::new(cfg);
        // Our preface goes out with the first flush; the client acknowledges what it read.
        h.flush();
        let mut input = PREFACE.to_vec();
        input.extend(settings(client_settings));
        input.extend(settings_ack());
        h.recv(&input).expect("handshake");
        h.flush();
        h
    }

    /// A connection that received the client preface and SETTINGS but no acknowledgement yet.
    pub fn unacked(cfg: Config) -> Harness {
        let mut h = Harness::new(cfg);
        let mut input = PREFACE.to_vec();
        input.extend(settings(&[]));
        h.recv(&input).expect("handshake");
        h.flush();
        h
    }

    /// Feeds bytes and returns the events together with the result (events produced before a
    /// connection error are kept).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<Ev>, Result<(), h2flow_core::Error>) {
        let r = self.conn.recv(input, self.now);
        let events = self.conn.take_events().into_iter().map(|e| Ev::from(e, input)).collect();
        (events, r)
    }

    /// Feeds bytes that must end the connection; returns the error's code and the flushed frames.
    pub fn expect_connection_error(&mut self, input: &[u8]) -> (u32, Vec<Out>) {
        let (_, r) = self.feed(input);
        let e = r.expect_err("expected a connection error");
        assert!(e.is_connection_error(), "{e:?}");
        assert!(self.conn.is_closed());
        let out = self.flush();
        let g = goaways(&out);
        assert_eq!(g.len(), 1, "one GOAWAY expected: {out:?}");
        assert_eq!(g[0].1, e.code().0, "GOAWAY code is the error's code");
        (e.code().0, out)
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Feeds bytes; returns the events with DATA payloads resolved to owned bytes.
    pub fn recv(&mut self, input: &[u8]) -> Result<Vec<Ev>, h2flow_core::Error> {
        let r = self.conn.recv(input, self.now);
        let events = self.conn.take_events().into_iter().map(|e| Ev::from(e, input)).collect();
        r.map(|()| events)
    }

    pub fn flush(&mut self) -> Vec<Out> {
        let mut bytes = self.conn.flush(self.now);
        if !bytes.is_empty() {
            self.flushes_with_output += 1;
        }
        if self.preface_due && !bytes.is_empty() {
            assert!(bytes.starts_with(PREFACE), "a client's output starts with the preface");
            bytes.drain(..PREFACE.len());
            self.preface_due = false;
        }
        let frames = parse_output(&bytes);
        self.written.extend(frames.iter().cloned());
        frames
    }

    pub fn window_updates_written(&self) -> (usize, usize) {
        let conn =
            self.written.iter().filter(|f| matches!(f, Out::WindowUpdate { stream_id: 0, .. })).count();
        let stream = self
            .written
            .iter()
            .filter(|f| matches!(f, Out::WindowUpdate { stream_id, .. } if *stream_id != 0))
            .count();
        (conn, stream)
    }
}

/// An event with its payload resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Headers { stream_id: u32, fields: Vec<(String, String)>, end_stream: bool },
    Response { stream_id: u32, status: u16, fields: Vec<(String, String)>, end_stream: bool },
    Data { stream_id: u32, data: Vec<u8>, end_stream: bool },
    Trailers { stream_id: u32, fields: Vec<(String, String)> },
    StreamReset { stream_id: u32, code: u32 },
    StreamError { stream_id: u32, code: u32 },
    GoAway { last_stream_id: u32, code: u32 },
    SendWindowOpen { stream_id: u32 },
    ReadDone { stream_id: u32, fin: bool },
    SendTimeout { stream_id: u32 },
}

impl Ev {
    fn from(e: Event, input: &[u8]) -> Ev {
        let strings = |l: &h2flow_core::hpack::HeaderList| {
            l.iter()
                .map(|(n, v)| {
                    (String::from_utf8_lossy(n).into_owned(), String::from_utf8_lossy(v).into_owned())
                })
                .collect()
        };
        match e {
            Event::Headers { stream_id, fields, end_stream, .. } => {
                Ev::Headers { stream_id, fields: strings(&fields), end_stream }
            }
            Event::Response { stream_id, fields, info, end_stream } => {
                Ev::Response { stream_id, status: info.status, fields: strings(&fields), end_stream }
            }
            Event::Data { stream_id, data, end_stream } => {
                Ev::Data { stream_id, data: data.resolve(input).to_vec(), end_stream }
            }
            Event::Trailers { stream_id, fields } => Ev::Trailers { stream_id, fields: strings(&fields) },
            Event::StreamReset { stream_id, code } => Ev::StreamReset { stream_id, code: code.0 },
            Event::StreamError { stream_id, code, .. } => Ev::StreamError { stream_id, code: code.0 },
            Event::GoAway { last_stream_id, code, .. } => Ev::GoAway { last_stream_id, code: code.0 },
            Event::SendWindowOpen { stream_id } => Ev::SendWindowOpen { stream_id },
            Event::ReadDone { stream_id, fin } => Ev::ReadDone { stream_id, fin },
            Event::SendTimeout { stream_id } => Ev::SendTimeout { stream_id },
        }
    }
}

pub fn default_config() -> Config {
    Config::default()
}

pub const INITIAL_WINDOW_SIZE: u16 = setting::INITIAL_WINDOW_SIZE;

// ---------------------------------------------------------------------------------------------
// More frame builders, written with the codec's encoders (tested on their own in frame_*.rs).

/// A POST request's fields with a content-length.
pub fn post_fields(path: &str, content_length: &str) -> Vec<(String, String)> {
    let mut f: Vec<(String, String)> =
        request_fields("POST", path).into_iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    f.push(("content-length".to_string(), content_length.to_string()));
    f
}

/// HEADERS for a request (fields given as owned strings).
pub fn headers_owned(stream_id: u32, fields: &[(String, String)], end_stream: bool) -> Vec<u8> {
    let refs: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    headers(stream_id, &refs, end_stream)
}

/// A GET request on `stream_id`, ending the stream.
pub fn get(stream_id: u32) -> Vec<u8> {
    headers(stream_id, &request_fields("GET", "/"), true)
}

/// A POST on `stream_id` whose body follows, with or without a content-length.
pub fn post(stream_id: u32, content_length: Option<usize>) -> Vec<u8> {
    match content_length {
        Some(n) => headers_owned(stream_id, &post_fields("/upload", &n.to_string()), false),
        None => headers(stream_id, &request_fields("POST", "/upload"), false),
    }
}

/// One HEADERS frame carrying `fragment` as it is.
pub fn headers_frame(stream_id: u32, fragment: &[u8], end_stream: bool, end_headers: bool) -> Vec<u8> {
    let mut out = Vec::new();
    Frame::Headers(frame::Headers {
        stream_id,
        end_stream,
        end_headers,
        priority: None,
        fragment,
        pad_len: None,
    })
    .encode(&mut out);
    out
}

/// HEADERS with a priority field (RFC 9113 6.2).
pub fn headers_with_priority(
    stream_id: u32,
    fields: &[(&str, &str)],
    end_stream: bool,
    dependency: u32,
) -> Vec<u8> {
    let block = literal_block(fields);
    let mut out = Vec::new();
    let priority = Some(frame::Priority { exclusive: false, dependency, weight: 15 });
    Frame::Headers(frame::Headers {
        stream_id,
        end_stream,
        end_headers: true,
        priority,
        fragment: &block,
        pad_len: None,
    })
    .encode(&mut out);
    out
}

pub fn continuation(stream_id: u32, fragment: &[u8], end_headers: bool) -> Vec<u8> {
    let mut out = Vec::new();
    Frame::Continuation(frame::Continuation { stream_id, end_headers, fragment }).encode(&mut out);
    out
}

pub fn padded_data(stream_id: u32, payload: &[u8], pad_len: u8, end_stream: bool) -> Vec<u8> {
    let mut out = Vec::new();
    Frame::Data(frame::Data { stream_id, end_stream, data: payload, pad_len: Some(pad_len) })
        .encode(&mut out);
    out
}

pub fn priority(stream_id: u32, dependency: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let priority = frame::Priority { exclusive: false, dependency, weight: 15 };
    Frame::Priority(frame::PriorityFrame { stream_id, priority }).encode(&mut out);
    out
}

pub fn ping_ack(data: [u8; 8]) -> Vec<u8> {
    let mut out = Vec::new();
    Frame::Ping(frame::Ping { ack: true, data }).encode(&mut out);
    out
}

pub fn goaway(last_stream_id: u32, code: u32, debug: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Frame::GoAway(frame::GoAway {
        last_stream_id,
        error_code: h2flow_core::ErrorCode(code),
        debug_data: debug,
    })
    .encode(&mut out);
    out
}

pub fn push_promise(stream_id: u32, promised_stream_id: u32, fields: &[(&str, &str)]) -> Vec<u8> {
    let block = literal_block(fields);
    let mut out = Vec::new();
    Frame::PushPromise(frame::PushPromise {
        stream_id,
        promised_stream_id,
        end_headers: true,
        fragment: &block,
        pad_len: None,
    })
    .encode(&mut out);
    out
}

/// A frame of any type, header and payload written by hand (RFC 9113 4.1).
pub fn raw_frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::Head { length: payload.len() as u32, kind, flags, stream_id }.encode(&mut out);
    out.extend_from_slice(payload);
    out
}

pub fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

// ---------------------------------------------------------------------------------------------
// Reading what the server wrote.

/// The GOAWAY frames in `frames`, as (last_stream_id, code).
pub fn goaways(frames: &[Out]) -> Vec<(u32, u32)> {
    frames
        .iter()
        .filter_map(|f| match f {
            Out::GoAway { last_stream_id, code, .. } => Some((*last_stream_id, *code)),
            _ => None,
        })
        .collect()
}

/// The RST_STREAM frames in `frames`, as (stream_id, code).
pub fn resets(frames: &[Out]) -> Vec<(u32, u32)> {
    frames
        .iter()
        .filter_map(|f| match f {
            Out::RstStream { stream_id, code } => Some((*stream_id, *code)),
            _ => None,
        })
        .collect()
}

/// The WINDOW_UPDATE frames in `frames`, as (stream_id, increment).
pub fn window_updates(frames: &[Out]) -> Vec<(u32, u32)> {
    frames
        .iter()
        .filter_map(|f| match f {
            Out::WindowUpdate { stream_id, increment } => Some((*stream_id, *increment)),
            _ => None,
        })
        .collect()
}

/// The DATA frames in `frames`, as (stream_id, len, end_stream).
pub fn datas(frames: &[Out]) -> Vec<(u32, usize, bool)> {
    frames
        .iter()
        .filter_map(|f| match f {
            Out::Data { stream_id, len, end_stream } => Some((*stream_id, *len, *end_stream)),
            _ => None,
        })
        .collect()
}

/// A decoded header block: stream id, fields, the raw block.
pub type Block = (u32, Vec<(String, String)>, Vec<u8>);

/// Decodes the server's header blocks (HEADERS + CONTINUATION) with a real HPACK decoder.
pub struct ResponseDecoder {
    decoder: h2flow_core::hpack::Decoder,
    pending: Option<(u32, Vec<u8>)>,
}

impl Default for ResponseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseDecoder {
    pub fn new() -> ResponseDecoder {
        ResponseDecoder { decoder: h2flow_core::hpack::Decoder::new(4096, u32::MAX), pending: None }
    }

    /// Every complete header block in `frames`, decoded.
    pub fn decode(&mut self, frames: &[Out]) -> Vec<Block> {
        let mut blocks = Vec::new();
        for f in frames {
            let done = match f {
                Out::Headers { stream_id, block, end_headers, .. } => {
                    assert!(self.pending.is_none(), "HEADERS inside a header block");
                    self.pending = Some((*stream_id, block.clone()));
                    *end_headers
                }
                Out::Continuation { stream_id, block, end_headers } => {
                    let p = self.pending.as_mut().expect("CONTINUATION without HEADERS");
                    assert_eq!(p.0, *stream_id, "CONTINUATION on another stream");
                    p.1.extend_from_slice(block);
                    *end_headers
                }
                _ => {
                    assert!(self.pending.is_none(), "frame inside a header block: {f:?}");
                    false
                }
            };
            if done {
                let (id, block) = self.pending.take().unwrap();
                let mut list = h2flow_core::hpack::HeaderList::new();
                self.decoder.decode(&block, &mut list).expect("server wrote an undecodable header block");
                let fields = list
                    .iter()
                    .map(|(n, v)| {
                        (String::from_utf8_lossy(n).into_owned(), String::from_utf8_lossy(v).into_owned())
                    })
                    .collect();
                blocks.push((id, fields, block));
            }
        }
        blocks
    }
}

/// A small deterministic PRNG (xorshift64*), so randomized tests replay from their seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

// ---------------------------------------------------------------------------------------------
// A client that respects flow control, and a simulated network between it and the engine.

/// One request body the client is sending.
#[derive(Clone, Debug)]
pub struct Upload {
    /// Body bytes still to send; `None`: a body of unknown length that never ends.
    pub left: Option<usize>,
    /// The client's send window for the stream.
    pub window: i64,
}

/// A test client that respects flow control: it keeps the windows the server gave it (SETTINGS
/// INITIAL_WINDOW_SIZE, WINDOW_UPDATE) and sends DATA only within them, and answers PING and
/// SETTINGS like a real client. `buffered` is the server application's side: body bytes it was
/// handed and has not consumed yet.
pub struct Client {
    pub h: Harness,
    /// Bytes the client has written and the server has not read yet.
    pub input: Vec<u8>,
    pub conn_window: i64,
    pub initial_window: i64,
    pub open: std::collections::BTreeMap<u32, Upload>,
    pub buffered: std::collections::BTreeMap<u32, usize>,
    /// Request bodies received in full by the server application (END_STREAM seen).
    pub bodies_complete: std::collections::BTreeSet<u32>,
    /// Streams whose response the client received in full.
    pub responses: std::collections::BTreeSet<u32>,
    pub refused: Vec<u32>,
    pub goaways: Vec<(u32, u32)>,
    /// Every frame the client read.
    pub read_frames: Vec<Out>,
    /// The server application's WindowsGrown events: (connection window, stream window).
    pub grown: Vec<(u32, u32)>,
    windows: (u32, u32),
    next_id: u32,
}

impl Client {
    /// Takes over an established harness; replays what the server wrote during the handshake.
    pub fn new(h: Harness) -> Client {
        let mut c = Client {
            h,
            input: Vec::new(),
            conn_window: 65_535,
            initial_window: 65_535,
            open: Default::default(),
            buffered: Default::default(),
            bodies_complete: Default::default(),
            responses: Default::default(),
            refused: Vec::new(),
            goaways: Vec::new(),
            read_frames: Vec::new(),
            grown: Vec::new(),
            windows: (0, 0),
            next_id: 1,
        };
        c.windows = (c.h.conn.scheduler().connection_window(), c.h.conn.scheduler().stream_window());
        let written = c.h.written.clone();
        c.read(&written);
        // The handshake already acknowledged the server's SETTINGS.
        c.input.clear();
        c
    }

    /// A client that has written its preface and SETTINGS but read nothing yet.
    pub fn fresh(cfg: h2flow_core::Config) -> Client {
        let mut c = Client::new(Harness::new(cfg));
        c.input = [PREFACE.to_vec(), settings(&[])].concat();
        c
    }

    pub fn open_post(&mut self, content_length: Option<usize>) -> u32 {
        let id = self.next_id;
        self.next_id += 2;
        self.input.extend(post(id, content_length));
        self.open.insert(id, Upload { left: content_length, window: self.initial_window });
        id
    }

    /// Some stream has body bytes to send and no window for any of them.
    pub fn blocked(&self) -> bool {
        let wants: Vec<&Upload> = self.open.values().filter(|u| u.left != Some(0)).collect();
        !wants.is_empty() && wants.iter().all(|u| u.window.min(self.conn_window) <= 0)
    }

    /// Sends up to `budget` body bytes, one frame of at most 16 KiB per stream per turn, within
    /// the windows; `padded` adds 10 octets of padding to each frame. Returns the bytes sent.
    pub fn send_some(&mut self, budget: usize, padded: bool) -> usize {
        let mut left = budget;
        loop {
            let before = left;
            let ids: Vec<u32> = self.open.keys().copied().collect();
            for id in ids {
                let u = self.open[&id].clone();
                let room = u.window.min(self.conn_window).max(0) as usize;
                let pad = if padded { 10usize.min(room) } else { 0 };
                let mut n = (room - pad).min(left).min(16_000);
                if let Some(l) = u.left {
                    n = n.min(l);
                }
                let end = u.left == Some(n);
                if n == 0 && !end {
                    continue;
                }
                let payload = vec![1u8; n];
                if pad > 0 {
                    self.input.extend(padded_data(id, &payload, pad as u8 - 1, end));
                } else {
                    self.input.extend(data(id, &payload, end));
                }
                self.conn_window -= (n + pad) as i64;
                left -= n;
                if end {
                    self.open.remove(&id);
                } else {
                    let e = self.open.get_mut(&id).unwrap();
                    e.left = u.left.map(|l| l - n);
                    e.window -= (n + pad) as i64;
                }
            }
            if left == 0 || left == before {
                return budget - left;
            }
        }
    }

    /// The server application consumes `n` bytes of a stream.
    pub fn consume(&mut self, id: u32, n: usize) {
        if n == 0 {
            return;
        }
        self.h.conn.consume(id, n as u64).unwrap();
        let b = self.buffered.get_mut(&id).unwrap();
        *b -= n;
        if *b == 0 {
            self.buffered.remove(&id);
        }
    }

    /// The server application consumes everything it was handed.
    pub fn consume_all(&mut self) {
        let all: Vec<(u32, usize)> = self.buffered.iter().map(|(&id, &n)| (id, n)).collect();
        for (id, n) in all {
            self.consume(id, n);
        }
    }

    /// The server reads bytes the client wrote; the application gets the events.
    pub fn server_recv(&mut self, input: &[u8]) {
        if input.is_empty() {
            return;
        }
        let ev = self.h.recv(input).unwrap_or_else(|e| panic!("connection error: {e}"));
        for e in ev {
            match e {
                Ev::Data { stream_id, data, end_stream } => {
                    if !data.is_empty() {
                        *self.buffered.entry(stream_id).or_default() += data.len();
                    }
                    if end_stream {
                        self.bodies_complete.insert(stream_id);
                    }
                }
                Ev::Trailers { stream_id, .. } => {
                    self.bodies_complete.insert(stream_id);
                }
                Ev::StreamReset { stream_id, .. } | Ev::StreamError { stream_id, .. } => {
                    self.buffered.remove(&stream_id);
                }
                _ => {}
            }
        }
        let conn = &self.h.conn;
        // Adaptive growth shows as new windows after the PING acknowledgement that caused it.
        let windows = (conn.scheduler().connection_window(), conn.scheduler().stream_window());
        if windows != self.windows {
            self.windows = windows;
            self.grown.push(windows);
        }
        assert!(
            conn.buffered() <= conn.scheduler().connection_window() as u64,
            "buffered {} > connection window {}",
            conn.buffered(),
            conn.scheduler().connection_window()
        );
    }

    /// Lockstep: the server reads everything the client wrote.
    pub fn deliver(&mut self) {
        let input = std::mem::take(&mut self.input);
        self.server_recv(&input);
    }

    /// Lockstep: the server flushes, time passes, and the client reads what it wrote.
    pub fn round_trip(&mut self, rtt: Duration) {
        let out = self.h.flush();
        self.h.advance(rtt);
        self.read(&out);
    }

    /// The client reads frames the server wrote and reacts like a client would.
    pub fn read(&mut self, out: &[Out]) {
        for f in out {
            self.read_frames.push(f.clone());
            match f {
                Out::Settings { ack: false, params } => {
                    for &(id, v) in params {
                        if id == setting::INITIAL_WINDOW_SIZE {
                            let delta = v as i64 - self.initial_window;
                            self.initial_window = v as i64;
                            for s in self.open.values_mut() {
                                s.window += delta;
                            }
                        }
                    }
                    self.input.extend(settings_ack());
                }
                Out::WindowUpdate { stream_id: 0, increment } => self.conn_window += *increment as i64,
                Out::WindowUpdate { stream_id, increment } => {
                    if let Some(s) = self.open.get_mut(stream_id) {
                        s.window += *increment as i64;
                    }
                }
                Out::Ping { ack: false, data } => self.input.extend(ping_ack(*data)),
                Out::RstStream { stream_id, code } => {
                    if *code == h2flow_core::ErrorCode::REFUSED_STREAM.0 {
                        self.refused.push(*stream_id);
                    }
                    self.open.remove(stream_id);
                }
                Out::Headers { stream_id, end_stream: true, .. }
                | Out::Data { stream_id, end_stream: true, .. } => {
                    self.responses.insert(*stream_id);
                }
                Out::GoAway { last_stream_id, code, .. } => self.goaways.push((*last_stream_id, *code)),
                _ => {}
            }
        }
    }

    pub fn window_updates_read(&self) -> (usize, usize) {
        let wu = window_updates(&self.read_frames);
        (wu.iter().filter(|w| w.0 == 0).count(), wu.iter().filter(|w| w.0 != 0).count())
    }
}

/// A network between the client and the engine: each direction delays bytes by `one_way`; the
/// client may put `rate` body bytes on the wire per step. Time advances in steps.
pub struct Sim {
    pub c: Client,
    pub one_way: Duration,
    pub step: Duration,
    pub rate: usize,
    to_server: std::collections::VecDeque<(Instant, Vec<u8>)>,
    to_client: std::collections::VecDeque<(Instant, Vec<Out>)>,
    /// Steps in a row the client was blocked by flow control; the longest such run.
    pub blocked_run: usize,
    pub longest_blocked_run: usize,
    pub steps: usize,
}

impl Sim {
    pub fn new(c: Client, one_way: Duration, step: Duration, rate: usize) -> Sim {
        Sim {
            c,
            one_way,
            step,
            rate,
            to_server: Default::default(),
            to_client: Default::default(),
            blocked_run: 0,
            longest_blocked_run: 0,
            steps: 0,
        }
    }

    /// One step: the client reads what arrived and writes (control frames first, then DATA);
    /// the server reads what arrived, the application runs `app`, the server flushes.
    pub fn step(&mut self, mut app: impl FnMut(&mut Client)) {
        let now = self.c.h.now;
        while self.to_client.front().is_some_and(|(t, _)| *t <= now) {
            let (_, out) = self.to_client.pop_front().unwrap();
            self.c.read(&out);
        }
        // Blocked: body bytes to send and no window for any of them, so nothing went out.
        let sent = self.c.send_some(self.rate, false);
        if sent == 0 && self.c.blocked() {
            self.blocked_run += 1;
            self.longest_blocked_run = self.longest_blocked_run.max(self.blocked_run);
        } else {
            self.blocked_run = 0;
        }
        let written = std::mem::take(&mut self.c.input);
        if !written.is_empty() {
            self.to_server.push_back((now + self.one_way, written));
        }
        while self.to_server.front().is_some_and(|(t, _)| *t <= now) {
            let (_, bytes) = self.to_server.pop_front().unwrap();
            self.c.server_recv(&bytes);
        }
        app(&mut self.c);
        let out = self.c.h.flush();
        if !out.is_empty() {
            self.to_client.push_back((now + self.one_way, out));
        }
        self.c.h.advance(self.step);
        self.steps += 1;
    }

    /// Steps in one round trip.
    pub fn rtt_steps(&self) -> usize {
        (2 * self.one_way.as_nanos() / self.step.as_nanos()) as usize
    }
}
