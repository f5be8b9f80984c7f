//! Arbitrary bytes never make the codec panic, and whatever it accepts is consistent: decoded
//! frames re-encode to frames of the same length that decode to the same value, errors cite the
//! RFC, and a stream error can be skipped. Inputs lean toward plausible frame headers so that
//! decoding gets past the header checks into every frame type.

mod common_frame;

use std::collections::BTreeMap;

use common_frame::{assert_cites_rfc, encode, gen_frame, raw_head, Pool, Rng};
use h2flow_core::frame::{
    decode, frame_len, kind, Frame, Head, DEFAULT_MAX_FRAME_SIZE, HEADER_LEN, MAX_MAX_FRAME_SIZE,
};
use h2flow_core::{Error, ErrorCode};

const SEED: u64 = 0x0123_4567_89ab_cdef;

/// What the decoder produced over a whole test, to prove the inputs reached every path.
#[derive(Default)]
struct Stats {
    frames: BTreeMap<&'static str, usize>,
    /// Keyed by (connection scope, error code).
    errors: BTreeMap<(bool, u32), usize>,
}

impl Stats {
    fn frame(&mut self, frame: &Frame<'_>) {
        *self.frames.entry(kind::name(frame.kind())).or_insert(0) += 1;
    }

    fn error(&mut self, err: &Error) {
        *self.errors.entry((err.is_connection_error(), err.code().0)).or_insert(0) += 1;
    }

    fn assert_deep(&self, min_frames: usize) {
        assert_eq!(self.frames.len(), 11, "{:?}", self.frames);
        assert!(self.frames.values().all(|&n| n >= min_frames), "{:?}", self.frames);
        for code in [ErrorCode::PROTOCOL_ERROR, ErrorCode::FRAME_SIZE_ERROR, ErrorCode::FLOW_CONTROL_ERROR] {
            assert!(self.errors.contains_key(&(true, code.0)), "no connection {code}: {:?}", self.errors);
        }
        for code in [ErrorCode::PROTOCOL_ERROR, ErrorCode::FRAME_SIZE_ERROR] {
            assert!(self.errors.contains_key(&(false, code.0)), "no stream {code}: {:?}", self.errors);
        }
    }
}

/// Decodes `buf` as a connection would: frame after frame, skipping a frame after a stream
/// error, stopping at a connection error or an incomplete frame. Checks every result.
fn decode_stream(buf: &[u8], max: u32, stats: &mut Stats) {
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        match decode(rest, max) {
            Ok(Some((frame, len))) => {
                assert!(len <= rest.len());
                assert_eq!(frame_len(rest), Some(len));
                assert!(len - HEADER_LEN <= max as usize);
                // The bytes after the frame played no part.
                assert_eq!(decode(&rest[..len], max), Ok(Some((frame.clone(), len))));
                // Re-encoding drops undefined flags, reserved bits and padding contents, but
                // keeps the length and gives back the same value.
                let again = encode(&frame);
                assert_eq!(again.len(), len, "{frame:?}");
                assert_eq!(decode(&again, max), Ok(Some((frame.clone(), len))));
                if let Frame::Data(d) = &frame {
                    assert_eq!(d.flow_len() as usize, len - HEADER_LEN);
                }
                stats.frame(&frame);
                pos += len;
            }
            Ok(None) => {
                // Incomplete: no header yet, or a header whose frame is not all there.
                if let Some(need) = frame_len(rest) {
                    assert!(rest.len() < need, "whole frame reported incomplete");
                }
                return;
            }
            Err(err) => {
                assert_cites_rfc(err.message());
                stats.error(&err);
                let Error::Stream { stream_id, .. } = err else { return };
                // A stream error comes only with the whole frame, on the frame's own stream.
                let head = Head::parse(rest).expect("stream error without a header");
                assert_eq!(stream_id, head.stream_id);
                assert_ne!(stream_id, 0);
                let len = frame_len(rest).unwrap();
                assert!(len <= rest.len(), "stream error before the frame was complete");
                pos += len;
            }
        }
    }
}

/// A payload length that is right, or nearly right, for the type more often than not.
fn plausible_length(rng: &mut Rng, kind: u8) -> u32 {
    let typical = match kind {
        kind::PRIORITY => 5,
        kind::RST_STREAM | kind::WINDOW_UPDATE => 4,
        kind::SETTINGS => 6 * rng.range_u32(0, 4),
        kind::PING | kind::GOAWAY => 8,
        kind::PUSH_PROMISE => 4 + rng.range_u32(0, 8),
        _ => rng.range_u32(0, 12),
    };
    match rng.below(8) {
        0..=3 => typical,
        4 => (typical + rng.range_u32(0, 2)).saturating_sub(1),
        5 => rng.range_u32(0, 40),
        6 => rng.range_u32(0, 200),
        _ => rng.u32() & 0x00ff_ffff,
    }
}

/// A payload for a plausible header: small first octets (pad lengths), SETTINGS-like entries.
fn plausible_payload(rng: &mut Rng, kind: u8, len: usize, out: &mut Vec<u8>) {
    let start = out.len();
    if kind == kind::SETTINGS && rng.bool() {
        while out.len() < start + len {
            let id = rng.range_u32(0, 10) as u16;
            let value: u32 = match rng.below(6) {
                0 => rng.range_u32(0, 2),
                1 => (1 << 14) - 1 + rng.range_u32(0, 2),
                2 => (1 << 24) - 1 + rng.range_u32(0, 2),
                3 => (1 << 31) - 1 + rng.range_u32(0, 2),
                _ => rng.u32(),
            };
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&value.to_be_bytes());
        }
        out.truncate(start + len);
        return;
    }
    for i in 0..len {
        let byte = match (i, rng.below(4)) {
            (0, 0..=1) => rng.range_u32(0, 8) as u8,
            (0..=3, 2) => 0,
            _ => rng.u8(),
        };
        out.push(byte);
    }
}

/// A random input of 0..200 bytes: pieces that are mostly plausible frames, some garbage.
fn random_input(rng: &mut Rng, out: &mut Vec<u8>) {
    out.clear();
    let total = rng.below(200);
    while out.len() < total {
        if rng.chance(1, 5) {
            for _ in 0..rng.range_u32(1, 20) {
                out.push(rng.u8());
            }
            continue;
        }
        let kind = rng.range_u32(0, 12) as u8;
        let length = plausible_length(rng, kind);
        let flags = match rng.below(3) {
            0 => rng.u8(),
            1 => [0x1, 0x4, 0x8, 0x20].iter().filter(|_| rng.bool()).fold(0, |f, b| f | b),
            _ => 0,
        };
        let stream_id = match rng.below(5) {
            0 => 0,
            1 => rng.range_u32(1, 3),
            2 => 0x8000_0000 | rng.range_u32(0, 3),
            3 => rng.u32(),
            _ => 1,
        };
        out.extend_from_slice(&raw_head(length, kind, flags, stream_id));
        // Usually cut to the input size; the last frame may then be incomplete.
        let room = total.saturating_sub(out.len()) + rng.below(3);
        plausible_payload(rng, kind, (length as usize).min(room), out);
    }
    out.truncate(total);
}

fn random_max_frame_size(rng: &mut Rng) -> u32 {
    match rng.below(8) {
        0 => rng.range_u32(0, 40),
        1 => MAX_MAX_FRAME_SIZE,
        _ => DEFAULT_MAX_FRAME_SIZE,
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(SEED);
    let mut stats = Stats::default();
    let mut input = Vec::with_capacity(256);
    for _ in 0..500_000 {
        random_input(&mut rng, &mut input);
        let max = random_max_frame_size(&mut rng);
        decode_stream(&input, max, &mut stats);
    }
    stats.assert_deep(1_000);
}

#[test]
fn uniform_random_bytes_never_panic() {
    // No bias at all: almost every 24-bit length is above 2^14, so nearly all inputs with a
    // whole header must be rejected from that header alone, whatever follows it.
    let mut rng = Rng::new(SEED ^ 1);
    let mut stats = Stats::default();
    let mut input = [0; 200];
    for _ in 0..100_000 {
        let len = rng.below(input.len() + 1);
        rng.fill(&mut input[..len]);
        decode_stream(&input[..len], DEFAULT_MAX_FRAME_SIZE, &mut stats);
    }
    let oversize = stats.errors.get(&(true, ErrorCode::FRAME_SIZE_ERROR.0)).copied().unwrap_or(0);
    assert!(oversize > 90_000, "{:?}", stats.errors);
}

/// One random change to a valid encoding.
fn mutate(rng: &mut Rng, buf: &mut Vec<u8>) {
    if buf.is_empty() {
        buf.push(rng.u8());
        return;
    }
    let at = rng.below(buf.len());
    match rng.below(6) {
        0 => buf[at] ^= 1 << rng.below(8),
        1 => buf[at] = rng.u8(),
        2 => buf.truncate(at),
        3 => buf.insert(at, rng.u8()),
        4 => {
            buf.remove(at);
        }
        // The header fields, where a change moves the decoder onto another path.
        _ => {
            let field = rng.below(HEADER_LEN.min(buf.len()));
            buf[field] = match rng.below(3) {
                0 => buf[field].wrapping_add(1),
                1 => buf[field].wrapping_sub(1),
                _ => rng.u8(),
            };
        }
    }
}

#[test]
fn mutated_frames_never_panic() {
    let mut rng = Rng::new(SEED ^ 2);
    let pool = Pool::new(&mut rng);
    let mut stats = Stats::default();
    let mut buf = Vec::new();
    for _ in 0..200_000 {
        buf.clear();
        for _ in 0..rng.range_u32(1, 3) {
            gen_frame(&mut rng, &pool).encode(&mut buf);
        }
        for _ in 0..rng.range_u32(1, 3) {
            mutate(&mut rng, &mut buf);
        }
        decode_stream(&buf, MAX_MAX_FRAME_SIZE, &mut stats);
    }
    stats.assert_deep(1_000);
}
