//! The HTTP/1.1 engine's read model, the same as HTTP/2's (the scheduler's rule 8): a read
//! registered with a length gets every byte held at once and what arrives while it waits, and
//! completes with `ReadDone` when the body ends or the length is reached; held bytes bound the
//! input; bounded sends (`send_body`).

mod common_http1;

use common_http1::*;
use h2flow_core::http1::{Config, Event, ReadStatus, Sent};

fn head(path: &str, len: usize) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: {len}\r\n\r\n").into_bytes()
}

#[test]
fn the_request_event_carries_the_content_length_as_framed() {
    let mut h = Harness::new();
    h.conn.recv(&post("/", b"abc"), h.now).unwrap();
    let events = h.conn.take_events();
    assert!(matches!(events[0], Event::Request { content_length: Some(3), end_stream: false, .. }));
    h.respond(1, "200", b"");
    h.conn.recv(&post_chunked("/", b"abc", 2, ""), h.now).unwrap();
    let events = h.conn.take_events();
    assert!(matches!(events[0], Event::Request { id: 2, content_length: None, .. }), "{events:?}");
    h.respond(2, "200", b"");
    h.conn.recv(&get("/"), h.now).unwrap();
    let events = h.conn.take_events();
    assert!(matches!(events[0], Event::Request { content_length: None, end_stream: true, .. }));
}

#[test]
fn a_read_gets_what_is_held_and_waits_for_the_rest() {
    let mut h = Harness::new();
    h.recv(&[head("/", 10), b"abcd".to_vec()].concat());
    assert_eq!(h.conn.buffered(), 4);
    assert_eq!(h.conn.read(1, 100), Some(ReadStatus::Wait));
    assert_eq!(h.conn.buffered(), 0, "handed over: the application's now");
    // What arrives while the read waits is the read's: not held, and the read completes with
    // the end of the body, after its data.
    let events = h.recv(b"efghij");
    assert_eq!(
        events,
        vec![Ev::Data { id: 1, data: b"efghij".to_vec(), end: true }, Ev::ReadDone { id: 1, fin: true }]
    );
    assert_eq!(h.conn.buffered(), 0);
    assert_eq!(h.conn.read(1, 100), Some(ReadStatus::Fin), "the end, again");
}

#[test]
fn a_read_completes_once_its_length_was_handed_over() {
    let mut h = Harness::new();
    h.recv(&head("/", 100));
    assert_eq!(h.conn.read(1, 10), Some(ReadStatus::Wait));
    let events = h.recv(&[b'x'; 25]);
    assert_eq!(events.last(), Some(&Ev::ReadDone { id: 1, fin: false }));
    // Later bytes are held until the next read.
    h.recv(&[b'y'; 5]);
    assert_eq!(h.conn.buffered(), 5);
    assert_eq!(h.conn.read(1, 5), Some(ReadStatus::More), "held bytes complete it at once");
    assert_eq!(h.conn.read(1, 0), Some(ReadStatus::More), "length 0: hand over what is held");
    assert_eq!(h.conn.read(1, 1_000), Some(ReadStatus::Wait));
    assert!(h.conn.read_timeout(1), "the period expired while it waited");
    assert!(!h.conn.read_timeout(1), "no read waits any more");
    let events = h.recv(&[b'z'; 70]);
    assert!(!events.iter().any(|e| matches!(e, Ev::ReadDone { .. })), "no read registered");
    assert_eq!(h.conn.read(1, 1), Some(ReadStatus::Fin));
}

#[test]
fn a_chunked_body_with_trailers_completes_a_read_after_them() {
    let mut h = Harness::new();
    h.recv(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(h.conn.read(1, 1 << 20), Some(ReadStatus::Wait));
    let events = h.recv(b"3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n");
    assert_eq!(
        events,
        vec![
            Ev::Data { id: 1, data: b"abc".to_vec(), end: false },
            Ev::Trailers { id: 1, fields: vec![("x-sum".into(), "1".into())] },
            Ev::ReadDone { id: 1, fin: true },
        ]
    );
}

#[test]
fn held_bytes_bound_the_input_reads_do_not() {
    let cfg = Config { max_body_buffer: 1000, ..Config::default() };
    let mut h = Harness::with(cfg);
    h.recv(&[head("/", 10_000), vec![1; 1000]].concat());
    assert!(!h.conn.wants_input(), "1,000 bytes held: no more input");
    assert_eq!(h.conn.read(1, 8_000), Some(ReadStatus::Wait));
    assert!(h.conn.wants_input());
    h.recv(&[2; 6000]);
    assert!(h.conn.wants_input(), "a read's bytes are not held");
    let events = h.recv(&[3; 2000]);
    assert_eq!(events.last(), Some(&Ev::ReadDone { id: 1, fin: false }));
    assert_eq!(h.conn.buffered(), 0);
    h.recv(&[4; 1000]);
    assert!(!h.conn.wants_input(), "held again once the read completed");
}

#[test]
fn the_first_read_sends_100_continue() {
    let mut h = Harness::new();
    h.recv(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    assert!(h.flush().is_empty(), "nothing until the application reads");
    assert_eq!(h.conn.read(1, 100), Some(ReadStatus::Wait));
    assert_eq!(h.flush(), b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(h.conn.read(1, 100), Some(ReadStatus::Wait));
    assert!(h.flush().is_empty(), "once");
}

#[test]
fn discard_drops_what_is_held_and_what_comes() {
    let mut h = Harness::new();
    h.recv(&[head("/", 10), b"abcd".to_vec()].concat());
    h.conn.discard(1);
    assert_eq!(h.conn.buffered(), 0);
    assert!(h.recv(b"efghij").is_empty(), "not reported");
    assert_eq!(h.conn.stats().body_bytes_discarded, 6);
    assert_eq!(h.conn.read(1, 10), None, "the application said it would not read");
    h.respond(1, "204", b"");
    h.recv(&get("/next"));
    assert_eq!(request_ids(&h.recv(&get("/again"))), vec![3], "the connection carries on");
}

#[test]
fn a_response_ends_a_waiting_read_and_later_reads() {
    let mut h = Harness::new();
    h.recv(&[head("/", 10), b"ab".to_vec()].concat());
    assert_eq!(h.conn.read(1, 100), Some(ReadStatus::Wait));
    h.respond(1, "200", b"early");
    let (_, events) = h.flush_events();
    assert_eq!(events, vec![Ev::ReadDone { id: 1, fin: false }], "the read gets what it has");
    assert_eq!(h.conn.read(1, 100), None, "answered: the rest of the body is discarded");
    assert!(h.recv(b"cdefghij").is_empty());
    assert_eq!(request_ids(&h.recv(&get("/next"))), vec![2], "the connection carries on");
}

#[test]
fn a_waiting_read_is_told_when_the_response_ends() {
    let mut h = Harness::new();
    h.recv(&[head("/", 10), b"ab".to_vec()].concat());
    assert_eq!(h.conn.read(1, 100), Some(ReadStatus::Wait));
    h.conn.send_headers(1, &[(b":status", b"200"), (b"content-length", b"0")], true).unwrap();
    assert_eq!(
        h.conn.take_events().into_iter().map(|e| Ev::from(e, &[])).collect::<Vec<_>>(),
        vec![Ev::ReadDone { id: 1, fin: false }]
    );
}

#[test]
fn send_body_takes_what_the_queue_has_room_for() {
    let cfg = Config { max_send_queue: 1000, ..Config::default() };
    let mut h = Harness::with(cfg);
    h.recv(&get("/"));
    h.conn.send_headers(1, &[(b":status", b"200"), (b"content-length", b"5000")], false).unwrap();
    let queued = h.conn.queued();
    let Ok(Sent::Accepted { taken, blocked: true }) = h.conn.send_body(1, &[7; 5000], true) else {
        panic!("a full queue blocks")
    };
    assert_eq!(taken as u64, 1000 - queued);
    assert_eq!(h.conn.send_body(1, &[7; 10], true), Ok(Sent::Accepted { taken: 0, blocked: true }));
    let (out, events) = h.flush_events();
    assert_eq!(out.len() as u64, 1000);
    assert_eq!(events, vec![Ev::Writable { id: 1 }]);
    let mut sent = taken;
    while sent < 5000 {
        match h.conn.send_body(1, &vec![7; 5000 - sent], true) {
            Ok(Sent::Accepted { taken, blocked }) => {
                sent += taken;
                assert_eq!(blocked, sent < 5000);
            }
            other => panic!("{other:?}"),
        }
        h.flush();
    }
    assert_eq!(response(&h.written).body, vec![7; 5000]);
    assert!(!h.conn.is_done(), "a complete response keeps the connection");
}
