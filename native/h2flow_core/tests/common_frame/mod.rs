//! Shared helpers of the frame codec tests: a seeded PRNG, a frame builder that does not use the
//! encoder under test, and a generator of random valid frames.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use h2flow_core::frame::{
    setting, Continuation, Data, Frame, GoAway, Headers, Ping, Priority, PriorityFrame, PushPromise,
    RstStream, Settings, Unknown, WindowUpdate, MAX_STREAM_ID, MAX_WINDOW_SIZE,
};
use h2flow_core::ErrorCode;

/// xorshift64* (Vigna 2014): small, deterministic, good enough to pick test inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // The all-zero state is a fixed point of xorshift.
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    pub fn u8(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }

    /// A number in `0..n`; `n` must not be 0.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A number in `lo..=hi`.
    pub fn range_u32(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next_u64() % (u64::from(hi - lo) + 1)) as u32
    }

    pub fn bool(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    pub fn fill(&mut self, dst: &mut [u8]) {
        for b in dst {
            *b = self.u8();
        }
    }
}

/// A frame built byte by byte from its fields (RFC 9113 §4.1), independently of the encoder.
/// `stream_id` is written as given, reserved bit included.
pub fn raw(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = raw_head(payload.len() as u32, kind, flags, stream_id).to_vec();
    out.extend_from_slice(payload);
    out
}

/// A 9-byte frame header with an arbitrary length field.
pub fn raw_head(length: u32, kind: u8, flags: u8, stream_id: u32) -> [u8; 9] {
    [
        (length >> 16) as u8,
        (length >> 8) as u8,
        length as u8,
        kind,
        flags,
        (stream_id >> 24) as u8,
        (stream_id >> 16) as u8,
        (stream_id >> 8) as u8,
        stream_id as u8,
    ]
}

/// Every error the codec returns names the code's section of the RFC it enforces.
pub fn assert_cites_rfc(message: &str) {
    assert!(message.contains("RFC"), "error message does not cite the RFC: {message:?}");
}

/// Bytes that generated frames borrow their payloads from.
pub struct Pool {
    /// Random bytes for DATA payloads, header block fragments, debug data, unknown payloads.
    pub bytes: Vec<u8>,
    /// Valid SETTINGS parameters, 6 octets each, so any aligned slice is a valid payload.
    pub settings: Vec<u8>,
}

impl Pool {
    pub fn new(rng: &mut Rng) -> Pool {
        let mut bytes = vec![0; 1 << 16];
        rng.fill(&mut bytes);
        let mut settings = Vec::new();
        for _ in 0..1024 {
            let (id, value) = valid_setting(rng);
            settings.extend_from_slice(&id.to_be_bytes());
            settings.extend_from_slice(&value.to_be_bytes());
        }
        Pool { bytes, settings }
    }

    /// A slice of random bytes of length `0..=max`.
    pub fn slice(&self, rng: &mut Rng, max: usize) -> &[u8] {
        let len = rng.below(max + 1);
        let off = rng.below(self.bytes.len() - len + 1);
        &self.bytes[off..off + len]
    }
}

/// A SETTINGS parameter with a value the codec must accept (§6.5.2), known identifiers or not.
pub fn valid_setting(rng: &mut Rng) -> (u16, u32) {
    let id = match rng.below(12) {
        0..=9 => rng.below(10) as u16,
        _ => rng.u32() as u16,
    };
    let value = match id {
        setting::ENABLE_PUSH | setting::ENABLE_CONNECT_PROTOCOL | setting::NO_RFC7540_PRIORITIES => {
            rng.range_u32(0, 1)
        }
        setting::INITIAL_WINDOW_SIZE => rng.range_u32(0, MAX_WINDOW_SIZE),
        setting::MAX_FRAME_SIZE => rng.range_u32(1 << 14, (1 << 24) - 1),
        _ => rng.u32(),
    };
    (id, value)
}

/// A stream identifier in `lo..=2^31-1`, mostly small, sometimes at the top of the range.
pub fn stream_id(rng: &mut Rng, lo: u32) -> u32 {
    match rng.below(4) {
        0 => rng.range_u32(lo, MAX_STREAM_ID),
        1 => MAX_STREAM_ID - rng.range_u32(0, 3).min(MAX_STREAM_ID - lo),
        _ => rng.range_u32(lo, lo + 20),
    }
}

fn pad_len(rng: &mut Rng) -> Option<u8> {
    match rng.below(4) {
        0 => Some(rng.u8()),
        1 => Some(rng.range_u32(0, 3) as u8),
        _ => None,
    }
}

fn priority(rng: &mut Rng) -> Priority {
    Priority { exclusive: rng.bool(), dependency: stream_id(rng, 0), weight: rng.u8() }
}

/// Fragment, DATA and debug payload sizes: mostly short, now and then a few kilobytes.
fn payload_max(rng: &mut Rng) -> usize {
    if rng.chance(1, 50) {
        8000
    } else {
        64
    }
}

/// A random frame that the codec must decode back to itself: every field in its valid range,
/// reserved bits clear, SETTINGS values valid, unknown types from 10 up.
pub fn gen_frame<'a>(rng: &mut Rng, pool: &'a Pool) -> Frame<'a> {
    let max = payload_max(rng);
    match rng.below(11) {
        0 => Frame::Data(Data {
            stream_id: stream_id(rng, 1),
            end_stream: rng.bool(),
            data: pool.slice(rng, max),
            pad_len: pad_len(rng),
        }),
        1 => Frame::Headers(Headers {
            stream_id: stream_id(rng, 1),
            end_stream: rng.bool(),
            end_headers: rng.bool(),
            priority: rng.bool().then(|| priority(rng)),
            fragment: pool.slice(rng, max),
            pad_len: pad_len(rng),
        }),
        2 => Frame::Priority(PriorityFrame { stream_id: stream_id(rng, 1), priority: priority(rng) }),
        3 => Frame::RstStream(RstStream {
            stream_id: stream_id(rng, 1),
            error_code: ErrorCode(if rng.bool() { rng.range_u32(0, 13) } else { rng.u32() }),
        }),
        4 => {
            let ack = rng.chance(1, 4);
            let raw = if ack {
                &[][..]
            } else {
                let n = rng.below(8);
                let off = rng.below(pool.settings.len() / 6 - n) * 6;
                &pool.settings[off..off + n * 6]
            };
            Frame::Settings(Settings { ack, raw })
        }
        5 => Frame::PushPromise(PushPromise {
            stream_id: stream_id(rng, 1),
            promised_stream_id: stream_id(rng, 0),
            end_headers: rng.bool(),
            fragment: pool.slice(rng, max),
            pad_len: pad_len(rng),
        }),
        6 => {
            let mut data = [0; 8];
            rng.fill(&mut data);
            Frame::Ping(Ping { ack: rng.bool(), data })
        }
        7 => Frame::GoAway(GoAway {
            last_stream_id: stream_id(rng, 0),
            error_code: ErrorCode(rng.u32()),
            debug_data: pool.slice(rng, max),
        }),
        8 => Frame::WindowUpdate(WindowUpdate {
            stream_id: stream_id(rng, 0),
            // Some one-octet increments, which a single changed byte turns into an invalid 0.
            increment: match rng.below(3) {
                0 => rng.range_u32(1, 255),
                1 => rng.range_u32(1, 100_000),
                _ => rng.range_u32(1, MAX_WINDOW_SIZE),
            },
        }),
        9 => Frame::Continuation(Continuation {
            stream_id: stream_id(rng, 1),
            end_headers: rng.bool(),
            fragment: pool.slice(rng, max),
        }),
        _ => Frame::Unknown(Unknown {
            kind: rng.range_u32(10, 255) as u8,
            flags: rng.u8(),
            stream_id: stream_id(rng, 0),
            payload: pool.slice(rng, max),
        }),
    }
}

/// Encodes one frame into a fresh buffer.
pub fn encode(frame: &Frame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode(&mut out);
    out
}
