//! Denial-of-service defences: each trips with its exact GOAWAY (or response) and counter, and
//! each lets an honest peer's bursts through.

mod common_engine;
use std::time::Duration;

use common_engine::*;
use h2flow_core::frame::setting;
use h2flow_core::ErrorCode;

const ENHANCE_YOUR_CALM: u32 = ErrorCode::ENHANCE_YOUR_CALM.0;

fn trips(h: &mut Harness, input: &[u8]) -> Vec<Out> {
    let (code, out) = h.expect_connection_error(input);
    assert_eq!(code, ENHANCE_YOUR_CALM, "{out:?}");
    assert_eq!(h.conn.stats().defences.total(), 1, "{:?}", h.conn.stats().defences);
    out
}

// --- Rapid Reset (CVE-2023-44487) ---------------------------------------------------------------

#[test]
fn rapid_reset_beyond_the_bucket_is_goaway_enhance_your_calm() {
    let cfg = default_config();
    let burst = cfg.peer_resets.burst;
    let mut h = Harness::established(cfg);
    let mut input = Vec::new();
    for i in 0..burst {
        input.extend(post(2 * i + 1, None));
        input.extend(rst_stream(2 * i + 1, ErrorCode::CANCEL.0));
    }
    let (ev, r) = h.feed(&input);
    r.unwrap();
    assert_eq!(ev.len(), 2 * burst as usize);
    assert_eq!(h.conn.stats().streams_reset_by_peer, burst as u64);
    let last = 2 * burst + 1;
    let out = trips(&mut h, &concat(&[post(last, None), rst_stream(last, ErrorCode::CANCEL.0)]));
    assert_eq!(goaways(&out), vec![(last, ENHANCE_YOUR_CALM)]);
    assert_eq!(h.conn.stats().defences.rapid_reset, 1);
}

#[test]
fn bursts_of_a_few_hundred_cancels_spread_over_time_do_not_trip_rapid_reset() {
    let mut h = Harness::established(default_config());
    let mut id = 1;
    // 400 cancelled requests a second for 20 seconds: 8,000 resets, a browser navigating hard.
    for _ in 0..20 {
        let mut input = Vec::new();
        for _ in 0..400 {
            input.extend(get(id));
            input.extend(rst_stream(id, ErrorCode::CANCEL.0));
            id += 2;
        }
        h.recv(&input).unwrap();
        assert!(goaways(&h.flush()).is_empty());
        h.advance(Duration::from_secs(1));
    }
    assert_eq!(h.conn.stats().streams_reset_by_peer, 8000);
    assert_eq!(h.conn.stats().defences.total(), 0);
    let ev = h.recv(&get(id)).unwrap();
    assert_eq!(ev.len(), 1);
}

// --- CONTINUATION flood (CVE-2024-27316 family) ------------------------------------------------

#[test]
fn continuation_flood_too_many_frames_is_goaway_enhance_your_calm() {
    let cfg = default_config();
    let max = cfg.max_continuation_frames;
    let block = literal_block(&request_fields("GET", "/"));
    // The most CONTINUATION frames allowed: fine.
    let mut h = Harness::established(cfg.clone());
    let mut input = headers_frame(1, &block[..1], true, false);
    for i in 0..max {
        let end = i == max - 1;
        let piece = if end { &block[i as usize + 1..] } else { &block[i as usize + 1..i as usize + 2] };
        input.extend(continuation(1, piece, end));
    }
    let ev = h.recv(&input).unwrap();
    assert_eq!(ev.len(), 1, "{ev:?}");

    // One more: too many.
    let mut h = Harness::established(cfg);
    let mut input = headers_frame(1, &block[..1], true, false);
    for i in 0..max {
        input.extend(continuation(1, &block[i as usize + 1..i as usize + 2], false));
    }
    h.recv(&input).unwrap();
    trips(&mut h, &continuation(1, &block[max as usize + 1..], true));
    assert_eq!(h.conn.stats().defences.continuation_flood, 1);
}

#[test]
fn continuation_flood_too_many_bytes_is_goaway_enhance_your_calm() {
    let mut cfg = default_config();
    cfg.max_header_block_size = 40_000;
    let mut h = Harness::established(cfg);
    let filler = vec![0x80 | 2; 16_000]; // indexed ":method GET", 16,000 times over
    let mut input = headers_frame(1, &filler, true, false);
    input.extend(continuation(1, &filler, false));
    h.recv(&input).unwrap();
    trips(&mut h, &continuation(1, &filler[..8_001], true));
    assert_eq!(h.conn.stats().defences.continuation_flood, 1);
}

// --- PING / SETTINGS flood (CVE-2019-9512, CVE-2019-9515) ---------------------------------------

#[test]
fn ack_flood_more_pings_than_max_queued_acks_before_a_flush_is_enhance_your_calm() {
    let cfg = default_config();
    let max = cfg.max_queued_acks;
    let mut h = Harness::established(cfg);
    let pings: Vec<u8> = (0..max).flat_map(|i| ping([i as u8; 8])).collect();
    h.recv(&pings).unwrap();
    trips(&mut h, &ping([0xff; 8]));
    assert_eq!(h.conn.stats().defences.ack_flood, 1);

    // SETTINGS count as acknowledgements owed too.
    let mut h = Harness::established(default_config());
    let mut input: Vec<u8> = (0..max - 1).flat_map(|i| ping([i as u8; 8])).collect();
    input.extend(settings(&[]));
    input.extend(settings(&[]));
    trips(&mut h, &input);
}

#[test]
fn ack_flood_queues_exactly_max_queued_acks_acknowledgements_then_the_goaway() {
    // What a client that does not read finds in its socket: the limit's worth of ACKs and the
    // GOAWAY, not one ACK more.
    let cfg = default_config();
    let max = cfg.max_queued_acks as usize;
    let mut h = Harness::established(cfg);
    let pings: Vec<u8> = (0..max + 500).flat_map(|i| ping([i as u8; 8])).collect();
    let out = trips(&mut h, &pings);
    let acks = out.iter().filter(|f| matches!(f, Out::Ping { ack: true, .. })).count();
    assert_eq!(acks, max);
    assert!(matches!(out.last(), Some(Out::GoAway { .. })), "{:?}", out.last());

    let mut h = Harness::established(default_config());
    let floods: Vec<u8> = (0..max + 500).flat_map(|_| settings(&[])).collect();
    let out = trips(&mut h, &floods);
    let acks = out.iter().filter(|f| matches!(f, Out::Settings { ack: true, .. })).count();
    assert_eq!(acks, max);
}

// --- Counters of the errors we answered ---------------------------------------------------------

#[test]
fn connection_and_stream_errors_are_counted_by_code() {
    let code = |c: ErrorCode| c.0 as usize;
    let mut h = Harness::established(default_config());
    // A malformed request (empty field name, CVE-2019-9516): RST_STREAM PROTOCOL_ERROR.
    let mut fields = request_fields("GET", "/");
    fields.push(("", "x"));
    h.recv(&headers(1, &fields, true)).unwrap();
    assert_eq!(resets(&h.flush()), vec![(1, ErrorCode::PROTOCOL_ERROR.0)]);
    // A stream window pushed past 2^31-1: RST_STREAM FLOW_CONTROL_ERROR.
    h.recv(&post(3, None)).unwrap();
    h.recv(&window_update(3, 0x7fff_ffff)).unwrap();
    assert_eq!(resets(&h.flush()), vec![(3, ErrorCode::FLOW_CONTROL_ERROR.0)]);
    let s = h.conn.stats();
    assert_eq!(s.stream_errors[code(ErrorCode::PROTOCOL_ERROR)], 1);
    assert_eq!(s.stream_errors[code(ErrorCode::FLOW_CONTROL_ERROR)], 1);
    assert_eq!(s.stream_errors.iter().sum::<u64>(), 2);
    assert_eq!(s.connection_errors.iter().sum::<u64>(), 0);
    // A reset the application asks for is not a stream error.
    h.recv(&post(5, None)).unwrap();
    h.conn.reset_stream(5, ErrorCode::CANCEL).unwrap();
    assert_eq!(h.conn.stats().stream_errors.iter().sum::<u64>(), 2);
    // A WINDOW_UPDATE of 0 on the connection: GOAWAY PROTOCOL_ERROR, counted once.
    let (c, _) = h.expect_connection_error(&window_update(0, 0));
    assert_eq!(c, ErrorCode::PROTOCOL_ERROR.0);
    let s = h.conn.stats();
    assert_eq!(s.connection_errors[code(ErrorCode::PROTOCOL_ERROR)], 1);
    assert_eq!(s.connection_errors.iter().sum::<u64>(), 1);

    // A defence's GOAWAY is a connection error too, counted under its code.
    let mut h = Harness::established(default_config());
    let pings: Vec<u8> = (0..1001).flat_map(|i| ping([i as u8; 8])).collect();
    trips(&mut h, &pings);
    assert_eq!(h.conn.stats().connection_errors[code(ErrorCode::ENHANCE_YOUR_CALM)], 1);
}

#[test]
fn the_same_number_of_pings_spread_over_flushes_is_fine() {
    let cfg = default_config();
    let max = cfg.max_queued_acks;
    let mut h = Harness::established(cfg);
    for round in 0..5u8 {
        let pings: Vec<u8> = (0..max).flat_map(|i| ping([round, i as u8, 0, 0, 0, 0, 0, 0])).collect();
        h.recv(&pings).unwrap();
        let out = h.flush();
        assert_eq!(out.len(), max as usize);
        assert!(out.iter().all(|f| matches!(f, Out::Ping { ack: true, .. })));
    }
    assert_eq!(h.conn.stats().defences.total(), 0);
}

#[test]
fn settings_with_more_than_32_entries_is_enhance_your_calm() {
    let params: Vec<(u16, u32)> = (0..32).map(|i| (setting::MAX_CONCURRENT_STREAMS, 100 + i)).collect();
    let mut h = Harness::established(default_config());
    h.recv(&settings(&params)).unwrap();
    assert_eq!(h.flush(), vec![Out::Settings { ack: true, params: vec![] }]);
    let mut more = params.clone();
    more.push((0x99, 0));
    trips(&mut h, &settings(&more));
    assert_eq!(h.conn.stats().defences.settings_flood, 1);
}

// --- Empty frames (CVE-2019-9518) --------------------------------------------------------------

#[test]
fn empty_data_frames_without_end_stream_beyond_the_bucket_are_enhance_your_calm() {
    let cfg = default_config();
    let burst = cfg.empty_frames.burst;
    let mut h = Harness::established(cfg);
    h.recv(&post(1, None)).unwrap();
    let empties: Vec<u8> = (0..burst).flat_map(|_| data(1, b"", false)).collect();
    let ev = h.recv(&empties).unwrap();
    assert!(ev.is_empty(), "empty frames are not events");
    trips(&mut h, &data(1, b"", false));
    assert_eq!(h.conn.stats().defences.empty_frames, 1);
}

#[test]
fn empty_data_frames_at_a_modest_rate_and_empty_end_stream_are_fine() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, None)).unwrap();
    for _ in 0..60 {
        let empties: Vec<u8> = (0..5).flat_map(|_| data(1, b"", false)).collect();
        h.recv(&empties).unwrap();
        h.advance(Duration::from_secs(1));
    }
    // An empty DATA frame that ends the stream is how a body ends; many streams may do it.
    for i in 0..300 {
        h.recv(&concat(&[post(3 + 2 * i, None), data(3 + 2 * i, b"", true)])).unwrap();
        h.conn.send_headers(3 + 2 * i, &[(b":status", b"204")], true).unwrap();
    }
    assert_eq!(h.conn.stats().defences.total(), 0);
    assert!(!h.conn.is_closed());
}

// --- HPACK bomb (CVE-2016-6581) -----------------------------------------------------------------

#[test]
fn hpack_bomb_is_answered_431_and_the_decoder_stays_in_sync() {
    let mut h = Harness::established(default_config());
    let value = "b".repeat(4000);
    // Literal with incremental indexing, new name (RFC 7541 6.2.1): dynamic table entry 62.
    let mut block = literal_block(&request_fields("GET", "/bomb"));
    block.push(0x40);
    put_int(&mut block, 0, 7, 6);
    block.extend_from_slice(b"x-bomb");
    put_int(&mut block, 0, 7, value.len());
    block.extend_from_slice(value.as_bytes());
    // Then the entry, referenced 40,000 times: 160 MB of header list from 44 KB.
    block.extend(std::iter::repeat_n(0x80 | 62, 40_000));
    let mut input = Vec::new();
    h2flow_core::frame::encode_header_block(1, &block, true, 16_384, &mut input);
    let ev = h.recv(&input).unwrap();
    assert!(ev.is_empty(), "the application never sees the request: {ev:?}");
    let out = h.flush();
    let mut dec = ResponseDecoder::new();
    let blocks = dec.decode(&out);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].0, 1);
    assert_eq!(blocks[0].1, vec![(":status".to_string(), "431".to_string())]);
    assert!(matches!(out[0], Out::Headers { end_stream: true, .. }));
    assert_eq!(h.conn.stats().defences.header_list_too_large, 1);
    assert_eq!(h.conn.open_streams(), 0);

    // The next request refers to the entry the bomb inserted: the decoder kept it.
    let mut block = literal_block(&request_fields("GET", "/after"));
    block.push(0x80 | 62);
    let ev = h.recv(&headers_frame(3, &block, true, true)).unwrap();
    match &ev[..] {
        [Ev::Headers { stream_id: 3, fields, .. }] => assert_eq!(fields[4], ("x-bomb".to_string(), value)),
        other => panic!("{other:?}"),
    }
    assert!(!h.conn.is_closed());
}

#[test]
fn hpack_bomb_with_a_body_to_come_is_answered_431_and_reset() {
    let mut h = Harness::established(default_config());
    let mut block = literal_block(&request_fields("POST", "/bomb"));
    block.push(0x40);
    put_int(&mut block, 0, 7, 1);
    block.push(b'x');
    put_int(&mut block, 0, 7, 3000);
    block.extend(std::iter::repeat_n(b'y', 3000));
    block.extend(std::iter::repeat_n(0x80 | 62, 30));
    h.recv(&headers_frame(1, &block, false, true)).unwrap();
    // The body that was already on its way is ignored.
    let ev = h.recv(&data(1, b"ignored", true)).unwrap();
    assert!(ev.is_empty());
    let out = h.flush();
    assert_eq!(resets(&out), vec![(1, ErrorCode::NO_ERROR.0)]);
    assert!(matches!(out[0], Out::Headers { stream_id: 1, end_stream: true, .. }));
    assert!(goaways(&out).is_empty());
}

// --- Reset flood (CVE-2019-9514) ----------------------------------------------------------------

#[test]
fn peer_errors_that_make_us_reset_beyond_the_bucket_are_enhance_your_calm() {
    let cfg = default_config();
    let burst = cfg.local_resets.burst;
    let mut h = Harness::established(cfg);
    // DATA after END_STREAM: a stream error we answer with RST_STREAM.
    let error = |id: u32| concat(&[get(id), data(id, b"x", false)]);
    let input: Vec<u8> = (0..burst).flat_map(|i| error(2 * i + 1)).collect();
    h.recv(&input).unwrap();
    assert_eq!(resets(&h.flush()).len(), burst as usize);
    let out = trips(&mut h, &error(2 * burst + 1));
    assert!(resets(&out).is_empty());
    assert_eq!(h.conn.stats().defences.reset_flood, 1);
}

#[test]
fn stream_errors_at_a_modest_rate_are_answered_without_tripping() {
    let mut h = Harness::established(default_config());
    let mut id = 1;
    for _ in 0..30 {
        for _ in 0..40 {
            // DATA after END_STREAM: STREAM_CLOSED.
            h.recv(&concat(&[get(id), data(id, b"x", false)])).unwrap();
            id += 2;
        }
        assert_eq!(resets(&h.flush()).len(), 40);
        h.advance(Duration::from_secs(1));
    }
    assert_eq!(h.conn.stats().defences.total(), 0);
}

#[test]
fn streams_over_the_limit_before_the_settings_ack_are_refused_then_bounded() {
    let mut cfg = default_config();
    cfg.max_concurrent_streams = 1;
    let mut h = Harness::unacked(cfg);
    // Stream 1 is accepted and stays open; everything after it is over the limit.
    let mut input = headers(1, &request_fields("GET", "/"), false);
    for i in 1..=1000u32 {
        input.extend(headers(2 * i + 1, &request_fields("GET", "/"), true));
    }
    h.recv(&input).unwrap();
    let out = h.flush();
    let refused = out.iter().filter(|f| matches!(f, Out::RstStream { code: 7, .. })).count();
    assert_eq!(refused, 1000, "an honest burst before the ACK is refused stream by stream");
    assert!(!out.iter().any(|f| matches!(f, Out::GoAway { .. })));
    // Past the allowance and the bucket: a GOAWAY that lets stream 1 finish.
    let mut input = Vec::new();
    for i in 1001..=1200u32 {
        input.extend(headers(2 * i + 1, &request_fields("GET", "/"), true));
    }
    h.recv(&input).unwrap();
    let out = h.flush();
    assert!(
        out.contains(&Out::GoAway {
            last_stream_id: 1,
            code: 0xb,
            debug: "too many streams over the advertised limit".into()
        }),
        "{out:?}"
    );
    assert!(h.conn.stats().defences.refused_stream_flood > 0);
    assert_eq!(h.conn.stream_state(1), Some(h2flow_core::stream::State::Open));
}

/// Found by the soak (tests/fuzz_soak.rs): a DATA frame that broke content-length stayed counted
/// as buffered, never handed over, when its stream error tripped the reset flood defence.
#[test]
fn the_stream_error_that_trips_the_reset_flood_defence_still_settles_its_stream() {
    let mut cfg = default_config();
    cfg.local_resets = h2flow_core::Rate { burst: 1, per_second: 0 };
    let mut h = Harness::established(cfg);
    // The one stream error the bucket allows.
    h.recv(&concat(&[post(1, Some(3)), data(1, b"1234", false)])).unwrap();
    assert_eq!(resets(&h.flush()), vec![(1, ErrorCode::PROTOCOL_ERROR.0)]);
    let ev = h.recv(&concat(&[post(3, Some(3)), data(3, b"12", false)])).unwrap();
    assert_eq!(ev.last(), Some(&Ev::Data { stream_id: 3, data: b"12".to_vec(), end_stream: false }));
    // Past content-length: the frame is counted against the windows, never handed over.
    let (ev, r) = h.feed(&data(3, b"34", false));
    assert_eq!(r.unwrap_err().code().0, ENHANCE_YOUR_CALM);
    assert_eq!(ev, vec![Ev::StreamError { stream_id: 3, code: ErrorCode::PROTOCOL_ERROR.0 }]);
    // Told the stream is gone, the application holds nothing of it, and nothing is buffered.
    assert_eq!(h.conn.buffered(), 0);
    let out = h.flush();
    assert_eq!(goaways(&out), vec![(3, ENHANCE_YOUR_CALM)]);
    assert!(resets(&out).is_empty(), "{out:?}");
}
