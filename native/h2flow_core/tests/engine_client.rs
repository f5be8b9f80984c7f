//! The engine in the client role (RFC 9113 §3.4, §5.1.1, §5.1.2, §6.5.2, §6.6, §6.8, §8.1,
//! §8.3.2 from the client's side): the preface, requests within the server's concurrency
//! limit, responses (informational, final, trailers), what a response must not do, and the
//! same crediting of bodies as in the server role (only what the application read).

mod common_engine;

use common_engine::*;
use h2flow_core::frame::{kind, setting};
use h2flow_core::{Config, ErrorCode, Request, SendError, Sent};

fn get_fields(path: &str) -> Vec<(&'static [u8], Vec<u8>)> {
    vec![
        (b":method", b"GET".to_vec()),
        (b":scheme", b"http".to_vec()),
        (b":authority", b"localhost".to_vec()),
        (b":path", path.as_bytes().to_vec()),
    ]
}

fn send(h: &mut Harness, method: &str, end_stream: bool) -> Result<Request, SendError> {
    let fields: Vec<(&[u8], &[u8])> = vec![
        (b":method", method.as_bytes()),
        (b":scheme", b"http"),
        (b":authority", b"localhost"),
        (b":path", b"/"),
        (b"user-agent", b"test"),
    ];
    h.conn.send_request(&fields, end_stream)
}

fn open(h: &mut Harness, method: &str, end_stream: bool) -> u32 {
    match send(h, method, end_stream) {
        Ok(Request::Opened(id)) => id,
        other => panic!("request not opened: {other:?}"),
    }
}

fn response(id: u32, status: &str, fields: &[(&str, &str)], end_stream: bool) -> Vec<u8> {
    let mut all = vec![(":status", status)];
    all.extend_from_slice(fields);
    headers(id, &all, end_stream)
}

#[test]
fn the_preface_comes_first_with_push_disabled() {
    let mut h = Harness::client(Config::default());
    let out = h.flush();
    match &out[0] {
        Out::Settings { ack: false, params } => {
            assert_eq!(params[0], (setting::ENABLE_PUSH, 0), "SETTINGS_ENABLE_PUSH 0 (RFC 9113 6.5.2)");
            assert!(params.iter().all(|(k, _)| *k != setting::MAX_CONCURRENT_STREAMS));
        }
        other => panic!("the first frame is not SETTINGS: {other:?}"),
    }
    assert_eq!(out[1], Out::WindowUpdate { stream_id: 0, increment: (1 << 20) - 65_535 });
    assert_eq!(out.len(), 2);
}

#[test]
fn a_request_and_its_response() {
    let mut h = Harness::client_established(Config::default(), &[]);
    let id = open(&mut h, "GET", true);
    assert_eq!(id, 1);
    let out = h.flush();
    let blocks = ResponseDecoder::new().decode(&out);
    assert_eq!(blocks[0].0, 1);
    assert_eq!(blocks[0].1[0], (":method".into(), "GET".into()));
    assert!(matches!(out[0], Out::Headers { stream_id: 1, end_stream: true, .. }));

    let input = concat(&[response(1, "200", &[("content-length", "5")], false), data(1, b"hello", true)]);
    let events = h.recv(&input).unwrap();
    assert!(matches!(&events[0], Ev::Response { stream_id: 1, status: 200, end_stream: false, .. }));
    assert_eq!(events[1], Ev::Data { stream_id: 1, data: b"hello".to_vec(), end_stream: true });
    assert_eq!(h.conn.open_streams(), 0, "both ends are closed");
    assert_eq!(h.conn.buffered(), 5, "held until the application reads it");
    assert_eq!(h.conn.read(1, 100), Some(h2flow_core::scheduler::ReadStatus::Fin));
    assert_eq!(h.conn.buffered(), 0);
    assert_eq!(open(&mut h, "GET", true), 3, "client streams are odd and increase");
}

#[test]
fn request_bodies_go_out_within_the_servers_windows() {
    let mut h = Harness::client_established(Config::default(), &[(setting::INITIAL_WINDOW_SIZE, 1000)]);
    let id = open(&mut h, "POST", false);
    assert_eq!(h.conn.send_body(id, &[7; 3000], true), Ok(Sent::Accepted { taken: 3000, blocked: false }));
    let out = h.flush();
    assert_eq!(datas(&out), vec![(1, 1000, false)]);
    h.recv(&window_update(1, 5000)).unwrap();
    let out = h.flush();
    assert_eq!(datas(&out), vec![(1, 2000, true)]);
    // Trailers on a stream whose request body is still open.
    let id = open(&mut h, "POST", false);
    assert_eq!(h.conn.send_headers(id, &[(b"x-sum", b"1")], true), Ok(Sent::Queued(0)));
    let out = h.flush();
    assert!(matches!(out[0], Out::Headers { stream_id: 3, end_stream: false, .. }), "{out:?}");
    assert!(matches!(out[1], Out::Headers { stream_id: 3, end_stream: true, .. }), "{out:?}");
}

#[test]
fn responses_are_credited_only_when_read() {
    let cfg = Config::default();
    let window = cfg.window.initial_stream_window as usize;
    let mut h = Harness::client_established(cfg, &[]);
    let id = open(&mut h, "GET", true);
    h.flush();
    h.recv(&concat(&[response(id, "200", &[], false), body(id, window, false)])).unwrap();
    assert!(window_updates(&h.flush()).is_empty(), "nothing read, nothing credited");
    assert_eq!(h.conn.buffered(), window as u64);
    assert_eq!(h.conn.read(id, 1), Some(h2flow_core::scheduler::ReadStatus::More));
    let credits = window_updates(&h.flush());
    assert_eq!(credits, vec![(id, window as u32)], "one stream credit for the whole window read");
    // The server may not send past the window it was given.
    let (code, _) = h.expect_connection_error(&body(id, (1 << 20) + 1, false));
    assert_eq!(code, ErrorCode::FLOW_CONTROL_ERROR.0);
}

#[test]
fn cancelling_a_complete_response_releases_what_was_not_read() {
    // The whole response came (both sides ended the stream) and the application gave up on it
    // unread (a body too large, a caller that cancelled or exited): its bytes are released and
    // credited to the connection, as for a stream reset while open.
    let cfg = Config::default();
    let window = cfg.window.initial_stream_window as usize;
    let mut h = Harness::client_established(cfg, &[]);
    let id = open(&mut h, "GET", true);
    h.flush();
    h.recv(&concat(&[response(id, "200", &[], false), body(id, window, true)])).unwrap();
    assert_eq!(h.conn.open_streams(), 0);
    assert_eq!(h.conn.buffered(), window as u64);
    assert!(window_updates(&h.flush()).is_empty(), "nothing read, nothing credited");
    assert_eq!(h.conn.reset_stream(id, ErrorCode::CANCEL), Ok(Sent::StreamClosed));
    assert_eq!(h.conn.buffered(), 0);
    let out = h.flush();
    assert!(!out.iter().any(|f| matches!(f, Out::RstStream { .. })), "nothing to reset on the wire: {out:?}");
    // Released, they count toward the connection's credit: with a second window read, and a
    // third response of unknown length to come (rule 5: credit only once it may be needed),
    // the connection is credited for both.
    let second = open(&mut h, "GET", true);
    h.flush();
    h.recv(&concat(&[response(second, "200", &[], false), body(second, window, true)])).unwrap();
    assert_eq!(h.conn.read(second, 1), Some(h2flow_core::scheduler::ReadStatus::Fin));
    assert!(window_updates(&h.flush()).is_empty());
    let third = open(&mut h, "GET", true);
    h.recv(&response(third, "200", &[], false)).unwrap();
    assert_eq!(window_updates(&h.flush()), vec![(0, 2 * window as u32)]);
}

#[test]
fn requests_beyond_the_servers_limit_wait() {
    let mut h = Harness::client_established(Config::default(), &[(setting::MAX_CONCURRENT_STREAMS, 2)]);
    let a = open(&mut h, "GET", true);
    let b = open(&mut h, "GET", true);
    assert_eq!(send(&mut h, "GET", true), Ok(Request::Wait), "RFC 9113 5.1.2");
    let before = h.conn.stats().frames_sent;
    assert_eq!(send(&mut h, "GET", true), Ok(Request::Wait));
    assert_eq!(h.conn.stats().frames_sent, before, "a waiting request writes nothing");
    h.flush();
    h.recv(&response(a, "204", &[], true)).unwrap();
    assert_eq!(open(&mut h, "GET", true), 5, "a stream closed: the next request goes");
    assert_eq!(send(&mut h, "GET", true), Ok(Request::Wait));
    // The server lowers the limit: no new stream until we are under it.
    h.recv(&settings(&[(setting::MAX_CONCURRENT_STREAMS, 1)])).unwrap();
    h.recv(&response(b, "204", &[], true)).unwrap();
    assert_eq!(send(&mut h, "GET", true), Ok(Request::Wait));
    h.recv(&response(5, "204", &[], true)).unwrap();
    assert_eq!(open(&mut h, "GET", true), 7);
}

#[test]
fn until_the_servers_settings_a_client_assumes_100_streams() {
    let mut h = Harness::client(Config::default());
    h.flush();
    for _ in 0..100 {
        open(&mut h, "GET", true);
    }
    assert_eq!(send(&mut h, "GET", true), Ok(Request::Wait));
    // A SETTINGS without the parameter means no limit (RFC 9113 6.5.2): ours applies.
    h.recv(&settings(&[])).unwrap();
    assert!(matches!(send(&mut h, "GET", true), Ok(Request::Wait)), "max_concurrent_streams 100");
    let mut h = Harness::client(Config { max_concurrent_streams: 300, ..Config::default() });
    h.recv(&settings(&[])).unwrap();
    for _ in 0..300 {
        open(&mut h, "GET", true);
    }
    assert_eq!(send(&mut h, "GET", true), Ok(Request::Wait));
}

#[test]
fn informational_responses_then_the_final_one_then_trailers() {
    let mut h = Harness::client_established(Config::default(), &[]);
    let id = open(&mut h, "GET", true);
    let input = concat(&[
        response(id, "103", &[("link", "</a.css>")], false),
        response(id, "200", &[], false),
        data(id, b"abc", false),
        headers(id, &[("x-checksum", "1")], true),
    ]);
    let events = h.recv(&input).unwrap();
    assert!(matches!(&events[0], Ev::Response { status: 103, end_stream: false, .. }));
    assert!(matches!(&events[1], Ev::Response { status: 200, end_stream: false, .. }));
    assert!(matches!(&events[2], Ev::Data { .. }));
    assert_eq!(events[3], Ev::Trailers { stream_id: id, fields: vec![("x-checksum".into(), "1".into())] });
}

/// Feeds a response that must be a stream error: RST_STREAM PROTOCOL_ERROR, reported.
fn malformed(input: impl Fn(u32) -> Vec<u8>, method: &str) {
    let mut h = Harness::client_established(Config::default(), &[]);
    let id = open(&mut h, method, true);
    h.flush();
    let events = h.recv(&input(id)).unwrap();
    assert!(
        events.contains(&Ev::StreamError { stream_id: id, code: ErrorCode::PROTOCOL_ERROR.0 }),
        "{events:?}"
    );
    assert_eq!(resets(&h.flush()), vec![(id, ErrorCode::PROTOCOL_ERROR.0)]);
    assert_eq!(h.conn.open_streams(), 0);
    assert!(!h.conn.is_closed(), "a stream error, not a connection error");
}

#[test]
fn malformed_responses_are_stream_errors() {
    // RFC 9113 8.1: DATA before HEADERS; 8.3.2: :status required, alone; 8.1.1: content-length.
    malformed(|id| data(id, b"x", true), "GET");
    malformed(|id| headers(id, &[("content-type", "text/plain")], true), "GET");
    malformed(|id| headers(id, &[(":status", "200"), (":path", "/")], true), "GET");
    malformed(|id| headers(id, &[(":status", "2000")], true), "GET");
    malformed(|id| headers(id, &[("x", "1"), (":status", "200")], true), "GET");
    malformed(|id| headers(id, &[(":status", "200"), ("connection", "close")], true), "GET");
    malformed(|id| headers(id, &[(":status", "200"), ("Upper", "1")], true), "GET");
    malformed(|id| response(id, "100", &[], true), "GET");
    malformed(|id| response(id, "101", &[], false), "GET");
    malformed(|id| response(id, "200", &[("content-length", "3")], true), "GET");
    malformed(
        |id| concat(&[response(id, "200", &[("content-length", "3")], false), data(id, b"ab", true)]),
        "GET",
    );
    malformed(
        |id| concat(&[response(id, "200", &[("content-length", "1")], false), data(id, b"ab", false)]),
        "GET",
    );
    // A second final response without END_STREAM is not trailers.
    malformed(|id| concat(&[response(id, "200", &[], false), response(id, "200", &[], false)]), "GET");
    // Content on a response that has none: HEAD, 204, 304 (RFC 9110 9.3.2, 15.3.5, 15.4.5).
    malformed(
        |id| concat(&[response(id, "200", &[("content-length", "3")], false), data(id, b"abc", true)]),
        "HEAD",
    );
    malformed(|id| concat(&[response(id, "204", &[], false), data(id, b"abc", true)]), "GET");
}

#[test]
fn responses_without_content_keep_their_content_length() {
    let mut h = Harness::client_established(Config::default(), &[]);
    let id = open(&mut h, "HEAD", true);
    let events = h.recv(&response(id, "200", &[("content-length", "1000")], true)).unwrap();
    assert!(matches!(&events[0], Ev::Response { status: 200, end_stream: true, fields, .. }
        if fields.contains(&("content-length".into(), "1000".into()))));
    let id = open(&mut h, "GET", true);
    let input = concat(&[response(id, "304", &[("content-length", "10")], false), data(id, b"", true)]);
    assert_eq!(h.recv(&input).unwrap().len(), 2);
    assert!(resets(&h.flush()).is_empty());
}

#[test]
fn push_is_refused() {
    let mut h = Harness::client_established(Config::default(), &[]);
    let id = open(&mut h, "GET", true);
    let (code, out) = h.expect_connection_error(&push_promise(id, 2, &[(":method", "GET")]));
    assert_eq!(code, ErrorCode::PROTOCOL_ERROR.0, "RFC 9113 6.6: push was disabled");
    assert_eq!(goaways(&out)[0].0, 0, "a client's GOAWAY names no server stream");
    let mut h = Harness::client(Config::default());
    h.flush();
    let (code, _) = h.expect_connection_error(&settings(&[(setting::ENABLE_PUSH, 1)]));
    assert_eq!(code, ErrorCode::PROTOCOL_ERROR.0, "RFC 9113 6.5.2: a server cannot enable push");
}

#[test]
fn a_server_opens_no_stream() {
    for id in [1, 2, 3] {
        let mut h = Harness::client_established(Config::default(), &[]);
        if id == 3 {
            open(&mut h, "GET", true);
        }
        let (code, _) = h.expect_connection_error(&response(id + 2 * (id == 3) as u32, "200", &[], true));
        assert_eq!(code, ErrorCode::PROTOCOL_ERROR.0, "HEADERS on stream {id}");
    }
    let mut h = Harness::client_established(Config::default(), &[]);
    let (code, _) = h.expect_connection_error(&data(1, b"x", false));
    assert_eq!(code, ErrorCode::PROTOCOL_ERROR.0, "DATA on an idle stream");
}

#[test]
fn the_servers_preface_must_be_settings() {
    let mut h = Harness::client(Config::default());
    h.flush();
    let (_, r) = h.feed(&ping([0; 8]));
    let e = r.unwrap_err();
    assert_eq!(e.code(), ErrorCode::PROTOCOL_ERROR);
    assert!(e.message().contains("server connection preface"), "{e}");
}

#[test]
fn a_goaway_fails_the_streams_it_did_not_process() {
    let mut h = Harness::client_established(Config::default(), &[]);
    let ids: Vec<u32> = (0..3).map(|_| open(&mut h, "GET", true)).collect();
    h.flush();
    let events = h.recv(&goaway(1, 0, b"bye")).unwrap();
    assert_eq!(
        events,
        vec![
            Ev::GoAway { last_stream_id: 1, code: 0 },
            Ev::StreamReset { stream_id: ids[1], code: ErrorCode::REFUSED_STREAM.0 },
            Ev::StreamReset { stream_id: ids[2], code: ErrorCode::REFUSED_STREAM.0 },
        ]
    );
    assert_eq!(send(&mut h, "GET", true), Ok(Request::Closed), "no stream after a GOAWAY (RFC 9113 6.8)");
    assert!(!h.conn.is_done(), "stream 1 may still complete");
    h.recv(&response(1, "200", &[], true)).unwrap();
    assert!(h.conn.is_done());
    assert!(h.flush().iter().all(|f| !matches!(f, Out::RstStream { .. })));
}

#[test]
fn a_clients_goaway_names_no_stream_and_ends_its_requests() {
    let mut h = Harness::client_established(Config::default(), &[]);
    open(&mut h, "GET", true);
    h.conn.goaway(ErrorCode::NO_ERROR, b"");
    assert_eq!(goaways(&h.flush()), vec![(0, 0)]);
    assert_eq!(send(&mut h, "GET", true), Ok(Request::Closed));
}

#[test]
fn server_resets_are_reported() {
    let mut h = Harness::client_established(Config::default(), &[]);
    let id = open(&mut h, "POST", false);
    let events = h.recv(&rst_stream(id, ErrorCode::REFUSED_STREAM.0)).unwrap();
    assert_eq!(events, vec![Ev::StreamReset { stream_id: id, code: ErrorCode::REFUSED_STREAM.0 }]);
    assert_eq!(h.conn.send_body(id, b"x", true), Ok(Sent::StreamClosed));
    // Thousands of them are no attack on a client (Rapid Reset is one on servers).
    let cfg = Config { max_concurrent_streams: 5000, ..Config::default() };
    let mut h = Harness::client_established(cfg, &[(setting::MAX_CONCURRENT_STREAMS, 5000)]);
    let mut input = Vec::new();
    for _ in 0..3000 {
        let id = open(&mut h, "GET", true);
        input.extend(rst_stream(id, ErrorCode::REFUSED_STREAM.0));
    }
    assert!(h.recv(&input).is_ok());
}

#[test]
fn misuse_is_refused() {
    let mut h = Harness::client_established(Config::default(), &[]);
    let bad: [&[(&[u8], &[u8])]; 5] = [
        &[(b":method", b"GET"), (b":path", b"/")],
        &[(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"Bad", b"1")],
        &[(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"connection", b"close")],
        &[(b":method", b"GET"), (b"x", b"1"), (b":scheme", b"http"), (b":path", b"/")],
        &[(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"te", b"gzip")],
    ];
    for fields in bad {
        assert!(matches!(h.conn.send_request(fields, true), Err(SendError::Misuse(_))), "{fields:?}");
    }
    let ok: &[(&[u8], &[u8])] =
        &[(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"te", b"trailers")];
    assert!(matches!(h.conn.send_request(ok, true), Ok(Request::Opened(1))));
    assert_eq!(h.conn.stats().frames_sent[kind::HEADERS as usize], 1, "nothing written for the bad ones");
    let mut server = Harness::new(Config::default());
    assert!(server.conn.send_request(ok, true).is_err(), "a server sends no request");
    let fields: Vec<(&[u8], Vec<u8>)> = get_fields("/a");
    let refs: Vec<(&[u8], &[u8])> = fields.iter().map(|(n, v)| (*n, &v[..])).collect();
    assert!(matches!(h.conn.send_request(&refs, true), Ok(Request::Opened(3))));
}

#[test]
fn defences_hold_in_the_client_role() {
    // A CONTINUATION flood on a response.
    let mut h = Harness::client_established(Config::default(), &[]);
    let id = open(&mut h, "GET", true);
    let mut input = headers_frame(id, &literal_block(&[(":status", "200")]), false, false);
    for _ in 0..20 {
        input.extend(continuation(id, &literal_block(&[("x", "y")]), false));
    }
    let (code, _) = h.expect_connection_error(&input);
    assert_eq!(code, ErrorCode::ENHANCE_YOUR_CALM.0);
    assert_eq!(h.conn.stats().defences.continuation_flood, 1);
    // A PING flood the client does not get to answer.
    let mut h = Harness::client_established(Config::default(), &[]);
    let input: Vec<u8> = (0..1001).flat_map(|_| ping([1; 8])).collect();
    let (code, _) = h.expect_connection_error(&input);
    assert_eq!(code, ErrorCode::ENHANCE_YOUR_CALM.0);
    // An HPACK bomb: a large header list costs no memory and only its stream.
    let mut h = Harness::client_established(Config { max_header_list_size: 1000, ..Config::default() }, &[]);
    let id = open(&mut h, "GET", true);
    let big = "v".repeat(2000);
    let events = h.recv(&response(id, "200", &[("x-big", &big)], true)).unwrap();
    assert_eq!(events, vec![Ev::StreamError { stream_id: id, code: ErrorCode::PROTOCOL_ERROR.0 }]);
    assert_eq!(h.conn.stats().defences.header_list_too_large, 1);
    // Empty DATA frames.
    let mut h = Harness::client_established(Config::default(), &[]);
    let id = open(&mut h, "GET", true);
    let mut input = response(id, "200", &[], false);
    for _ in 0..200 {
        input.extend(data(id, b"", false));
    }
    let (code, _) = h.expect_connection_error(&input);
    assert_eq!(code, ErrorCode::ENHANCE_YOUR_CALM.0);
}
