//! `Expect: 100-continue` (RFC 9110 §10.1.1): `100 Continue` is written when the application
//! first reads the body, never otherwise; a response without it does not wait for a body the
//! client may never send.

mod common_http1;

use common_http1::*;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

fn expecting(body_len: usize) -> Vec<u8> {
    format!("PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: {body_len}\r\nExpect: 100-continue\r\n\r\n")
        .into_bytes()
}

#[test]
fn continue_is_written_when_the_application_reads() {
    let mut h = Harness::new();
    let events = h.recv(&expecting(5));
    assert_eq!(request_ids(&events), [1]);
    assert!(h.flush().is_empty(), "nothing until the application reads");
    h.conn.read_body(1).unwrap();
    h.conn.read_body(1).unwrap();
    assert_eq!(h.flush(), CONTINUE, "once");
    let events = h.recv(b"hello");
    assert_eq!(body_of(&events, 1), (b"hello".to_vec(), true));
    h.respond(1, "201", b"");
    let out = h.flush();
    let r = response(&out);
    assert_eq!(r.status, 201);
    assert!(!r.closes(), "the body was read: the connection stays");
    assert!(h.conn.wants_input());
    assert_eq!(h.conn.stats().continues_sent, 1);
}

#[test]
fn answering_without_reading_sends_no_continue_and_closes() {
    let mut h = Harness::new();
    h.recv(&expecting(1_000_000));
    h.respond(1, "413", b"too large");
    let out = h.flush();
    assert!(find(&out, b"100 Continue").is_none());
    let r = response(&out);
    assert_eq!(r.status, 413);
    assert!(r.closes(), "the client may or may not send the body: close, do not wait for it");
    assert!(h.conn.is_done());
    assert!(!h.conn.wants_input());
    assert_eq!(h.conn.stats().continues_sent, 0);
}

#[test]
fn reading_after_the_final_response_sends_no_continue() {
    let mut h = Harness::new();
    h.recv(&expecting(5));
    h.start_streaming(1, "200");
    h.conn.read_body(1).unwrap();
    let out = h.flush();
    assert!(find(&out, b"100 Continue").is_none(), "no 1xx after a final status");
}

#[test]
fn a_body_that_arrives_anyway_needs_no_continue() {
    // The client stopped waiting (curl waits 1 s) and sent the body.
    let mut h = Harness::new();
    let mut input = expecting(5);
    input.extend(b"he");
    h.recv(&input);
    h.conn.read_body(1).unwrap();
    assert!(h.flush().is_empty(), "RFC 9110 10.1.1: MAY omit once some content arrived");
    h.recv(b"llo");
    h.respond(1, "200", b"");
    assert!(!response(&h.flush()).closes());
}

#[test]
fn a_body_that_arrived_anyway_is_drained_after_an_early_answer() {
    let mut h = Harness::new();
    let mut input = expecting(10);
    input.extend(b"01234");
    h.recv(&input);
    h.respond(1, "200", b"");
    let r = response(&h.flush());
    assert!(!r.closes(), "the client is sending the body: it is read and thrown away");
    assert!(h.recv(b"56789").is_empty());
    assert_eq!(h.conn.stats().body_bytes_discarded, 5);
    assert_eq!(request_ids(&h.recv(&get("/next"))), [2]);
}

#[test]
fn http10_and_bodyless_requests_ignore_the_expectation() {
    let mut h = Harness::new();
    h.recv(b"POST / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    h.conn.read_body(1).unwrap();
    assert!(h.flush().is_empty(), "RFC 9110 10.1.1: ignored in an HTTP/1.0 request");
    let mut h = Harness::new();
    h.recv(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n");
    h.conn.read_body(1).unwrap();
    assert!(h.flush().is_empty(), "no body, nothing to continue");
}

#[test]
fn a_continue_waits_behind_earlier_responses() {
    let mut h = Harness::new();
    let mut input = get("/first");
    input.extend(expecting(3));
    assert_eq!(request_ids(&h.recv(&input)), [1, 2]);
    h.conn.read_body(2).unwrap();
    assert!(h.flush().is_empty());
    h.respond(1, "200", b"one");
    let out = h.flush();
    let r = responses(&out);
    assert_eq!(r.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 100]);
}

#[test]
fn a_100_status_from_the_application_is_the_same_as_reading() {
    let mut h = Harness::new();
    h.recv(&expecting(3));
    h.conn.send_headers(1, &[(b":status", b"100")], false).unwrap();
    h.conn.send_headers(1, &[(b":status", b"100")], false).unwrap();
    assert_eq!(h.flush(), CONTINUE);
}
