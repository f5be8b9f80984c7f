//! Persistence (RFC 9112 §9.3): keep-alive, pipelined requests answered in order with a bound
//! on how many wait, `Connection: close`, HTTP/1.0's rules, graceful shutdown, and the header
//! and keep-alive timeouts.

mod common_http1;

use std::time::Duration;

use common_http1::*;
use h2flow_core::http1::{Config, Reject, Sent};

#[test]
fn requests_follow_each_other_on_one_connection() {
    let mut h = Harness::new();
    for id in 1..=3u64 {
        assert_eq!(request_ids(&h.recv(&get("/"))), [id]);
        h.respond(id, "200", format!("response {id}").as_bytes());
        let r = response(&h.flush());
        assert_eq!(r.body, format!("response {id}").as_bytes());
        assert!(!r.closes());
    }
    assert!(h.conn.wants_input());
    assert_eq!(h.conn.stats().responses, 3);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut h = Harness::new();
    let mut input = get("/1");
    input.extend(post("/2", b"body2"));
    input.extend(get("/3"));
    let events = h.recv(&input);
    assert_eq!(request_ids(&events), [1, 2, 3]);
    assert_eq!(h.conn.pipelined(), 3);
    // The third and the second answer first: held until the first is complete.
    h.respond(3, "200", b"three");
    h.start_streaming(2, "200");
    h.conn.send_data(2, b"tw", false).unwrap();
    assert!(h.flush().is_empty(), "nothing before response 1");
    assert!(h.conn.queued() > 0, "queued counts held responses");
    h.start_streaming(1, "200");
    h.conn.send_data(1, b"one", false).unwrap();
    let out = h.flush();
    assert!(find(&out, b"tw").is_none() && find(&out, b"three").is_none());
    h.conn.send_data(1, b"!", true).unwrap();
    h.conn.send_data(2, b"o", true).unwrap();
    h.flush();
    let r = responses(&h.written);
    let bodies: Vec<&[u8]> = r.iter().map(|r| r.body.as_slice()).collect();
    assert_eq!(bodies, [&b"one!"[..], b"two", b"three"]);
    assert_eq!(h.conn.pipelined(), 0);
    assert_eq!(h.conn.queued(), 0);
}

#[test]
fn the_pipeline_bound_stops_parsing_until_a_response_completes() {
    let mut h = Harness::with(Config { max_pipelined: 2, ..Config::default() });
    let mut input = Vec::new();
    for i in 1..=5 {
        input.extend(get(&format!("/{i}")));
    }
    let events = h.recv(&input);
    assert_eq!(request_ids(&events), [1, 2]);
    assert!(!h.conn.wants_input(), "full: the socket is not read");
    assert!(h.conn.held_input() > 0);
    assert!(!h.conn.has_pending_input(), "nothing can be done with it yet");
    let mut answered = Vec::new();
    let mut next = 1;
    while next <= 5 {
        h.respond(next, "200", format!("{next}").as_bytes());
        answered.push(next);
        next += 1;
        let (_, events) = h.flush_events();
        for id in request_ids(&events) {
            assert!(h.conn.pipelined() <= 2);
            assert!(id > *answered.last().unwrap());
        }
    }
    let bodies: Vec<String> =
        responses(&h.written).iter().map(|r| String::from_utf8(r.body.clone()).unwrap()).collect();
    assert_eq!(bodies, ["1", "2", "3", "4", "5"]);
    assert!(h.conn.wants_input());
    assert_eq!(h.conn.held_input(), 0);
    assert_eq!(h.conn.stats().peak_pipelined, 2);
}

#[test]
fn connection_close_from_the_client_is_honoured() {
    let mut h = Harness::new();
    let mut input = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_vec();
    input.extend(get("/never"));
    let events = h.recv(&input);
    assert_eq!(request_ids(&events), [1], "RFC 9112 9.6: no request after close is processed");
    assert!(!h.conn.wants_input());
    h.respond(1, "200", b"bye");
    let r = response(&h.flush());
    assert!(r.closes());
    assert!(h.conn.is_done());
}

#[test]
fn http10_persists_only_when_asked_and_framed() {
    // Without keep-alive: closed after the response.
    let mut h = Harness::new();
    h.recv(b"GET / HTTP/1.0\r\n\r\n");
    h.respond(1, "200", b"x");
    assert!(response(&h.flush()).closes());
    assert!(h.conn.is_done());
    // With keep-alive and a length: the response says keep-alive, and the next request is read.
    let mut h = Harness::new();
    h.recv(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    h.respond(1, "200", b"x");
    let r = response(&h.flush());
    assert_eq!(r.header("connection"), Some("keep-alive"));
    assert!(!h.conn.is_done());
    assert_eq!(request_ids(&h.recv(b"GET /2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")), [2]);
    // HTTP/1.1 Connection: close wins over keep-alive.
    let mut h = Harness::new();
    h.recv(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n");
    h.respond(1, "200", b"x");
    assert!(response(&h.flush()).closes());
}

#[test]
fn a_response_that_closes_cancels_the_requests_after_it() {
    let mut h = Harness::new();
    let mut input = get("/1");
    input.extend(get("/2"));
    input.extend(get("/3"));
    h.recv(&input);
    h.respond(2, "200", b"two");
    let fields: Vec<(&[u8], &[u8])> =
        vec![(b":status", b"503"), (b"connection", b"close"), (b"content-length", b"0")];
    h.conn.send_headers(1, &fields, true).unwrap();
    let (out, events) = h.flush_events();
    assert_eq!(events, [Ev::Cancelled { id: 2 }, Ev::Cancelled { id: 3 }]);
    let r = responses(&out);
    assert_eq!(r.len(), 1);
    assert!(r[0].closes());
    assert!(h.conn.is_done());
    assert_eq!(h.conn.send_data(3, b"x", true), Ok(Sent::StreamClosed));
    assert_eq!(h.conn.stats().cancelled, 2);
    assert_eq!(h.conn.stats().writes_to_closed, 1);
}

#[test]
fn shutdown_lets_announced_requests_finish() {
    let mut h = Harness::new();
    h.conn.shutdown();
    assert!(h.conn.is_done(), "idle: done at once");

    let mut h = Harness::new();
    h.recv(&get("/"));
    h.recv(b"GET /partial HTTP/1.1\r\n");
    h.conn.shutdown();
    assert!(!h.conn.is_done());
    assert!(!h.conn.wants_input());
    h.respond(1, "200", b"last");
    let r = response(&h.flush());
    assert!(r.closes(), "the last response says close");
    assert!(h.conn.is_done());
}

#[test]
fn shutdown_while_a_body_arrives_reads_it_to_the_end() {
    let mut h = Harness::new();
    let input = post("/", b"0123456789");
    h.recv(&input[..input.len() - 4]);
    h.conn.shutdown();
    assert!(h.conn.wants_input());
    let events = h.recv(&input[input.len() - 4..]);
    assert_eq!(body_of(&events, 1), (b"6789".to_vec(), true));
    assert!(!h.conn.wants_input());
    h.respond(1, "200", b"");
    assert!(response(&h.flush()).closes());
    assert!(h.conn.is_done());
}

#[test]
fn a_slow_head_gets_408_and_the_connection_closes() {
    let cfg = Config::default();
    let mut h = Harness::with(cfg.clone());
    // The first request's clock starts with the connection.
    assert_eq!(h.conn.deadline(), Some(h.now + cfg.header_timeout));
    h.advance(Duration::from_secs(3));
    h.recv(b"GET / HTTP/1.1\r\nHost: a\r\n");
    h.advance(Duration::from_secs(7));
    h.conn.check_timeouts(h.now).unwrap();
    h.advance(Duration::from_millis(1));
    let e = h.conn.check_timeouts(h.now).unwrap_err();
    assert_eq!((e.kind, e.status()), (Reject::HeaderTimeout, 408));
    let r = response(&h.flush());
    assert_eq!(r.status, 408);
    assert!(r.closes());
    assert!(h.conn.is_done());
    assert_eq!(h.conn.stats().rejected(Reject::HeaderTimeout), 1);
}

#[test]
fn a_connection_that_sends_nothing_is_closed_silently() {
    let mut h = Harness::new();
    h.advance(Duration::from_secs(11));
    h.conn.check_timeouts(h.now).unwrap();
    assert!(h.flush().is_empty());
    assert!(h.conn.is_done());
    assert_eq!(h.conn.stats().idle_timeouts, 1);
}

#[test]
fn the_next_head_gets_its_own_clock_and_idle_connections_time_out() {
    let cfg = Config::default();
    let mut h = Harness::with(cfg.clone());
    h.recv(&get("/"));
    assert_eq!(h.conn.deadline(), None, "a request in progress is the application's business");
    h.advance(Duration::from_secs(30));
    h.conn.check_timeouts(h.now).unwrap();
    h.respond(1, "200", b"");
    h.flush();
    assert_eq!(h.conn.deadline(), Some(h.now + cfg.keepalive_timeout));
    h.advance(Duration::from_secs(20));
    // A byte of the next head starts the header clock, and stops the idle one.
    h.recv(b"G");
    assert_eq!(h.conn.deadline(), Some(h.now + cfg.header_timeout));
    h.recv(b"ET / HTTP/1.1\r\nHost: a\r\n\r\n");
    h.respond(2, "200", b"");
    h.flush();
    h.advance(cfg.keepalive_timeout);
    h.conn.check_timeouts(h.now).unwrap();
    assert!(!h.conn.is_done());
    h.advance(Duration::from_millis(1));
    h.conn.check_timeouts(h.now).unwrap();
    assert!(h.conn.is_done());
    assert!(h.flush().is_empty());
}
