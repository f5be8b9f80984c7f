//! Encode → decode is the identity on valid frames of every type, frame by frame and when many
//! frames arrive split at arbitrary points; `encode_header_block` splits a field block at the
//! peer's max frame size (RFC 9113 §4.3, §6.10).

mod common_frame;

use common_frame::{encode, gen_frame, Pool, Rng};
use h2flow_core::frame::{
    decode, encode_header_block, flags, frame_len, kind, Continuation, Frame, Head, Headers, HEADER_LEN,
    MAX_MAX_FRAME_SIZE,
};

const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// The variant of a frame, with the optional fields that change its layout, so the tests can
/// check the generator reached every layout.
fn shape(frame: &Frame<'_>) -> &'static str {
    match frame {
        Frame::Data(d) if d.pad_len.is_some() => "data padded",
        Frame::Data(_) => "data",
        Frame::Headers(h) => match (h.pad_len.is_some(), h.priority.is_some()) {
            (true, true) => "headers padded priority",
            (true, false) => "headers padded",
            (false, true) => "headers priority",
            (false, false) => "headers",
        },
        Frame::Priority(_) => "priority",
        Frame::RstStream(_) => "rst_stream",
        Frame::Settings(s) if s.ack => "settings ack",
        Frame::Settings(_) => "settings",
        Frame::PushPromise(p) if p.pad_len.is_some() => "push_promise padded",
        Frame::PushPromise(_) => "push_promise",
        Frame::Ping(_) => "ping",
        Frame::GoAway(_) => "goaway",
        Frame::WindowUpdate(_) => "window_update",
        Frame::Continuation(_) => "continuation",
        Frame::Unknown(_) => "unknown",
    }
}

#[test]
fn random_frames_round_trip() {
    let mut rng = Rng::new(SEED);
    let pool = Pool::new(&mut rng);
    let mut shapes = std::collections::BTreeMap::new();
    for i in 0..50_000 {
        let frame = gen_frame(&mut rng, &pool);
        let bytes = encode(&frame);
        let head = Head::parse(&bytes).unwrap();
        assert_eq!(head.length as usize, bytes.len() - HEADER_LEN, "frame {i}: length field");
        assert_eq!(head.kind, frame.kind(), "frame {i}: type");
        assert_eq!(head.stream_id, frame.stream_id(), "frame {i}: stream id");
        assert_eq!(bytes[5] & 0x80, 0, "frame {i}: reserved bit sent");

        let decoded = decode(&bytes, MAX_MAX_FRAME_SIZE);
        assert_eq!(decoded, Ok(Some((frame.clone(), bytes.len()))), "frame {i}: {bytes:02x?}");
        if let Frame::Data(d) = &frame {
            assert_eq!(d.flow_len() as usize, bytes.len() - HEADER_LEN);
        }
        *shapes.entry(shape(&frame)).or_insert(0) += 1;
    }
    assert_eq!(shapes.len(), 17, "{shapes:?}");
    assert!(shapes.values().all(|&n| n > 500), "{shapes:?}");
}

/// Several hundred encoded frames back to back, and the frames themselves.
fn frame_stream<'a>(rng: &mut Rng, pool: &'a Pool, count: usize) -> (Vec<u8>, Vec<(Frame<'a>, usize)>) {
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    for _ in 0..count {
        let frame = gen_frame(rng, pool);
        let before = buf.len();
        frame.encode(&mut buf);
        frames.push((frame, buf.len() - before));
    }
    (buf, frames)
}

/// Feeds `chunks` to a decoder that keeps what it could not decode yet, as a connection would,
/// and checks that exactly `expected` comes out, each frame as soon as its last byte arrives.
fn feed<'c>(chunks: impl Iterator<Item = &'c [u8]>, expected: &[(Frame<'_>, usize)]) {
    let mut pending: Vec<u8> = Vec::new();
    let mut next = 0;
    for chunk in chunks {
        pending.extend_from_slice(chunk);
        loop {
            match decode(&pending, MAX_MAX_FRAME_SIZE) {
                Ok(Some((frame, len))) => {
                    let (want, want_len) = &expected[next];
                    assert_eq!((&frame, len), (want, *want_len), "frame {next}");
                    next += 1;
                    pending.drain(..len);
                }
                Ok(None) => {
                    // Incomplete means a strict prefix of the next frame, never a whole one.
                    if let Some((_, want_len)) = expected.get(next) {
                        assert!(pending.len() < *want_len, "frame {next} complete but not decoded");
                    }
                    break;
                }
                Err(e) => panic!("frame {next}: {e}"),
            }
        }
    }
    assert_eq!(next, expected.len(), "frames decoded");
    assert!(pending.is_empty(), "{} bytes left over", pending.len());
}

#[test]
fn incremental_decoding_one_byte_at_a_time() {
    let mut rng = Rng::new(SEED ^ 1);
    let pool = Pool::new(&mut rng);
    let (buf, frames) = frame_stream(&mut rng, &pool, 2_000);
    feed(buf.chunks(1), &frames);
}

#[test]
fn incremental_decoding_split_at_every_byte_boundary() {
    let mut rng = Rng::new(SEED ^ 2);
    let pool = Pool::new(&mut rng);
    let (buf, frames) = frame_stream(&mut rng, &pool, 120);
    for split in 0..=buf.len() {
        let (a, b) = buf.split_at(split);
        feed([a, b].into_iter(), &frames);
    }
}

#[test]
fn incremental_decoding_random_chunks() {
    let mut rng = Rng::new(SEED ^ 3);
    let pool = Pool::new(&mut rng);
    for _ in 0..50 {
        let (buf, frames) = frame_stream(&mut rng, &pool, 300);
        let mut chunks = Vec::new();
        let mut rest = &buf[..];
        while !rest.is_empty() {
            let max = [3, 20, 300, 5000][rng.below(4)];
            let (chunk, tail) = rest.split_at(rng.below(max).min(rest.len()));
            chunks.push(chunk);
            rest = tail;
        }
        feed(chunks.into_iter(), &frames);
    }
}

#[test]
fn decode_never_reads_past_a_frame() {
    let mut rng = Rng::new(SEED ^ 4);
    let pool = Pool::new(&mut rng);
    for _ in 0..2_000 {
        let frame = gen_frame(&mut rng, &pool);
        let bytes = encode(&frame);
        for end in 0..bytes.len() {
            assert_eq!(decode(&bytes[..end], MAX_MAX_FRAME_SIZE), Ok(None), "{end} of {}", bytes.len());
        }
        assert_eq!(frame_len(&bytes[..HEADER_LEN]), Some(bytes.len()));
        // Followed by anything, even an invalid frame, the frame decodes alone and whole.
        let mut followed = bytes.clone();
        followed.extend_from_slice(&[0xff, 0xff, 0xff, 0x6, 0, 0, 0, 0, 1, 0xff]);
        let (again, len) = decode(&followed, MAX_MAX_FRAME_SIZE).unwrap().unwrap();
        assert_eq!((again, len), (frame, bytes.len()));
    }
}

/// Decodes the output of `encode_header_block` and checks the frame sequence; returns the
/// reassembled block.
fn check_header_block(out: &[u8], stream_id: u32, end_stream: bool, max: u32) -> Vec<u8> {
    let mut rest = out;
    let mut block = Vec::new();
    let mut index = 0;
    let mut saw_end_headers = false;
    while !rest.is_empty() {
        assert!(!saw_end_headers, "frames after END_HEADERS");
        let head = Head::parse(rest).unwrap();
        assert!(head.length <= max, "frame {index} of {} bytes exceeds {max}", head.length);
        let (frame, len) = decode(rest, max).unwrap().unwrap();
        assert_eq!(frame.stream_id(), stream_id);
        match (index, frame) {
            (0, Frame::Headers(Headers { end_stream: es, end_headers, priority, fragment, pad_len, .. })) => {
                assert_eq!(es, end_stream, "END_STREAM belongs on the HEADERS frame");
                assert_eq!((priority, pad_len), (None, None));
                saw_end_headers = end_headers;
                block.extend_from_slice(fragment);
            }
            (1.., Frame::Continuation(Continuation { end_headers, fragment, .. })) => {
                // §6.10 defines no END_STREAM on CONTINUATION: the flag bit must be clear.
                assert_eq!(head.flags & flags::END_STREAM, 0);
                assert!(!fragment.is_empty(), "empty CONTINUATION frame {index}");
                saw_end_headers = end_headers;
                block.extend_from_slice(fragment);
            }
            (_, other) => panic!("frame {index}: unexpected {:?}", kind::name(other.kind())),
        }
        // All but the last frame are full: no more frames than needed.
        if !saw_end_headers {
            assert_eq!(head.length, max, "frame {index} not full before END_HEADERS");
        }
        rest = &rest[len..];
        index += 1;
    }
    assert!(saw_end_headers, "no END_HEADERS on the last frame");
    block
}

#[test]
fn encode_header_block_splits_at_max_frame_size() {
    let mut rng = Rng::new(SEED ^ 5);
    let pool = Pool::new(&mut rng);
    for _ in 0..3_000 {
        let max = match rng.below(4) {
            0 => rng.range_u32(1, 16) as usize,
            1 => rng.range_u32(17, 600) as usize,
            2 => 16_384,
            _ => rng.range_u32(16_384, 40_000) as usize,
        };
        let len = match rng.below(4) {
            0 => rng.below(3 * max + 2),
            1 => max * rng.below(4),
            2 => (max * rng.below(4) + 1).saturating_sub(2),
            _ => rng.below(4),
        };
        let block = &pool.bytes[..len.min(pool.bytes.len())];
        let stream_id = common_frame::stream_id(&mut rng, 1);
        let end_stream = rng.bool();

        let mut out = vec![0xee; 3];
        encode_header_block(stream_id, block, end_stream, max as u32, &mut out);
        assert_eq!(out[..3], [0xee; 3], "encode_header_block must append");
        let frames = block.len().div_ceil(max).max(1);
        assert_eq!(out.len() - 3, block.len() + frames * HEADER_LEN, "len {} max {max}", block.len());
        assert_eq!(check_header_block(&out[3..], stream_id, end_stream, max as u32), block);
    }
}

#[test]
fn encode_header_block_empty_block_is_one_headers_frame() {
    let mut out = Vec::new();
    encode_header_block(1, &[], true, 16_384, &mut out);
    assert_eq!(out, [0, 0, 0, kind::HEADERS, flags::END_STREAM | flags::END_HEADERS, 0, 0, 0, 1]);
}

#[test]
fn encode_header_block_exact_multiple() {
    let mut out = Vec::new();
    encode_header_block(3, &[1, 2, 3, 4], false, 2, &mut out);
    #[rustfmt::skip]
    assert_eq!(out, [
        0, 0, 2, kind::HEADERS, 0, 0, 0, 0, 3, 1, 2,
        0, 0, 2, kind::CONTINUATION, flags::END_HEADERS, 0, 0, 0, 3, 3, 4,
    ]);
}

#[test]
fn encode_header_block_limit_above_frame_length_field() {
    // A max frame size beyond what 24 bits can carry must still give valid frames (§4.1), not
    // a panic or a wrapped length field.
    let block = vec![0x5a; MAX_MAX_FRAME_SIZE as usize + 10];
    let mut out = Vec::new();
    encode_header_block(5, &block, false, u32::MAX, &mut out);
    assert_eq!(out.len(), block.len() + 2 * HEADER_LEN);
    assert_eq!(check_header_block(&out, 5, false, MAX_MAX_FRAME_SIZE), block);
}
