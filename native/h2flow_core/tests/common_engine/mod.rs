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
    Frame::RstStream(frame::RstStream { stream_id, error_code: h2flow_core::ErrorCode(code) }).encode(&mut out);
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
    Headers { stream_id: u32, end_stream: bool, block: Vec<u8> },
    Continuation { stream_id: u32, end_headers: bool },
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
            Frame::Headers(h) => Out::Headers { stream_id: h.stream_id, end_stream: h.end_stream, block: h.fragment.to_vec() },
            Frame::Continuation(c) => Out::Continuation { stream_id: c.stream_id, end_headers: c.end_headers },
            Frame::Data(d) => Out::Data { stream_id: d.stream_id, len: d.data.len(), end_stream: d.end_stream },
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
}

impl Harness {
    pub fn new(cfg: Config) -> Harness {
        let now = Instant::now();
        Harness { conn: Connection::new(cfg, now).expect("config"), now, written: Vec::new(), flushes_with_output: 0 }
    }

    /// A connection past the preface: client SETTINGS sent, server SETTINGS acknowledged.
    pub fn established(cfg: Config) -> Harness {
        let mut h = Harness::new(cfg);
        let mut input = PREFACE.to_vec();
        input.extend(settings(&[]));
        input.extend(settings_ack());
        h.recv(&input).expect("handshake");
        h.flush();
        h
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
        let bytes = self.conn.flush(self.now);
        if !bytes.is_empty() {
            self.flushes_with_output += 1;
        }
        let frames = parse_output(&bytes);
        self.written.extend(frames.iter().cloned());
        frames
    }

    pub fn window_updates_written(&self) -> (usize, usize) {
        let conn = self.written.iter().filter(|f| matches!(f, Out::WindowUpdate { stream_id: 0, .. })).count();
        let stream = self.written.iter().filter(|f| matches!(f, Out::WindowUpdate { stream_id, .. } if *stream_id != 0)).count();
        (conn, stream)
    }
}

/// An event with its payload resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Headers { stream_id: u32, fields: Vec<(String, String)>, end_stream: bool },
    Data { stream_id: u32, data: Vec<u8>, end_stream: bool },
    Trailers { stream_id: u32, fields: Vec<(String, String)> },
    StreamReset { stream_id: u32, code: u32 },
    StreamError { stream_id: u32, code: u32 },
    GoAway { last_stream_id: u32, code: u32 },
    SendWindowOpen { stream_id: u32 },
}

impl Ev {
    fn from(e: Event, input: &[u8]) -> Ev {
        let strings = |l: &h2flow_core::hpack::HeaderList| {
            l.iter()
                .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), String::from_utf8_lossy(v).into_owned()))
                .collect()
        };
        match e {
            Event::Headers { stream_id, fields, end_stream } => Ev::Headers { stream_id, fields: strings(&fields), end_stream },
            Event::Data { stream_id, data, end_stream } => {
                Ev::Data { stream_id, data: data.resolve(input).to_vec(), end_stream }
            }
            Event::Trailers { stream_id, fields } => Ev::Trailers { stream_id, fields: strings(&fields) },
            Event::StreamReset { stream_id, code } => Ev::StreamReset { stream_id, code: code.0 },
            Event::StreamError { stream_id, code, .. } => Ev::StreamError { stream_id, code: code.0 },
            Event::GoAway { last_stream_id, code, .. } => Ev::GoAway { last_stream_id, code: code.0 },
            Event::SendWindowOpen { stream_id } => Ev::SendWindowOpen { stream_id },
        }
    }
}

pub fn default_config() -> Config {
    Config::default()
}

pub const INITIAL_WINDOW_SIZE: u16 = setting::INITIAL_WINDOW_SIZE;
