//! Back-pressure both ways: the engine stops asking for input while the application holds
//! `max_body_buffer` unconsumed bytes or `max_pipelined` requests wait (the caller stops reading
//! the socket: TCP's window is the flow control), its own input buffer stays bounded, and a
//! response to a client that does not read makes its sender wait.

mod common_http1;

use common_http1::*;
use h2flow_core::http1::{Config, Sent};

const READ: usize = 16 * 1024;

#[test]
fn an_upload_is_read_only_as_fast_as_the_application_consumes() {
    let cfg = Config { max_body_buffer: 64 * 1024, ..Config::default() };
    let mut h = Harness::with(cfg.clone());
    let body: Vec<u8> = (0..1024 * 1024).map(|i| (i % 253) as u8).collect();
    let wire = post("/up", &body);
    let mut sent = 0;
    let mut received = Vec::new();
    let mut app_holds = 0u64;
    let mut rounds = 0;
    while sent < wire.len() {
        rounds += 1;
        assert!(rounds < 10_000, "stalled");
        // The caller reads the socket only when the engine wants input.
        while h.conn.wants_input() && sent < wire.len() {
            let n = READ.min(wire.len() - sent);
            let events = h.recv(&wire[sent..sent + n]);
            sent += n;
            let (b, _) = body_of(&events, 1);
            app_holds += b.len() as u64;
            received.extend(b);
            assert!(h.conn.buffered() <= cfg.max_body_buffer + READ as u64, "bound: the limit plus one read");
            assert_eq!(h.conn.held_input(), 0, "body bytes are handed out, not held");
        }
        // The application consumes a little at a time.
        let n = app_holds.min(10_000);
        h.conn.consume(1, n).unwrap();
        app_holds -= n;
    }
    assert_eq!(received, body);
    assert!(h.conn.stats().peak_buffered <= cfg.max_body_buffer + READ as u64);
    assert!(h.conn.stats().input_pauses > 10, "paused {} times", h.conn.stats().input_pauses);
}

#[test]
fn no_next_request_is_read_while_the_body_buffer_is_full() {
    // Found by the soak: between two requests the engine asked for input although the
    // application held max_body_buffer bytes, so the next request's body was handed out too.
    let mut h = Harness::with(Config { max_body_buffer: 100, ..Config::default() });
    h.recv(&post("/1", &[b'a'; 150]));
    assert_eq!(h.conn.buffered(), 150);
    assert!(!h.conn.wants_input(), "the next head may carry a body");
    h.conn.consume(1, 100).unwrap();
    assert!(h.conn.wants_input());
}

#[test]
fn pipelined_input_held_back_is_bounded_by_one_read() {
    let cfg = Config { max_pipelined: 4, ..Config::default() };
    let mut h = Harness::with(cfg);
    let mut wire = Vec::new();
    for _ in 0..2000 {
        wire.extend(get("/"));
    }
    let mut sent = 0;
    let mut next_answer = 1u64;
    let mut announced = 0u64;
    while next_answer <= 2000 {
        while h.conn.wants_input() && sent < wire.len() {
            let n = READ.min(wire.len() - sent);
            announced += request_ids(&h.recv(&wire[sent..sent + n])).len() as u64;
            sent += n;
            assert!(h.conn.held_input() <= READ, "held {}", h.conn.held_input());
            assert!(h.conn.pipelined() <= 4);
        }
        assert!(next_answer <= announced, "stalled at {next_answer}");
        h.respond(next_answer, "204", b"");
        next_answer += 1;
        let (_, events) = h.flush_events();
        announced += request_ids(&events).len() as u64;
    }
    assert_eq!(announced, 2000);
    assert_eq!(responses(&h.written).len(), 2000);
}

#[test]
fn a_sender_waits_until_its_bytes_are_handed_out() {
    let cfg = Config { max_send_queue: 10_000, ..Config::default() };
    let mut h = Harness::with(cfg);
    h.recv(&get("/"));
    h.start_streaming(1, "200");
    let Sent::Queued(q) = h.conn.send_data(1, &[b'a'; 6000], false).unwrap() else { panic!() };
    assert!(q < 10_000);
    let Sent::Queued(q) = h.conn.send_data(1, &[b'a'; 6000], false).unwrap() else { panic!() };
    assert!(q >= 10_000, "over the limit: the sender waits");
    let (out, events) = h.flush_events();
    assert!(out.len() > 12_000);
    assert_eq!(events, [Ev::Writable { id: 1 }]);
    assert_eq!(h.conn.queued(), 0);
    // Below the limit: no event.
    h.conn.send_data(1, b"small", false).unwrap();
    assert!(h.flush_events().1.is_empty());
}

#[test]
fn a_response_waiting_behind_another_is_bounded_too() {
    let cfg = Config { max_send_queue: 10_000, ..Config::default() };
    let mut h = Harness::with(cfg);
    let mut input = get("/1");
    input.extend(get("/2"));
    h.recv(&input);
    h.start_streaming(2, "200");
    let Sent::Queued(q) = h.conn.send_data(2, &[b'b'; 12_000], false).unwrap() else { panic!() };
    assert!(q >= 12_000, "all of it waits for response 1");
    assert!(h.flush_events().1.is_empty(), "not writable before its turn");
    h.respond(1, "200", b"one");
    let (out, events) = h.flush_events();
    assert_eq!(events, [Ev::Writable { id: 2 }]);
    assert!(out.len() > 12_000);
    assert_eq!(h.conn.stats().peak_queued, out.len() as u64);
}

#[test]
fn an_unread_body_is_discarded_up_to_a_budget_then_the_connection_closes() {
    let cfg = Config { max_discard: 1000, ..Config::default() };
    // Chunked: the remaining length is unknown when the response goes out.
    let mut h = Harness::with(cfg.clone());
    h.recv(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n");
    h.respond(1, "200", b"early");
    assert!(!response(&h.flush()).closes());
    assert!(h.conn.wants_input(), "the rest is read and thrown away");
    h.recv(&chunked(&[b'x'; 900], 300, ""));
    assert!(h.conn.wants_input());
    assert_eq!(request_ids(&h.recv(&get("/next"))), [2], "the connection was kept");
    h.respond(2, "200", b"");
    h.flush();
    let mut h = Harness::with(cfg.clone());
    h.recv(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    h.respond(1, "200", b"early");
    h.flush();
    h.recv(&chunked(&[b'x'; 2000], 500, "")[..1500]);
    assert!(!h.conn.wants_input(), "over the budget: the connection closes");
    assert!(h.conn.is_done());
    // Content-Length: a remainder over the budget closes at once, and the response says so.
    let mut h = Harness::with(cfg);
    h.recv(&post("/", &[b'x'; 5000])[..100]);
    h.respond(1, "413", b"");
    assert!(response(&h.flush()).closes());
    assert!(h.conn.is_done());
}
