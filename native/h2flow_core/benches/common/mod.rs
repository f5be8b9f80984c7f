//! The client side of the benchmarks: frames built with the codec's encoder, and header blocks
//! from a small browser-like HPACK encoder that is independent of the decoder being measured
//! (static and dynamic table references, literals with incremental indexing, optional Huffman).
//! Every bench checks its input once against the code under test before timing it, so a broken
//! input fails loudly instead of measuring an error path.

// Each bench uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::Instant;

use h2flow_core::frame::{self, Frame, Settings};
use h2flow_core::{Config, Connection, Event};

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the Elixir connection process hands the NIF per call at most (its `:read_buffer`).
pub const READ_CHUNK: usize = 64 * 1024;

/// The header fields of a browser's navigation request (Chromium 131 on Linux, trimmed).
pub fn browser_request(path: &str) -> Vec<(String, String)> {
    let fields: [(&str, &str); 18] = [
        (":method", "GET"),
        (":authority", "localhost:8443"),
        (":scheme", "https"),
        (":path", path),
        ("sec-ch-ua", "\"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\""),
        ("sec-ch-ua-mobile", "?0"),
        ("sec-ch-ua-platform", "\"Linux\""),
        ("upgrade-insecure-requests", "1"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/131.0.0.0 Safari/537.36",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,\
             image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
        ),
        ("sec-fetch-site", "same-origin"),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-user", "?1"),
        ("sec-fetch-dest", "document"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("accept-language", "en-US,en;q=0.9,de;q=0.8"),
        ("cookie", "session=4f2a9c1e7b3d48a0b6e5c2d1f0a9b8c7; theme=dark; consent=1"),
        ("priority", "u=0, i"),
    ];
    fields.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

/// The header fields h2load sends (nghttp2 1.52), plus a content-length for a body.
pub fn h2load_request(method: &str, path: &str, content_length: Option<usize>) -> Vec<(String, String)> {
    let mut fields = vec![
        (":method".to_string(), method.to_string()),
        (":path".to_string(), path.to_string()),
        (":scheme".to_string(), "http".to_string()),
        (":authority".to_string(), "127.0.0.1:8080".to_string()),
        ("accept".to_string(), "*/*".to_string()),
        ("accept-encoding".to_string(), "gzip, deflate".to_string()),
        ("user-agent".to_string(), "h2load nghttp2/1.52.0".to_string()),
    ];
    if let Some(n) = content_length {
        fields.push(("content-length".to_string(), n.to_string()));
    }
    fields
}

/// RFC 7541 Appendix A.
#[rustfmt::skip]
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
    (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
    (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""),
    ("accept", ""), ("access-control-allow-origin", ""), ("age", ""), ("allow", ""),
    ("authorization", ""), ("cache-control", ""), ("content-disposition", ""),
    ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
    ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
    ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""),
    ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""),
    ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""),
    ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
    ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
];

/// Code lengths of the HPACK Huffman code by symbol (RFC 7541 Appendix B). The code is
/// canonical, so the lengths define it.
#[rustfmt::skip]
const HUFFMAN_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    30,
];

/// (code, length) per symbol, from the canonical assignment: codes of one length are
/// consecutive in symbol order, each length starting where the previous ended, shifted left.
fn huffman_codes() -> Vec<(u32, u8)> {
    let mut order: Vec<usize> = (0..257).collect();
    order.sort_by_key(|&s| (HUFFMAN_LENGTHS[s], s));
    let mut codes = vec![(0u32, 0u8); 257];
    let (mut code, mut len) = (0u32, HUFFMAN_LENGTHS[order[0]]);
    for (i, &s) in order.iter().enumerate() {
        let l = HUFFMAN_LENGTHS[s];
        if i > 0 {
            code = (code + 1) << (l - len);
        }
        len = l;
        codes[s] = (code, l);
    }
    codes
}

/// A request-side HPACK encoder that behaves like a browser's: an exact match in the static or
/// dynamic table becomes an index; anything else a literal with incremental indexing (with an
/// indexed name when the name is known), added to a 4,096-octet dynamic table.
pub struct ClientEncoder {
    huffman: Option<Vec<(u32, u8)>>,
    /// Newest first: dynamic index 62 is the front.
    table: VecDeque<(String, String)>,
    size: usize,
}

impl ClientEncoder {
    pub fn new(huffman: bool) -> ClientEncoder {
        ClientEncoder { huffman: huffman.then(huffman_codes), table: VecDeque::new(), size: 0 }
    }

    pub fn encode(&mut self, fields: &[(String, String)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in fields {
            if let Some(index) = self.find(|n, v| n == name && v == value) {
                put_int(&mut out, 0x80, 7, index);
                continue;
            }
            let name_index = self.find(|n, _| n == name).unwrap_or(0);
            put_int(&mut out, 0x40, 6, name_index);
            if name_index == 0 {
                self.put_string(&mut out, name.as_bytes());
            }
            self.put_string(&mut out, value.as_bytes());
            self.insert(name, value);
        }
        out
    }

    fn find(&self, matches: impl Fn(&str, &str) -> bool) -> Option<usize> {
        let statics = STATIC_TABLE.iter().map(|&(n, v)| (n, v));
        let dynamics = self.table.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        statics.chain(dynamics).position(|(n, v)| matches(n, v)).map(|i| i + 1)
    }

    fn insert(&mut self, name: &str, value: &str) {
        self.table.push_front((name.to_string(), value.to_string()));
        self.size += name.len() + value.len() + 32;
        while self.size > 4096 {
            let Some((n, v)) = self.table.pop_back() else { break };
            self.size -= n.len() + v.len() + 32;
        }
    }

    fn put_string(&self, out: &mut Vec<u8>, s: &[u8]) {
        let Some(codes) = &self.huffman else {
            put_int(out, 0x00, 7, s.len());
            out.extend_from_slice(s);
            return;
        };
        let mut bits = Vec::new();
        let (mut acc, mut n) = (0u64, 0u32);
        for &b in s {
            let (code, len) = codes[b as usize];
            acc = acc << len | code as u64;
            n += len as u32;
            while n >= 8 {
                n -= 8;
                bits.push((acc >> n) as u8);
            }
        }
        if n > 0 {
            // Padding: the most significant bits of EOS, all ones (RFC 7541 5.2).
            bits.push((acc << (8 - n)) as u8 | (0xff >> n));
        }
        put_int(out, 0x80, 7, bits.len());
        out.extend_from_slice(&bits);
    }
}

/// An integer with an N-bit prefix (RFC 7541 5.1).
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

pub fn headers(out: &mut Vec<u8>, stream_id: u32, block: &[u8], end_stream: bool) {
    frame::encode_header_block(stream_id, block, end_stream, frame::DEFAULT_MAX_FRAME_SIZE, out);
}

pub fn data(out: &mut Vec<u8>, stream_id: u32, payload: &[u8], end_stream: bool) {
    Frame::Data(frame::Data { stream_id, end_stream, data: payload, pad_len: None }).encode(out);
}

pub fn window_update(out: &mut Vec<u8>, stream_id: u32, increment: u32) {
    Frame::WindowUpdate(frame::WindowUpdate { stream_id, increment }).encode(out);
}

pub fn ping(out: &mut Vec<u8>, data: [u8; 8]) {
    Frame::Ping(frame::Ping { ack: false, data }).encode(out);
}

/// The client's side of the handshake: preface, empty SETTINGS, and the ACK of the server's
/// SETTINGS (sent early: the server's SETTINGS are queued before any input).
pub fn client_handshake() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    Settings::encode_params(&[], &mut out);
    Settings::encode_ack(&mut out);
    out
}

/// A connection after the handshake, its output so far flushed away.
pub fn open_connection(cfg: Config) -> Connection {
    let now = Instant::now();
    let mut conn = Connection::new(cfg, now).expect("valid config");
    conn.recv(&client_handshake(), now).expect("handshake accepted");
    assert!(conn.take_events().is_empty());
    let _ = conn.flush(now);
    conn
}

/// What a server does with the events of one `recv`: counts body bytes and hands them back as
/// consumed at once. Returns the DATA bytes seen.
pub fn consume_all(conn: &mut Connection, input: &[u8], events: &mut Vec<Event>) -> u64 {
    events.extend(conn.drain_events());
    let mut bytes = 0;
    for event in events.drain(..) {
        if let Event::Data { stream_id, data, .. } = event {
            let body = std::hint::black_box(data.resolve(input));
            bytes += body.len() as u64;
            conn.consume(stream_id, body.len() as u64).expect("consumed what was received");
        }
    }
    bytes
}

/// Cuts `input` into chunks of `size` bytes, as socket reads would (frames straddle chunks).
pub fn chunks(input: &[u8], size: usize) -> Vec<&[u8]> {
    input.chunks(size).collect()
}
