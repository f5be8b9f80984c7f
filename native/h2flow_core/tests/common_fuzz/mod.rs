//! Inputs for the engine soaks (tests/fuzz_soak.rs, tests/fuzz_soak_client.rs): generators of
//! valid client byte streams and of valid server byte streams, mutators that break them the ways
//! buggy peers, attackers and bad splitting do, and the HPACK pieces the generators need (a
//! Huffman encoder, integers). Frames are written by hand, not with the codec under test.
#![allow(dead_code)]

mod generate;
mod model;
mod mutate;
mod server_gen;

#[allow(unused_imports)]
pub use generate::{generate, Scenario};
pub use model::{Output, Shadow};
pub use mutate::mutate;
#[allow(unused_imports)]
pub use server_gen::{generate_responses, Plan};

use h2flow_core::frame::kind;
use h2flow_core::Config;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const MAX_WINDOW: i64 = (1 << 31) - 1;

/// splitmix64: small, fast, and every case replays from its seed.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Uniform in lo..=hi.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Small counts, most often 1: 1 + the number of failed coin flips at `percent`.
    pub fn geometric(&mut self, percent: u64, max: u64) -> u64 {
        let mut n = 1;
        while n < max && self.chance(percent) {
            n += 1;
        }
        n
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// The seed of case `index` of a soak.
pub fn case_seed(seed: u64, index: u64) -> u64 {
    let mut r = Rng::new(seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F));
    r.next_u64()
}

/// H2FLOW_FUZZ_SEED (hex, or "random"), else `default`.
pub fn env_seed(default: u64) -> u64 {
    match std::env::var("H2FLOW_FUZZ_SEED").as_deref() {
        Err(_) | Ok("") => default,
        Ok("random") => {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            t.as_nanos() as u64 ^ std::process::id() as u64
        }
        Ok(s) => {
            let s = s.trim_start_matches("0x");
            u64::from_str_radix(s, 16).unwrap_or_else(|_| panic!("H2FLOW_FUZZ_SEED={s}: hex or \"random\""))
        }
    }
}

/// H2FLOW_FUZZ_SECS, else `default`.
pub fn env_secs(default: f64) -> f64 {
    std::env::var("H2FLOW_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// The length of the first frame of `buf`, if its header is there.
pub fn frame_boundary(buf: &[u8]) -> Option<usize> {
    h2flow_core::frame::frame_len(buf).map(|n| n.max(1))
}

/// The byte at `offset` of the request body of stream `id`, so the receiver can check every
/// payload byte it is handed.
pub fn body_byte(id: u32, offset: u64) -> u8 {
    ((id as u64 * 31 + offset) % 251) as u8
}

// ---------------------------------------------------------------------------------------------
// Frames, written by hand (RFC 9113 4.1).

pub fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn settings_frame(params: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in params {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(kind::SETTINGS, 0, 0, &p)
}

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

// ---------------------------------------------------------------------------------------------
// HPACK pieces (RFC 7541 5.1, 5.2, Appendix B).

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

/// Reads an integer with an N-bit prefix; `None` if it runs past the end.
fn get_int(buf: &[u8], prefix: u8) -> Option<(usize, usize)> {
    let max = (1usize << prefix) - 1;
    let first = *buf.first()? as usize & max;
    if first < max {
        return Some((first, 1));
    }
    let mut value = max;
    for (i, &b) in buf.iter().enumerate().skip(1).take(5) {
        value += ((b & 0x7f) as usize) << (7 * (i - 1));
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Code lengths of the HPACK Huffman code by symbol, 256 being EOS (RFC 7541 Appendix B).
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

/// The canonical Huffman codes, (code, length) by symbol: codes of one length are consecutive
/// in symbol order, and each length starts where the previous ended, shifted left.
fn huffman_codes() -> Vec<(u32, u8)> {
    let mut codes = vec![(0u32, 0u8); 257];
    let mut code = 0u32;
    for len in 1..=30u8 {
        for (sym, &l) in HUFFMAN_LENGTHS.iter().enumerate() {
            if l == len {
                codes[sym] = (code, len);
                code += 1;
            }
        }
        code <<= 1;
    }
    codes
}

/// Huffman-encodes `s`, padded with the most significant bits of EOS (ones).
pub fn huffman_encode(s: &[u8]) -> Vec<u8> {
    thread_local!(static CODES: Vec<(u32, u8)> = huffman_codes());
    CODES.with(|codes| {
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u64, 0u32);
        for &c in s {
            let (code, len) = codes[c as usize];
            acc = acc << len | code as u64;
            bits += len as u32;
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            out.push((acc << (8 - bits)) as u8 | (0xff >> bits));
        }
        out
    })
}

/// Rewrites some string literals of a header block as Huffman-coded ones (same fields, so the
/// peer's dynamic table is unchanged). The block is one this module's encoder wrote.
pub fn huffmanize(block: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.len());
    let mut pos = 0;
    let copy_int = |out: &mut Vec<u8>, pos: &mut usize, prefix: u8| -> Option<usize> {
        let (v, n) = get_int(&block[*pos..], prefix)?;
        out.extend_from_slice(&block[*pos..*pos + n]);
        *pos += n;
        Some(v)
    };
    let string = |out: &mut Vec<u8>, pos: &mut usize, rng: &mut Rng| -> Option<()> {
        let huffman = block.get(*pos)? & 0x80 != 0;
        let (len, n) = get_int(&block[*pos..], 7)?;
        let s = block.get(*pos + n..*pos + n + len)?;
        if !huffman && rng.chance(60) {
            let coded = huffman_encode(s);
            put_int(out, 0x80, 7, coded.len());
            out.extend_from_slice(&coded);
        } else {
            out.extend_from_slice(&block[*pos..*pos + n + len]);
        }
        *pos += n + len;
        Some(())
    };
    while pos < block.len() {
        let b = block[pos];
        let ok = if b & 0x80 != 0 {
            copy_int(&mut out, &mut pos, 7).map(|_| ())
        } else if b & 0xe0 == 0x20 {
            copy_int(&mut out, &mut pos, 5).map(|_| ())
        } else {
            let prefix = if b & 0xc0 == 0x40 { 6 } else { 4 };
            copy_int(&mut out, &mut pos, prefix).and_then(|index| {
                if index == 0 {
                    string(&mut out, &mut pos, rng)?;
                }
                string(&mut out, &mut pos, rng)
            })
        };
        if ok.is_none() {
            // Not a block we wrote: leave it alone.
            return block.to_vec();
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Server configurations.

/// A random configuration; `valid` keeps the limits a well-behaved client never reaches out of
/// the way, so that a valid stream must go through without any error.
pub fn random_config(rng: &mut Rng, valid: bool) -> Config {
    let mut c = Config::default();
    if rng.chance(20) {
        return c;
    }
    c.max_concurrent_streams = rng.pick(&[1, 2, 3, 8, 100]);
    c.max_frame_size = rng.pick(&[16_384, 16_384, 16_385, 65_536, 1 << 20]);
    c.header_table_size = rng.pick(&[0, 1, 64, 256, 4096, 4096, 65_536]);
    let w = &mut c.window;
    w.initial_stream_window = rng.pick(&[0, 1, 100, 1000, 16_384, 65_535, 65_536, 262_144, 1 << 20]);
    w.initial_connection_window = rng.pick(&[65_535, 100_000, 1 << 20, 16 << 20]);
    w.update_threshold_percent = rng.pick(&[1, 10, 50, 50, 90, 100]);
    w.adaptive = rng.chance(60);
    w.max_stream_window = w.initial_stream_window.max(rng.pick(&[0, 1 << 20, 8 << 20, MAX_WINDOW as u32]));
    w.max_connection_window =
        w.initial_connection_window.max(rng.pick(&[0, 1 << 20, 16 << 20, MAX_WINDOW as u32]));
    c.max_send_queue = rng.pick(&[1, 100, 16_384, 65_536]);
    c.max_connection_send_queue = rng.pick(&[1, 1000, 100_000, 1 << 20]);
    if valid {
        return c;
    }
    // Frames on a stream closed so long ago that it is forgotten are errors (RFC 9113 5.1).
    c.closed_stream_memory = rng.pick(&[0, 4, 1024]);
    c.send_stall_timeout = std::time::Duration::from_millis(rng.pick(&[50, 5_000, 30_000]));
    // Each limit is tight now and then only: a tight one ends most cases at once.
    let tight = |rng: &mut Rng, default: u32, values: &[u32]| {
        if rng.chance(12) {
            rng.pick(values)
        } else {
            default
        }
    };
    c.max_header_list_size = tight(rng, c.max_header_list_size, &[1, 100, 1024]);
    c.max_continuation_frames = tight(rng, c.max_continuation_frames, &[0, 1, 3]);
    c.max_header_block_size = tight(rng, c.max_header_block_size, &[1, 100, 4096]);
    c.max_queued_acks = tight(rng, c.max_queued_acks, &[1, 3]);
    c.max_settings_entries = tight(rng, c.max_settings_entries, &[1, 4]);
    let rate = |rng: &mut Rng, d: h2flow_core::Rate| {
        if rng.chance(12) {
            h2flow_core::Rate { burst: rng.pick(&[1, 2, 5]), per_second: rng.pick(&[0, 1, 100]) }
        } else {
            d
        }
    };
    c.peer_resets = rate(rng, c.peer_resets);
    c.empty_frames = rate(rng, c.empty_frames);
    c.refused_streams = rate(rng, c.refused_streams);
    c.local_resets = rate(rng, c.local_resets);
    c.settings_timeout = std::time::Duration::from_millis(rng.pick(&[1, 500, 10_000, 10_000]));
    c
}
