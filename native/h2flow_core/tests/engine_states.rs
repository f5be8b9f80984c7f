//! Stream states and frame sequencing (RFC 9113 §3.4, §5.1, §5.1.1, §5.1.2, §5.5, §6.x, §8.1):
//! what the engine accepts, ignores, resets or answers with GOAWAY.

mod common_engine;
use common_engine::*;
use h2flow_core::frame::setting;
use h2flow_core::stream::State;
use h2flow_core::ErrorCode;

const PROTOCOL_ERROR: u32 = ErrorCode::PROTOCOL_ERROR.0;
const STREAM_CLOSED: u32 = ErrorCode::STREAM_CLOSED.0;
const REFUSED_STREAM: u32 = ErrorCode::REFUSED_STREAM.0;
const ENHANCE_YOUR_CALM: u32 = ErrorCode::ENHANCE_YOUR_CALM.0;

fn ok200(h: &mut Harness, id: u32) {
    h.conn.send_headers(id, &[(b":status", b"200")], true).unwrap();
}

fn body_of(events: &[Ev], id: u32) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Data { stream_id, data, .. } if *stream_id == id => Some(data.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

// --- §3.4 the connection preface ------------------------------------------------------------

#[test]
fn rfc9113_3_4_invalid_preface_is_connection_protocol_error() {
    let mut h = Harness::new(default_config());
    let (code, out) = h.expect_connection_error(b"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n");
    assert_eq!(code, PROTOCOL_ERROR);
    // The server preface was queued before and still goes out ahead of the GOAWAY.
    assert!(matches!(out[0], Out::Settings { ack: false, .. }), "{out:?}");
    assert!(h.conn.is_done());
    // Input after the error is ignored.
    assert!(h.feed(&get(1)).1.is_ok());
    assert!(h.flush().is_empty());
}

#[test]
fn rfc9113_3_4_preface_with_a_bad_byte_late_is_rejected() {
    let mut h = Harness::new(default_config());
    let mut bad = PREFACE.to_vec();
    bad[20] = b'X';
    for &b in &bad[..20] {
        assert!(h.feed(&[b]).1.is_ok());
    }
    let (code, _) = h.expect_connection_error(&bad[20..]);
    assert_eq!(code, PROTOCOL_ERROR);
}

#[test]
fn rfc9113_3_4_preface_split_across_calls_byte_by_byte_works() {
    let mut h = Harness::new(default_config());
    let input = concat(&[PREFACE.to_vec(), settings(&[]), settings_ack(), get(1)]);
    let mut events = Vec::new();
    for &b in &input {
        let (ev, r) = h.feed(&[b]);
        r.unwrap();
        events.extend(ev);
    }
    assert!(matches!(&events[..], [Ev::Headers { stream_id: 1, end_stream: true, .. }]), "{events:?}");
    let out = h.flush();
    assert!(out.contains(&Out::Settings { ack: true, params: vec![] }), "{out:?}");
}

#[test]
fn rfc9113_3_4_first_frame_after_preface_must_be_settings() {
    let firsts: Vec<(&str, Vec<u8>)> = vec![
        ("PING", ping([0; 8])),
        ("SETTINGS ACK", settings_ack()),
        ("HEADERS", get(1)),
        ("WINDOW_UPDATE", window_update(0, 100)),
        ("unknown type", raw_frame(0xfa, 0, 0, b"x")),
        // A frame the codec rejects with a stream error is still not a SETTINGS frame.
        ("malformed PRIORITY", raw_frame(0x2, 0, 1, &[0, 0, 0, 0])),
    ];
    for (name, first) in firsts {
        let mut h = Harness::new(default_config());
        let (_, r) = h.feed(&concat(&[PREFACE.to_vec(), first]));
        let e = r.expect_err(name);
        assert_eq!(e.code().0, PROTOCOL_ERROR, "{name}: {e:?}");
        let out = h.flush();
        assert_eq!(goaways(&out), vec![(0, PROTOCOL_ERROR)], "{name}: {out:?}");
        assert!(resets(&out).is_empty(), "{name}: {out:?}");
    }
}

#[test]
fn rfc9113_4_2_frame_over_our_max_frame_size_is_rejected_from_its_header_even_split() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, None)).unwrap();
    let big = raw_frame(0x0, 0, 1, &vec![0; 16_385]);
    // The first bytes of the header alone are not enough to tell.
    assert!(h.feed(&big[..5]).1.is_ok());
    let (code, _) = h.expect_connection_error(&big[5..12]);
    assert_eq!(code, ErrorCode::FRAME_SIZE_ERROR.0);
}

#[test]
fn frames_split_at_every_byte_boundary_decode_the_same() {
    let input = concat(&[
        post(1, Some(10)),
        padded_data(1, b"01234", 3, false),
        ping([7; 8]),
        data(1, b"56789", true),
        get(3),
    ]);
    for cut in 1..input.len() {
        let mut h = Harness::established(default_config());
        let mut ev = h.recv(&input[..cut]).unwrap();
        ev.extend(h.recv(&input[cut..]).unwrap());
        assert_eq!(body_of(&ev, 1), b"0123456789", "cut at {cut}");
        assert_eq!(ev.iter().filter(|e| matches!(e, Ev::Headers { .. })).count(), 2, "cut at {cut}");
        assert_eq!(h.flush(), vec![Out::Ping { ack: true, data: [7; 8] }], "cut at {cut}");
    }
}

// --- §5.1 stream states -----------------------------------------------------------------------

#[test]
fn rfc9113_5_1_headers_opens_a_stream_and_end_stream_half_closes_it() {
    let mut h = Harness::established(default_config());
    let ev = h.recv(&post(1, None)).unwrap();
    assert!(matches!(&ev[..], [Ev::Headers { stream_id: 1, end_stream: false, .. }]), "{ev:?}");
    assert_eq!(h.conn.stream_state(1), Some(State::Open));
    let ev = h.recv(&data(1, b"abc", true)).unwrap();
    assert_eq!(ev, vec![Ev::Data { stream_id: 1, data: b"abc".to_vec(), end_stream: true }]);
    assert_eq!(h.conn.stream_state(1), Some(State::HalfClosedRemote));

    h.recv(&get(3)).unwrap();
    assert_eq!(h.conn.stream_state(3), Some(State::HalfClosedRemote));
    assert_eq!(h.conn.open_streams(), 2);

    // Our END_STREAM closes both.
    ok200(&mut h, 1);
    ok200(&mut h, 3);
    assert_eq!(h.conn.stream_state(1), None);
    assert_eq!(h.conn.open_streams(), 0);

    // We end first: half-closed (local), then the peer's END_STREAM closes it.
    h.recv(&post(5, None)).unwrap();
    ok200(&mut h, 5);
    assert_eq!(h.conn.stream_state(5), Some(State::HalfClosedLocal));
    let ev = h.recv(&data(5, b"late body", true)).unwrap();
    assert_eq!(body_of(&ev, 5), b"late body");
    assert_eq!(h.conn.stream_state(5), None);
    let out = h.flush();
    assert!(resets(&out).is_empty() && goaways(&out).is_empty(), "{out:?}");
}

#[test]
fn rfc9113_5_1_data_on_an_idle_stream_is_connection_protocol_error() {
    let mut h = Harness::established(default_config());
    let (code, _) = h.expect_connection_error(&data(1, b"x", false));
    assert_eq!(code, PROTOCOL_ERROR);

    // Idle also means above the highest id seen so far.
    let mut h = Harness::established(default_config());
    h.recv(&get(1)).unwrap();
    let (code, out) = h.expect_connection_error(&data(3, b"x", false));
    assert_eq!(code, PROTOCOL_ERROR);
    assert_eq!(goaways(&out), vec![(1, PROTOCOL_ERROR)]);
}

#[test]
fn rfc9113_5_1_window_update_on_an_idle_stream_is_connection_protocol_error() {
    let mut h = Harness::established(default_config());
    let (code, _) = h.expect_connection_error(&window_update(1, 10));
    assert_eq!(code, PROTOCOL_ERROR);
}

#[test]
fn rfc9113_6_4_rst_stream_on_an_idle_stream_is_connection_protocol_error() {
    let mut h = Harness::established(default_config());
    let (code, _) = h.expect_connection_error(&rst_stream(1, ErrorCode::CANCEL.0));
    assert_eq!(code, PROTOCOL_ERROR);
}

#[test]
fn rfc9113_5_1_priority_on_an_idle_stream_is_accepted() {
    let mut h = Harness::established(default_config());
    let ev = h.recv(&priority(7, 0)).unwrap();
    assert!(ev.is_empty());
    assert!(h.flush().is_empty());
    // The stream is still idle: it can be opened.
    let ev = h.recv(&get(7)).unwrap();
    assert!(matches!(&ev[..], [Ev::Headers { stream_id: 7, .. }]), "{ev:?}");
}

#[test]
fn rfc9113_5_1_1_even_stream_id_is_connection_protocol_error() {
    let mut h = Harness::established(default_config());
    let (code, _) = h.expect_connection_error(&get(2));
    assert_eq!(code, PROTOCOL_ERROR);

    let mut h = Harness::established(default_config());
    h.recv(&get(1)).unwrap();
    let (code, _) = h.expect_connection_error(&data(2, b"x", false));
    assert_eq!(code, PROTOCOL_ERROR);
}

#[test]
fn rfc9113_5_1_1_stream_id_going_backwards_is_connection_protocol_error() {
    let mut h = Harness::established(default_config());
    h.recv(&get(5)).unwrap();
    let (code, out) = h.expect_connection_error(&get(3));
    assert_eq!(code, PROTOCOL_ERROR);
    assert_eq!(goaways(&out), vec![(5, PROTOCOL_ERROR)]);
}

#[test]
fn rfc9113_5_1_data_after_end_stream_is_stream_closed_stream_error() {
    let mut h = Harness::established(default_config());
    h.recv(&get(1)).unwrap();
    let ev = h.recv(&data(1, b"more", false)).unwrap();
    assert_eq!(ev, vec![Ev::StreamError { stream_id: 1, code: STREAM_CLOSED }]);
    let out = h.flush();
    assert_eq!(resets(&out), vec![(1, STREAM_CLOSED)]);
    assert!(goaways(&out).is_empty());
    assert!(!h.conn.is_closed());
    // The DATA still counted against the connection window.
    assert_eq!(h.conn.scheduler().connection_remaining(), 1024 * 1024 - 4);
    // Our reset closed the stream; the connection goes on.
    let ev = h.recv(&get(3)).unwrap();
    assert!(matches!(&ev[..], [Ev::Headers { stream_id: 3, .. }]), "{ev:?}");
}

#[test]
fn rfc9113_5_1_headers_after_end_stream_is_stream_closed_stream_error() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, None)).unwrap();
    h.recv(&data(1, b"x", true)).unwrap();
    let ev = h.recv(&headers(1, &[("x-trailer", "1")], true)).unwrap();
    assert_eq!(ev, vec![Ev::StreamError { stream_id: 1, code: STREAM_CLOSED }]);
    assert_eq!(resets(&h.flush()), vec![(1, STREAM_CLOSED)]);
}

#[test]
fn rfc9113_5_1_data_on_a_stream_closed_by_end_stream_is_connection_stream_closed() {
    let mut h = Harness::established(default_config());
    h.recv(&get(1)).unwrap();
    ok200(&mut h, 1);
    h.flush();
    let (code, out) = h.expect_connection_error(&data(1, b"x", false));
    assert_eq!(code, STREAM_CLOSED);
    assert_eq!(goaways(&out), vec![(1, STREAM_CLOSED)]);
}

#[test]
fn rfc9113_5_1_headers_on_a_stream_closed_by_end_stream_is_connection_stream_closed() {
    let mut h = Harness::established(default_config());
    h.recv(&get(1)).unwrap();
    ok200(&mut h, 1);
    h.flush();
    let (code, _) = h.expect_connection_error(&get(1));
    assert_eq!(code, STREAM_CLOSED);
}

#[test]
fn rfc9113_5_1_window_update_rst_stream_priority_on_a_closed_stream_are_ignored() {
    let mut h = Harness::established(default_config());
    h.recv(&get(1)).unwrap();
    ok200(&mut h, 1);
    h.flush();
    let input = concat(&[window_update(1, 100), rst_stream(1, ErrorCode::CANCEL.0), priority(1, 0)]);
    let ev = h.recv(&input).unwrap();
    assert!(ev.is_empty(), "{ev:?}");
    assert!(h.flush().is_empty());
    assert!(!h.conn.is_closed());
    assert_eq!(h.conn.stats().streams_reset_by_peer, 0);
}

#[test]
fn rfc9113_5_1_frames_on_a_stream_we_reset_are_ignored() {
    let mut cfg = default_config();
    // A connection window with no initial credit, so every credit is visible.
    cfg.window.initial_connection_window = 65_535;
    let mut h = Harness::established(cfg);
    h.recv(&concat(&[post(1, None), post(3, None)])).unwrap();
    assert_eq!(h.conn.reset_stream(1, ErrorCode::CANCEL), Ok(h2flow_core::Sent::Queued(0)));
    assert_eq!(resets(&h.flush()), vec![(1, ErrorCode::CANCEL.0)]);

    // What the client sent before it saw our RST_STREAM.
    let chunk = vec![1u8; 16_000];
    let input = concat(&[
        data(1, &chunk, false),
        data(1, &chunk, false),
        data(1, &chunk[..8_000], false),
        headers(1, &[("x-trailer", "1")], true),
        window_update(1, 1000),
        rst_stream(1, ErrorCode::CANCEL.0),
        priority(1, 0),
    ]);
    let ev = h.recv(&input).unwrap();
    assert!(ev.is_empty(), "{ev:?}");
    // The DATA counted against the connection window, nothing is buffered for it, and it is
    // credited back at once: stream 3 can use the connection window.
    assert_eq!(h.conn.buffered(), 0);
    let out = h.flush();
    assert_eq!(window_updates(&out), vec![(0, 40_000)], "{out:?}");
    assert!(resets(&out).is_empty() && goaways(&out).is_empty(), "{out:?}");
    assert_eq!(h.conn.stats().streams_reset_by_peer, 0);
}

#[test]
fn rfc9113_5_1_frames_after_peer_rst_stream_are_stream_closed_errors_except_priority() {
    let mut h = Harness::established(default_config());
    h.recv(&concat(&[post(1, None), post(3, None), post(5, None)])).unwrap();
    let ev = h
        .recv(&concat(&[
            rst_stream(1, ErrorCode::CANCEL.0),
            rst_stream(3, ErrorCode::CANCEL.0),
            rst_stream(5, ErrorCode::CANCEL.0),
        ]))
        .unwrap();
    assert_eq!(ev.len(), 3);
    assert_eq!(ev[0], Ev::StreamReset { stream_id: 1, code: ErrorCode::CANCEL.0 });
    assert!(h.flush().is_empty(), "no RST_STREAM in answer to RST_STREAM (RFC 9113 5.4.2)");

    // PRIORITY and a second RST_STREAM are fine.
    h.recv(&concat(&[priority(1, 0), rst_stream(1, ErrorCode::CANCEL.0)])).unwrap();
    assert!(h.flush().is_empty());

    let before = h.conn.scheduler().connection_remaining();
    h.recv(&concat(&[data(1, b"abc", false), window_update(3, 10), headers(5, &[("x-t", "1")], true)]))
        .unwrap();
    let out = h.flush();
    assert_eq!(resets(&out), vec![(1, STREAM_CLOSED), (3, STREAM_CLOSED), (5, STREAM_CLOSED)], "{out:?}");
    assert!(!h.conn.is_closed());
    assert_eq!(h.conn.scheduler().connection_remaining(), before - 3);
}

#[test]
fn rfc9113_5_1_window_update_and_priority_accepted_on_half_closed_remote() {
    let mut h = Harness::established(default_config());
    h.recv(&get(1)).unwrap();
    assert_eq!(h.conn.stream_state(1), Some(State::HalfClosedRemote));
    let ev = h.recv(&concat(&[window_update(1, 1000), priority(1, 0)])).unwrap();
    assert!(ev.is_empty());
    assert_eq!(h.conn.stream_send_window(1), Some(65_535 + 1000));
    assert_eq!(h.conn.stream_state(1), Some(State::HalfClosedRemote));
    assert!(h.flush().is_empty());
}

#[test]
fn rfc9113_5_3_1_priority_self_dependency_is_stream_protocol_error() {
    let mut h = Harness::established(default_config());
    // On an open stream.
    h.recv(&post(1, None)).unwrap();
    let ev = h.recv(&priority(1, 1)).unwrap();
    assert_eq!(ev, vec![Ev::StreamError { stream_id: 1, code: PROTOCOL_ERROR }]);
    // In HEADERS: the stream is not opened. (On an idle stream it is a connection error:
    // engine_conformance.rs.)
    let ev = h.recv(&headers_with_priority(5, &request_fields("GET", "/"), true, 5)).unwrap();
    assert!(ev.is_empty(), "{ev:?}");
    let out = h.flush();
    assert_eq!(resets(&out), vec![(1, PROTOCOL_ERROR), (5, PROTOCOL_ERROR)]);
    assert!(!h.conn.is_closed());
    assert_eq!(h.conn.open_streams(), 0);
    // A dependency on another stream is fine.
    let ev = h.recv(&headers_with_priority(7, &request_fields("GET", "/"), true, 1)).unwrap();
    assert!(matches!(&ev[..], [Ev::Headers { stream_id: 7, .. }]), "{ev:?}");
}

#[test]
fn rfc9113_8_4_push_promise_from_a_client_is_connection_protocol_error() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, None)).unwrap();
    let (code, _) = h.expect_connection_error(&push_promise(1, 2, &request_fields("GET", "/pushed")));
    assert_eq!(code, PROTOCOL_ERROR);
}

// --- §6.10 CONTINUATION -----------------------------------------------------------------------

#[test]
fn rfc9113_6_10_header_block_split_over_continuations_is_assembled() {
    let mut h = Harness::established(default_config());
    let mut fields = request_fields("GET", "/split");
    let long = "v".repeat(300);
    fields.push(("x-long", &long));
    let block = literal_block(&fields);
    let parts: Vec<&[u8]> = block.chunks(block.len() / 4 + 1).collect();
    assert!(parts.len() >= 4);
    let mut input = headers_frame(1, parts[0], true, false);
    for (i, p) in parts[1..].iter().enumerate() {
        input.extend(continuation(1, p, i == parts.len() - 2));
    }
    // Byte by byte, so the block is also assembled across recv calls.
    let mut events = Vec::new();
    for b in input.chunks(7) {
        events.extend(h.recv(b).unwrap());
    }
    match &events[..] {
        [Ev::Headers { stream_id: 1, fields: got, end_stream: true }] => {
            assert_eq!(got.len(), 5);
            assert_eq!(got[3], (":path".to_string(), "/split".to_string()));
            assert_eq!(got[4].1, long);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rfc9113_6_10_frame_interleaved_in_a_header_block_is_connection_protocol_error() {
    let block = literal_block(&request_fields("GET", "/"));
    let (a, b) = block.split_at(10);
    let interlopers: Vec<(&str, Vec<u8>)> = vec![
        ("PING", ping([0; 8])),
        ("DATA on another stream", data(1, b"", false)),
        ("HEADERS on another stream", get(5)),
        ("CONTINUATION on another stream", continuation(5, b, true)),
        ("unknown frame type (RFC 9113 5.5)", raw_frame(0xfa, 0, 3, b"")),
    ];
    for (name, interloper) in interlopers {
        let mut h = Harness::established(default_config());
        h.recv(&post(1, None)).unwrap();
        let input = concat(&[headers_frame(3, a, true, false), interloper, continuation(3, b, true)]);
        let (ev, r) = h.feed(&input);
        assert!(ev.is_empty(), "{name}: {ev:?}");
        assert_eq!(r.expect_err(name).code().0, PROTOCOL_ERROR, "{name}");
    }
}

#[test]
fn rfc9113_6_10_continuation_without_headers_is_connection_protocol_error() {
    let mut h = Harness::established(default_config());
    let (code, _) = h.expect_connection_error(&continuation(1, &literal_block(&[("a", "b")]), true));
    assert_eq!(code, PROTOCOL_ERROR);

    // After a complete block (END_HEADERS set) there is nothing to continue.
    let mut h = Harness::established(default_config());
    h.recv(&post(1, None)).unwrap();
    let (code, _) = h.expect_connection_error(&continuation(1, &literal_block(&[("a", "b")]), true));
    assert_eq!(code, PROTOCOL_ERROR);
}

// --- §8.1 trailers and content-length ---------------------------------------------------------

#[test]
fn rfc9113_8_1_trailers_are_delivered() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, Some(5))).unwrap();
    let ev =
        h.recv(&concat(&[data(1, b"hello", false), headers(1, &[("x-checksum", "abc")], true)])).unwrap();
    assert_eq!(
        ev,
        vec![
            Ev::Data { stream_id: 1, data: b"hello".to_vec(), end_stream: false },
            Ev::Trailers { stream_id: 1, fields: vec![("x-checksum".into(), "abc".into())] },
        ]
    );
    assert_eq!(h.conn.stream_state(1), Some(State::HalfClosedRemote));
    assert!(h.flush().is_empty());
}

#[test]
fn rfc9113_8_1_trailers_with_pseudo_headers_are_stream_protocol_error() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, None)).unwrap();
    let ev = h.recv(&concat(&[data(1, b"x", false), headers(1, &[(":path", "/x")], true)])).unwrap();
    assert_eq!(ev[1], Ev::StreamError { stream_id: 1, code: PROTOCOL_ERROR });
    assert_eq!(resets(&h.flush()), vec![(1, PROTOCOL_ERROR)]);
    assert!(!h.conn.is_closed());
}

#[test]
fn rfc9113_8_1_second_headers_without_end_stream_is_stream_protocol_error() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, None)).unwrap();
    let ev = h.recv(&headers(1, &[("x-more", "1")], false)).unwrap();
    assert_eq!(ev, vec![Ev::StreamError { stream_id: 1, code: PROTOCOL_ERROR }]);
    assert_eq!(resets(&h.flush()), vec![(1, PROTOCOL_ERROR)]);
}

#[test]
fn rfc9113_8_1_1_content_length_mismatch_is_stream_protocol_error() {
    let mut h = Harness::established(default_config());
    // Too much.
    h.recv(&post(1, Some(10))).unwrap();
    let ev = h.recv(&concat(&[data(1, b"123456", false), data(1, b"789012", false)])).unwrap();
    assert_eq!(ev[1], Ev::StreamError { stream_id: 1, code: PROTOCOL_ERROR }, "{ev:?}");
    // Too little at END_STREAM.
    h.recv(&post(3, Some(10))).unwrap();
    let ev = h.recv(&data(3, b"12345", true)).unwrap();
    assert_eq!(ev, vec![Ev::StreamError { stream_id: 3, code: PROTOCOL_ERROR }]);
    // Too little before trailers.
    h.recv(&post(5, Some(10))).unwrap();
    let ev = h.recv(&concat(&[data(5, b"12345", false), headers(5, &[("x-t", "1")], true)])).unwrap();
    assert_eq!(ev[1], Ev::StreamError { stream_id: 5, code: PROTOCOL_ERROR }, "{ev:?}");
    // END_STREAM on HEADERS with a non-zero content-length.
    let ev = h.recv(&headers_owned(7, &post_fields("/", "3"), true)).unwrap();
    assert!(ev.is_empty(), "{ev:?}");
    // Exactly right.
    h.recv(&post(9, Some(10))).unwrap();
    let ev = h.recv(&concat(&[data(9, b"12345", false), data(9, b"67890", true)])).unwrap();
    assert_eq!(body_of(&ev, 9), b"1234567890");
    let out = h.flush();
    assert_eq!(
        resets(&out),
        vec![(1, PROTOCOL_ERROR), (3, PROTOCOL_ERROR), (5, PROTOCOL_ERROR), (7, PROTOCOL_ERROR)]
    );
    // What the reset streams buffered was released.
    assert_eq!(h.conn.buffered(), 10);
}

// --- §5.5 extensions --------------------------------------------------------------------------

#[test]
fn rfc9113_5_5_unknown_frame_types_are_ignored() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, None)).unwrap();
    let input = concat(&[
        raw_frame(0xfa, 0xff, 0, b"connection-level"),
        raw_frame(0x20, 0, 1, b"on an open stream"),
        raw_frame(0x21, 0, 99, b"on an idle stream"),
        data(1, b"ok", true),
    ]);
    let ev = h.recv(&input).unwrap();
    assert_eq!(ev, vec![Ev::Data { stream_id: 1, data: b"ok".to_vec(), end_stream: true }]);
    assert!(h.flush().is_empty());
    // Stream 99 stayed idle: unknown frames do not open streams.
    h.recv(&get(3)).unwrap();
    assert_eq!(h.conn.stats().frames_received[h2flow_core::stats::UNKNOWN_KIND], 3);
}

// --- §6.8 GOAWAY ------------------------------------------------------------------------------

#[test]
fn rfc9113_6_8_goaway_received_is_an_event() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, None)).unwrap();
    let ev = h.recv(&goaway(0, ErrorCode::NO_ERROR.0, b"bye")).unwrap();
    assert_eq!(ev, vec![Ev::GoAway { last_stream_id: 0, code: 0 }]);
    assert!(!h.conn.is_done(), "stream 1 is still open");
    h.recv(&data(1, b"x", true)).unwrap();
    ok200(&mut h, 1);
    assert!(h.conn.is_done());
    assert!(!h.conn.is_closed());
}

#[test]
fn rfc9113_6_8_graceful_goaway_lets_open_streams_complete_and_ignores_later_ones() {
    let mut h = Harness::established(default_config());
    h.recv(&concat(&[post(1, None), get(3)])).unwrap();
    h.conn.goaway(ErrorCode::NO_ERROR, b"shutting down");
    let out = h.flush();
    assert_eq!(goaways(&out), vec![(3, 0)]);
    assert!(!h.conn.is_done());

    // Stream 5 was sent before the client saw our GOAWAY: ignored, and so are its frames.
    let ev = h.recv(&concat(&[post(5, None), data(5, b"ignored", false), window_update(5, 5)])).unwrap();
    assert!(ev.is_empty(), "{ev:?}");
    let ev = h.recv(&data(1, b"body", true)).unwrap();
    assert_eq!(body_of(&ev, 1), b"body");
    let out = h.flush();
    assert!(resets(&out).is_empty() && goaways(&out).is_empty(), "{out:?}");

    ok200(&mut h, 3);
    assert!(!h.conn.is_done());
    h.conn.send_headers(1, &[(b":status", b"200")], false).unwrap();
    h.conn.send_data(1, b"done", true).unwrap();
    assert!(h.conn.is_done());
    let out = h.flush();
    assert_eq!(datas(&out), vec![(1, 4, true)]);
}

// --- §5.1.2 concurrency -----------------------------------------------------------------------

#[test]
fn rfc9113_5_1_2_streams_beyond_max_concurrent_are_refused_and_accepted_ones_complete() {
    let mut cfg = default_config();
    cfg.max_concurrent_streams = 2;
    let mut h = Harness::established(cfg);
    let ev = h
        .recv(&concat(&[
            post(1, Some(4)),
            post(3, Some(4)),
            post(5, Some(4)),
            data(1, b"one!", true),
            data(5, b"five", true),
            data(3, b"thr", false),
        ]))
        .unwrap();
    let opened: Vec<u32> = ev
        .iter()
        .filter_map(|e| if let Ev::Headers { stream_id, .. } = e { Some(*stream_id) } else { None })
        .collect();
    assert_eq!(opened, vec![1, 3]);
    assert!(body_of(&ev, 5).is_empty());
    let out = h.flush();
    assert_eq!(resets(&out), vec![(5, REFUSED_STREAM)]);
    let ev = h.recv(&data(3, b"e", true)).unwrap();
    assert_eq!(body_of(&ev, 3), b"e");
    h.conn.consume(1, 4).unwrap();
    h.conn.consume(3, 4).unwrap();
    ok200(&mut h, 1);
    ok200(&mut h, 3);
    assert_eq!(h.conn.open_streams(), 0);
    assert_eq!(h.conn.stats().streams_refused, 1);
    // Closed streams free their slots.
    let ev = h.recv(&concat(&[get(7), get(9)])).unwrap();
    assert_eq!(ev.len(), 2);
    assert!(goaways(&h.flush()).is_empty());
}

#[test]
fn rfc9113_5_1_2_opening_over_the_limit_after_acking_gets_enhance_your_calm_and_accepted_streams_complete() {
    let mut cfg = default_config();
    cfg.max_concurrent_streams = 2;
    let burst = cfg.refused_streams.burst;
    let mut h = Harness::established(cfg);
    h.recv(&concat(&[post(1, None), post(3, None)])).unwrap();
    let mut input = Vec::new();
    for i in 0..burst + 5 {
        input.extend(get(5 + 2 * i));
    }
    let (ev, r) = h.feed(&input);
    r.unwrap();
    assert!(ev.is_empty());
    let out = h.flush();
    assert_eq!(resets(&out).len(), burst as usize + 1);
    assert!(resets(&out).iter().all(|&(_, c)| c == REFUSED_STREAM));
    assert_eq!(goaways(&out), vec![(3, ENHANCE_YOUR_CALM)]);
    assert_eq!(h.conn.stats().defences.refused_stream_flood, 1);
    assert!(!h.conn.is_closed());

    // The accepted streams are served in full.
    let ev = h.recv(&concat(&[data(1, b"a", true), data(3, b"b", true)])).unwrap();
    assert_eq!((body_of(&ev, 1), body_of(&ev, 3)), (b"a".to_vec(), b"b".to_vec()));
    ok200(&mut h, 1);
    h.conn.send_headers(3, &[(b":status", b"200")], false).unwrap();
    h.conn.send_data(3, b"ok", true).unwrap();
    let out = h.flush();
    assert_eq!(datas(&out), vec![(3, 2, true)]);
    assert!(h.conn.is_done());
}

#[test]
fn rfc9113_5_1_2_opening_over_the_limit_before_the_ack_is_only_refused() {
    // A client that sends its first requests before it has read our SETTINGS cannot know the
    // limit: refusing is enough.
    let mut cfg = default_config();
    cfg.max_concurrent_streams = 2;
    let mut h = Harness::unacked(cfg);
    let mut input = Vec::new();
    for i in 0..300 {
        input.extend(post(1 + 2 * i, None));
    }
    let ev = h.recv(&input).unwrap();
    assert_eq!(ev.len(), 2);
    let out = h.flush();
    assert_eq!(resets(&out).len(), 298);
    assert!(goaways(&out).is_empty());
    assert_eq!(h.conn.stats().defences.refused_stream_flood, 0);
}

/// Found by the audit for panics: debug data longer than the peer's max frame size made an
/// oversized GOAWAY (and past 2^24-1 octets a panic in the codec).
#[test]
fn rfc9113_6_8_goaway_debug_data_is_cut_to_the_peer_max_frame_size() {
    for (max_frame, debug_len) in [(16_384u32, 20_000usize), (20_000, 1 << 24)] {
        let mut h = Harness::established_with(default_config(), &[(setting::MAX_FRAME_SIZE, max_frame)]);
        h.conn.goaway(ErrorCode::NO_ERROR, &vec![b'd'; debug_len]);
        let out = h.flush();
        let debug = out.iter().find_map(|f| match f {
            Out::GoAway { debug, .. } => Some(debug.len()),
            _ => None,
        });
        assert_eq!(debug, Some(max_frame as usize - 8));
    }
}
