//! The send side: DATA cut to the peer's frame size and windows, round-robin release, queue
//! accounting and back-pressure, trailers, stalls, WINDOW_UPDATE validation (RFC 9113 §6.9),
//! sends to streams that are gone and caller misuse.

mod common_engine;
use common_engine::*;
use h2flow_core::frame::{setting, MAX_WINDOW_SIZE};
use h2flow_core::{Config, ErrorCode, SendError, Sent};

fn open(cfg: Config, client_settings: &[(u16, u32)], ids: &[u32]) -> Harness {
    let mut h = Harness::established_with(cfg, client_settings);
    for &id in ids {
        h.recv(&get(id)).unwrap();
        h.conn.send_headers(id, &[(b":status", b"200")], false).unwrap();
    }
    h.flush();
    h
}

#[test]
fn rfc9113_6_9_data_is_cut_to_the_frame_size_and_both_windows() {
    let mut h = open(default_config(), &[], &[1]);
    assert_eq!(h.conn.send_data(1, &vec![0; 100_000], false), Ok(Sent::Queued(100_000 - 65_535)));
    assert_eq!(
        datas(&h.flush()),
        vec![(1, 16_384, false), (1, 16_384, false), (1, 16_384, false), (1, 16_383, false)]
    );
    assert_eq!((h.conn.send_window(), h.conn.stream_send_window(1)), (0, Some(0)));
    // The connection window alone opening releases nothing.
    h.recv(&window_update(0, 10_000)).unwrap();
    assert!(datas(&h.flush()).is_empty());
    // Then the stream's: the smaller of the two.
    h.recv(&window_update(1, 50_000)).unwrap();
    assert_eq!(datas(&h.flush()), vec![(1, 10_000, false)]);
    h.recv(&window_update(0, 100_000)).unwrap();
    assert_eq!(datas(&h.flush()), vec![(1, 16_384, false), (1, 100_000 - 65_535 - 10_000 - 16_384, false)]);
    assert_eq!(h.conn.queued(), 0);
    assert_eq!(h.conn.stream_send_window(1), Some(50_000 - (100_000 - 65_535)));
}

#[test]
fn rfc9113_6_9_initial_window_1_gives_one_byte_frames_each_update_releasing_one_more() {
    let mut h = open(default_config(), &[(INITIAL_WINDOW_SIZE, 1)], &[1]);
    assert_eq!(h.conn.send_data(1, b"hello", true), Ok(Sent::Queued(4)));
    assert_eq!(datas(&h.flush()), vec![(1, 1, false)]);
    for i in 0..4 {
        // Nothing goes out without credit.
        assert!(h.flush().is_empty());
        h.recv(&window_update(1, 1)).unwrap();
        assert_eq!(datas(&h.flush()), vec![(1, 1, i == 3)], "byte {}", i + 1);
    }
    assert_eq!(h.conn.stream_state(1), None);
    assert_eq!(h.conn.queued(), 0);
    assert_eq!(h.conn.stats().data_bytes_sent, 5);
}

#[test]
fn rfc9113_6_9_streams_share_an_opening_connection_window_round_robin() {
    let mut h = open(default_config(), &[(INITIAL_WINDOW_SIZE, 1 << 20)], &[1, 3, 5, 7]);
    // Stream 7 uses up the connection window.
    h.conn.send_data(7, &vec![0; 65_535], false).unwrap();
    for id in [1, 3, 5] {
        assert_eq!(h.conn.send_data(id, &vec![0; 64 * 1024], false), Ok(Sent::Queued(64 * 1024)));
    }
    h.flush();
    h.recv(&window_update(0, 3 * 16_384)).unwrap();
    assert_eq!(datas(&h.flush()), vec![(1, 16_384, false), (3, 16_384, false), (5, 16_384, false)]);
    h.recv(&window_update(0, 5 * 16_384)).unwrap();
    let ids: Vec<u32> = datas(&h.flush()).iter().map(|d| d.0).collect();
    assert_eq!(ids, vec![1, 3, 5, 1, 3]);
    h.recv(&window_update(0, 16_384 + 100)).unwrap();
    assert_eq!(datas(&h.flush()), vec![(5, 16_384, false), (1, 100, false)]);
}

#[test]
fn send_data_reports_queued_bytes_and_send_window_open_when_the_queue_falls_to_half_the_limit() {
    let mut cfg = default_config();
    cfg.max_send_queue = 10_000;
    let mut h = open(cfg, &[(INITIAL_WINDOW_SIZE, 1000)], &[1]);
    assert_eq!(h.conn.send_data(1, &vec![0; 15_000], false), Ok(Sent::Queued(14_000)));
    assert_eq!(h.conn.queued(), 14_000);
    let ev = h.recv(&window_update(1, 3000)).unwrap();
    assert!(ev.is_empty(), "still at 11,000: {ev:?}");
    // Below the limit but above half of it: a sender woken now would be blocked again soon.
    let ev = h.recv(&window_update(1, 2000)).unwrap();
    assert!(ev.is_empty(), "at 9,000: {ev:?}");
    let ev = h.recv(&window_update(1, 4000)).unwrap();
    assert_eq!(ev, vec![Ev::SendWindowOpen { stream_id: 1 }]);
    // Once per wait.
    let ev = h.recv(&window_update(1, 2000)).unwrap();
    assert!(ev.is_empty());
    assert_eq!(h.conn.send_data(1, &[0; 100], false), Ok(Sent::Queued(3_100)));
    assert_eq!(h.conn.queued(), 3_100);
    // Below the limit the caller was never told to wait, so it is not told to go on either.
    let ev = h.recv(&window_update(1, 3_100)).unwrap();
    assert!(ev.is_empty());
    assert_eq!(h.conn.queued(), 0);
    assert_eq!(h.conn.stats().peak_queued_send_bytes, 14_000);
}

#[test]
fn rfc9113_8_1_trailers_go_out_after_the_last_data() {
    let mut h = open(default_config(), &[(INITIAL_WINDOW_SIZE, 10)], &[1]);
    assert_eq!(h.conn.send_data(1, &[7; 25], false), Ok(Sent::Queued(15)));
    assert_eq!(h.conn.send_headers(1, &[(b"x-checksum", b"42")], true), Ok(Sent::Queued(15)));
    let out = h.flush();
    assert_eq!(out, vec![Out::Data { stream_id: 1, len: 10, end_stream: false }]);
    h.recv(&window_update(1, 100)).unwrap();
    let out = h.flush();
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0], Out::Data { stream_id: 1, len: 15, end_stream: false });
    assert!(matches!(out[1], Out::Headers { stream_id: 1, end_stream: true, .. }), "{out:?}");
    let blocks = ResponseDecoder::new().decode(&h.written);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[1].1, vec![("x-checksum".to_string(), "42".to_string())]);
    assert_eq!(h.conn.stream_state(1), None);

    // With nothing queued, trailers go out at once.
    let mut h = open(default_config(), &[], &[1]);
    h.conn.send_data(1, b"body", false).unwrap();
    assert_eq!(h.conn.send_headers(1, &[(b"x-t", b"1")], true), Ok(Sent::Queued(0)));
    let out = h.flush();
    assert!(matches!(&out[..], [Out::Data { end_stream: false, .. }, Out::Headers { end_stream: true, .. }]));
}

#[test]
fn stalls_are_counted_once_per_stall() {
    let mut h = open(default_config(), &[(INITIAL_WINDOW_SIZE, 10)], &[1]);
    h.conn.send_data(1, &[0; 25], false).unwrap();
    h.flush();
    h.flush();
    assert_eq!(h.conn.stats().stream_stalls, 1);
    h.recv(&window_update(1, 10)).unwrap();
    h.flush();
    assert_eq!(h.conn.stats().stream_stalls, 2, "out of window again, 5 bytes queued");
    h.recv(&window_update(1, 5)).unwrap();
    h.flush();
    assert_eq!(h.conn.stats().stream_stalls, 2, "drained exactly: no stall");
    assert_eq!(h.conn.stats().connection_stalls, 0);

    let mut h = open(default_config(), &[(INITIAL_WINDOW_SIZE, 1 << 20)], &[1, 3]);
    h.conn.send_data(1, &vec![0; 70_000], false).unwrap();
    h.conn.send_data(3, &vec![0; 1_000], false).unwrap();
    for _ in 0..3 {
        h.flush();
        h.recv(&ping([1; 8])).unwrap();
    }
    assert_eq!(h.conn.stats().connection_stalls, 1);
    h.recv(&window_update(0, 1_000)).unwrap();
    h.flush();
    assert_eq!(h.conn.stats().connection_stalls, 2);
    assert_eq!(h.conn.stats().stream_stalls, 0);
}

#[test]
fn rfc9113_6_9_window_update_of_0_on_a_stream_is_stream_protocol_error() {
    let mut h = open(default_config(), &[], &[1]);
    h.recv(&post(3, None)).unwrap();
    let ev = h.recv(&raw_frame(0x8, 0, 3, &[0, 0, 0, 0])).unwrap();
    assert_eq!(ev, vec![Ev::StreamError { stream_id: 3, code: ErrorCode::PROTOCOL_ERROR.0 }]);
    assert_eq!(resets(&h.flush()), vec![(3, ErrorCode::PROTOCOL_ERROR.0)]);
    assert!(!h.conn.is_closed());
}

#[test]
fn rfc9113_6_9_window_update_of_0_on_the_connection_is_connection_protocol_error() {
    let mut h = open(default_config(), &[], &[1]);
    let (code, _) = h.expect_connection_error(&raw_frame(0x8, 0, 0, &[0, 0, 0, 0]));
    assert_eq!(code, ErrorCode::PROTOCOL_ERROR.0);
}

#[test]
fn rfc9113_6_9_1_stream_window_past_2_31_minus_1_is_stream_flow_control_error() {
    let mut h = open(default_config(), &[], &[1, 3]);
    h.recv(&window_update(1, MAX_WINDOW_SIZE - 65_535)).unwrap();
    assert!(h.flush().is_empty());
    let ev = h.recv(&window_update(1, 1)).unwrap();
    assert_eq!(ev, vec![Ev::StreamError { stream_id: 1, code: ErrorCode::FLOW_CONTROL_ERROR.0 }]);
    assert_eq!(resets(&h.flush()), vec![(1, ErrorCode::FLOW_CONTROL_ERROR.0)]);
    assert!(!h.conn.is_closed());
    assert_eq!(h.conn.stream_state(3), Some(h2flow_core::stream::State::HalfClosedRemote));
}

#[test]
fn rfc9113_6_9_1_connection_window_past_2_31_minus_1_is_connection_flow_control_error() {
    let mut h = open(default_config(), &[], &[1]);
    h.recv(&window_update(0, MAX_WINDOW_SIZE - 65_535)).unwrap();
    let (code, _) = h.expect_connection_error(&window_update(0, 1));
    assert_eq!(code, ErrorCode::FLOW_CONTROL_ERROR.0);
}

#[test]
fn sends_to_a_stream_the_peer_reset_return_stream_closed_and_are_counted() {
    let mut h = open(default_config(), &[(INITIAL_WINDOW_SIZE, 10)], &[1]);
    h.recv(&post(3, None)).unwrap();
    h.conn.send_data(1, &[0; 100], false).unwrap();
    assert_eq!(h.conn.queued(), 90);
    h.flush();
    h.recv(&concat(&[rst_stream(1, ErrorCode::CANCEL.0), rst_stream(3, ErrorCode::CANCEL.0)])).unwrap();
    assert_eq!(h.conn.queued(), 0, "the reset stream's queue is dropped");
    assert_eq!(h.conn.send_data(1, b"more", true), Ok(Sent::StreamClosed));
    assert_eq!(h.conn.send_headers(1, &[(b"x-t", b"1")], true), Ok(Sent::StreamClosed));
    assert_eq!(h.conn.send_headers(3, &[(b":status", b"200")], true), Ok(Sent::StreamClosed));
    assert_eq!(h.conn.reset_stream(3, ErrorCode::CANCEL), Ok(Sent::StreamClosed));
    assert_eq!(h.conn.consume(3, 0), Ok(()));
    assert_eq!(h.conn.stats().writes_to_closed_streams, 3);
    let out = h.flush();
    assert!(out.is_empty(), "{out:?}");
    // The client's WINDOW_UPDATE after its own RST_STREAM is a stream error (RFC 9113 5.1).
    h.recv(&window_update(1, 100)).unwrap();
    assert_eq!(resets(&h.flush()), vec![(1, ErrorCode::STREAM_CLOSED.0)]);
}

#[test]
fn sends_after_a_connection_error_return_stream_closed() {
    let mut h = open(default_config(), &[], &[1]);
    h.expect_connection_error(&data(2, b"x", false));
    assert_eq!(h.conn.send_data(1, b"x", true), Ok(Sent::StreamClosed));
    assert_eq!(h.conn.reset_stream(1, ErrorCode::CANCEL), Ok(Sent::StreamClosed));
    assert!(h.flush().is_empty());
}

#[test]
fn caller_misuse_is_send_error_misuse() {
    let misuse = |r: Result<Sent, SendError>| matches!(r, Err(SendError::Misuse(_)));
    let mut h = Harness::established(default_config());
    h.recv(&concat(&[get(1), post(3, None), get(5)])).unwrap();
    // Unknown streams.
    for id in [0, 2, 7, 101] {
        assert!(misuse(h.conn.send_headers(id, &[(b":status", b"200")], true)), "{id}");
        assert!(misuse(h.conn.send_data(id, b"x", true)), "{id}");
        assert!(misuse(h.conn.reset_stream(id, ErrorCode::CANCEL)), "{id}");
    }
    // Data before headers.
    assert!(misuse(h.conn.send_data(1, b"x", true)));
    // Bad response headers.
    assert!(misuse(h.conn.send_headers(1, &[(b"content-type", b"text/plain")], true)));
    assert!(misuse(h.conn.send_headers(1, &[(b":status", b"20")], true)));
    assert!(misuse(h.conn.send_headers(1, &[(b":status", b"200"), (b":path", b"/")], true)));
    assert!(misuse(h.conn.send_headers(1, &[(b":status", b"200"), (b"Upper", b"x")], true)));
    assert!(misuse(h.conn.send_headers(1, &[(b":status", b"103")], true)), "1xx cannot end the stream");
    // An informational response, then the final one.
    assert_eq!(h.conn.send_headers(1, &[(b":status", b"103")], false), Ok(Sent::Queued(0)));
    assert!(misuse(h.conn.send_data(1, b"x", true)), "a 1xx response has no body");
    assert_eq!(h.conn.send_headers(1, &[(b":status", b"200")], false), Ok(Sent::Queued(0)));
    // Trailers must end the stream and carry no pseudo-header.
    assert!(misuse(h.conn.send_headers(1, &[(b"x-t", b"1")], false)));
    assert!(misuse(h.conn.send_headers(1, &[(b":status", b"200")], true)));
    h.conn.send_data(1, b"x", true).unwrap();
    // After the end: stream 1 is closed (both sides ended), 3 half-closed (local).
    assert!(misuse(h.conn.send_data(1, b"x", true)));
    assert!(misuse(h.conn.send_headers(1, &[(b"x-t", b"1")], true)));
    h.conn.send_headers(3, &[(b":status", b"200")], true).unwrap();
    assert!(misuse(h.conn.send_data(3, b"x", true)));
    assert!(misuse(h.conn.send_headers(3, &[(b"x-t", b"1")], true)));
    // Queued END_STREAM counts as the end too.
    h.recv(&settings(&[(setting::INITIAL_WINDOW_SIZE, 0)])).unwrap();
    h.conn.send_headers(5, &[(b":status", b"200")], false).unwrap();
    assert_eq!(h.conn.send_data(5, b"abc", true), Ok(Sent::Queued(3)));
    assert!(misuse(h.conn.send_data(5, b"x", false)));
    assert!(misuse(h.conn.send_headers(5, &[(b"x-t", b"1")], true)));
    // Consuming more than was received.
    h.recv(&data(3, b"abc", false)).unwrap();
    assert_eq!(h.conn.consume(3, 4), Err(SendError::Misuse("consumed more bytes than were received")));
    assert_eq!(h.conn.consume(3, 3), Ok(()));
    assert_eq!(h.conn.stats().writes_to_closed_streams, 0);
}

#[test]
fn empty_data_with_end_stream_sends_an_empty_frame() {
    let mut h = open(default_config(), &[(INITIAL_WINDOW_SIZE, 0)], &[1]);
    assert_eq!(h.conn.send_data(1, b"", true), Ok(Sent::Queued(0)));
    assert_eq!(datas(&h.flush()), vec![(1, 0, true)]);
    assert_eq!(h.conn.stream_state(1), None);
}

/// Found by the soak (tests/fuzz_soak.rs): an empty DATA frame with END_STREAM went out on a
/// stream whose window the peer had made negative.
#[test]
fn rfc9113_6_9_2_no_empty_end_stream_data_frame_while_the_stream_window_is_negative() {
    let mut h = open(default_config(), &[(INITIAL_WINDOW_SIZE, 100)], &[1, 3]);
    h.conn.send_data(1, &[0; 100], false).unwrap();
    h.conn.send_data(3, &[0; 100], false).unwrap();
    h.flush();
    h.recv(&settings(&[(INITIAL_WINDOW_SIZE, 50)])).unwrap();
    assert_eq!(h.conn.stream_send_window(1), Some(-50));
    // The end of the stream waits: no flow-controlled frame while the window is negative.
    assert_eq!(h.conn.send_data(1, b"", true), Ok(Sent::Queued(0)));
    assert!(datas(&h.flush()).is_empty());
    assert!(h.conn.stream_state(1).is_some());
    assert_eq!(
        h.conn.send_headers(1, &[(b"x-late", b"1")], true),
        Err(SendError::Misuse("the stream was already ended"))
    );
    h.recv(&window_update(1, 30)).unwrap();
    assert!(datas(&h.flush()).is_empty());
    // Not negative any more: the empty frame goes out and the stream is done.
    h.recv(&window_update(1, 20)).unwrap();
    assert_eq!(datas(&h.flush()), vec![(1, 0, true)]);
    assert_eq!(h.conn.stream_state(1), None);
    // The same wait when the window reopens through SETTINGS.
    assert_eq!(h.conn.send_data(3, b"", true), Ok(Sent::Queued(0)));
    assert!(datas(&h.flush()).is_empty());
    h.recv(&settings(&[(INITIAL_WINDOW_SIZE, 100)])).unwrap();
    assert_eq!(datas(&h.flush()), vec![(3, 0, true)]);
    assert_eq!(h.conn.stats().data_bytes_sent, 200);
}

/// Found by the soak (tests/fuzz_soak.rs): a response ended by its last DATA frame, on a stream
/// whose request body was still arriving, was made ready again when the peer's
/// SETTINGS_INITIAL_WINDOW_SIZE grew, and sent a second, empty END_STREAM.
#[test]
fn rfc9113_5_1_a_stream_we_ended_gets_nothing_more_when_its_window_opens() {
    let mut h = Harness::established_with(default_config(), &[(INITIAL_WINDOW_SIZE, 1)]);
    h.recv(&post(1, Some(100))).unwrap();
    h.conn.send_headers(1, &[(b":status", b"200")], false).unwrap();
    assert_eq!(h.conn.send_data(1, b"hello", true), Ok(Sent::Queued(4)));
    assert_eq!(datas(&h.flush()), vec![(1, 1, false)]);
    // A larger initial window releases the rest, END_STREAM on the last DATA frame.
    h.recv(&settings(&[(INITIAL_WINDOW_SIZE, 1000)])).unwrap();
    assert_eq!(datas(&h.flush()), vec![(1, 4, true)]);
    assert!(h.conn.stream_state(1).is_some(), "the request body is still to come");
    // Windows that open again send nothing on it.
    h.recv(&settings(&[(INITIAL_WINDOW_SIZE, 100_000)])).unwrap();
    h.recv(&window_update(1, 5_000)).unwrap();
    assert!(datas(&h.flush()).is_empty());
    // Resetting it afterwards is a plain RST_STREAM.
    assert_eq!(h.conn.reset_stream(1, ErrorCode::NO_ERROR), Ok(Sent::Queued(0)));
    let out = h.flush();
    assert!(datas(&out).is_empty(), "{out:?}");
    assert_eq!(resets(&out), vec![(1, ErrorCode::NO_ERROR.0)]);
}

// --- bounded sending (send_body) and send stalls ---------------------------------------------

fn events_of(h: &mut Harness) -> Vec<Ev> {
    h.recv(&[]).unwrap()
}

#[test]
fn send_body_takes_at_most_the_queue_limit_and_says_when_to_wait() {
    let mut cfg = default_config();
    cfg.max_send_queue = 10_000;
    let mut h = open(cfg, &[(INITIAL_WINDOW_SIZE, 0)], &[1]);
    // No window: 10,000 bytes are queued, the caller must wait.
    assert_eq!(
        h.conn.send_body(1, &vec![0; 50_000], true),
        Ok(Sent::Accepted { taken: 10_000, blocked: true })
    );
    assert_eq!(h.conn.queued(), 10_000);
    let mut ev = h.recv(&settings(&[(setting::INITIAL_WINDOW_SIZE, 65_535)])).unwrap();
    h.flush();
    ev.extend(events_of(&mut h));
    assert!(h.conn.queued() < 10_000);
    assert!(ev.contains(&Ev::SendWindowOpen { stream_id: 1 }) || h.conn.queued() == 0, "{ev:?}");
    // With windows open, what they allow is framed at once: still at most the limit per call.
    assert_eq!(
        h.conn.send_body(1, &vec![0; 50_000], false),
        Ok(Sent::Accepted { taken: 10_000, blocked: false })
    );
}

#[test]
fn the_connection_send_queue_bounds_what_a_peer_that_opens_no_window_makes_us_hold() {
    let mut cfg = default_config();
    cfg.max_connection_send_queue = 100_000;
    let ids: Vec<u32> = (0..20).map(|i| 2 * i + 1).collect();
    let mut h = open(cfg.clone(), &[(INITIAL_WINDOW_SIZE, 0)], &ids);
    let mut blocked = Vec::new();
    for &id in &ids {
        match h.conn.send_body(id, &vec![0; 64 * 1024], false) {
            Ok(Sent::Accepted { blocked: true, .. }) => blocked.push(id),
            Ok(Sent::Accepted { blocked: false, .. }) => panic!("stream {id} may send more without window"),
            other => panic!("{other:?}"),
        }
        assert!(h.conn.queued() <= cfg.max_connection_send_queue as u64);
    }
    assert_eq!(blocked, ids, "every sender waits");
    assert_eq!(h.conn.queued(), 100_000);
    // The peer opens the windows: every sender blocked by the connection's queue is told.
    let mut ev = h.recv(&settings(&[(setting::INITIAL_WINDOW_SIZE, 1 << 20)])).unwrap();
    ev.extend(h.recv(&window_update(0, 1 << 20)).unwrap());
    h.flush();
    ev.extend(events_of(&mut h));
    let opened: Vec<u32> = ev
        .into_iter()
        .filter_map(|e| if let Ev::SendWindowOpen { stream_id } = e { Some(stream_id) } else { None })
        .collect();
    assert_eq!(h.conn.queued(), 0);
    let mut sorted = opened.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "{opened:?}");
}

#[test]
fn a_stream_the_peer_lets_nothing_go_for_send_stall_timeout_is_reset_and_then_the_connection_ends() {
    let mut cfg = default_config();
    cfg.send_stall_timeout = std::time::Duration::from_secs(30);
    let mut h = open(cfg, &[(INITIAL_WINDOW_SIZE, 0)], &[1, 3]);
    h.conn.send_body(1, b"blocked", false).unwrap();
    h.conn.send_body(3, b"blocked", false).unwrap();
    h.advance(std::time::Duration::from_secs(29));
    assert!(h.conn.check_timeouts(h.now).is_ok());
    assert!(events_of(&mut h).is_empty());
    h.advance(std::time::Duration::from_secs(2));
    // Nothing went out on the connection either: it ends.
    let e = h.conn.check_timeouts(h.now).expect_err("the peer keeps every stream stalled");
    assert_eq!(e.code(), ErrorCode::NO_ERROR);
    let out = h.flush();
    assert_eq!(resets(&out), vec![(1, ErrorCode::CANCEL.0), (3, ErrorCode::CANCEL.0)], "{out:?}");
    assert_eq!(goaways(&out).len(), 1);
    assert_eq!(h.conn.stats().send_timeouts, 2);
}

#[test]
fn a_stalled_stream_is_reset_while_the_connection_keeps_serving_others() {
    let mut cfg = default_config();
    cfg.send_stall_timeout = std::time::Duration::from_secs(30);
    let mut h = open(cfg, &[(INITIAL_WINDOW_SIZE, 100)], &[1, 3]);
    // Stream 1's peer never opens its window; stream 3's does, now and then.
    h.conn.send_body(1, &[1; 1000], false).unwrap();
    h.conn.send_body(3, &[3; 1000], false).unwrap();
    h.flush();
    let mut ev = Vec::new();
    for _ in 0..7 {
        h.advance(std::time::Duration::from_secs(5));
        ev.extend(h.recv(&window_update(3, 100)).unwrap());
        h.flush();
        assert!(h.conn.check_timeouts(h.now).is_ok());
    }
    ev.extend(events_of(&mut h));
    assert!(ev.contains(&Ev::SendTimeout { stream_id: 1 }), "{ev:?}");
    assert!(!ev.contains(&Ev::SendTimeout { stream_id: 3 }), "{ev:?}");
    assert_eq!(resets(&h.flush()), vec![(1, ErrorCode::CANCEL.0)]);
    assert!(!h.conn.is_closed());
}

// Found in review: a sender told to wait by the connection's queue, with nothing of its own
// queued, was never woken when another stream's reset or send timeout emptied that queue.

/// Stream 1 fills the connection's send queue; stream 3 is told to wait with nothing queued.
/// The peer resets stream 1: the connection queue is empty again, but 3 is never told.
#[test]
fn a_sender_waiting_on_the_connection_queue_is_told_when_a_reset_frees_it() {
    let mut cfg = default_config();
    cfg.max_connection_send_queue = 64 * 1024;
    let mut h = open(cfg, &[(INITIAL_WINDOW_SIZE, 0)], &[1, 3]);
    assert_eq!(
        h.conn.send_body(1, &vec![0; 64 * 1024], false),
        Ok(Sent::Accepted { taken: 65536, blocked: true })
    );
    assert_eq!(h.conn.send_body(3, &vec![0; 1000], false), Ok(Sent::Accepted { taken: 0, blocked: true }));
    let mut ev = h.recv(&rst_stream(1, 8)).unwrap();
    assert_eq!(h.conn.queued(), 0);
    h.flush();
    ev.extend(h.recv(&window_update(3, 100_000)).unwrap());
    ev.extend(h.recv(&window_update(0, 100_000)).unwrap());
    h.flush();
    ev.extend(h.recv(&[]).unwrap());
    // Much later: no send timeout either (nothing is queued on 3).
    h.advance(std::time::Duration::from_secs(120));
    let r = h.conn.check_timeouts(h.now);
    ev.extend(h.recv(&[]).unwrap());
    eprintln!("events: {ev:?}, check_timeouts: {r:?}");
    assert!(ev.contains(&Ev::SendWindowOpen { stream_id: 3 }), "3 never told: {ev:?}");
}

/// Same with the send-stall reset of stream 1 freeing the queue.
#[test]
fn a_sender_waiting_on_the_connection_queue_is_told_when_a_send_timeout_frees_it() {
    let mut cfg = default_config();
    cfg.max_connection_send_queue = 64 * 1024;
    cfg.send_stall_timeout = std::time::Duration::from_secs(30);
    let mut h = open(cfg, &[(INITIAL_WINDOW_SIZE, 0)], &[1, 3, 5]);
    // 5 keeps the connection sending.
    h.recv(&window_update(5, 100)).unwrap();
    h.conn.send_body(5, &[0; 100], false).unwrap();
    assert!(matches!(
        h.conn.send_body(1, &vec![0; 64 * 1024], false),
        Ok(Sent::Accepted { blocked: true, .. })
    ));
    h.flush();
    let r3 = h.conn.send_body(3, &vec![0; 1000], false);
    let _ = r3;
    let mut ev = Vec::new();
    for _ in 0..20 {
        h.advance(std::time::Duration::from_secs(5));
        ev.extend(h.recv(&window_update(5, 100)).unwrap());
        h.recv(&window_update(0, 100)).unwrap();
        h.conn.send_body(5, &[0; 100], false).unwrap();
        h.flush();
        let _ = h.conn.check_timeouts(h.now);
        ev.extend(h.recv(&[]).unwrap());
    }
    assert!(ev.contains(&Ev::SendTimeout { stream_id: 1 }));
    assert!(
        ev.contains(&Ev::SendWindowOpen { stream_id: 3 }) || ev.contains(&Ev::SendTimeout { stream_id: 3 }),
        "3 never told: {ev:?}"
    );
}
