//! Responses: the framing the engine chooses (Content-Length, chunked, close-delimited, none),
//! HEAD, 1xx, trailers, and what the application may not do.

mod common_http1;

use common_http1::*;
use h2flow_core::http1::{SendError, Sent};

fn fields<'a>(list: &'a [(&'a str, &'a str)]) -> Vec<(&'a [u8], &'a [u8])> {
    list.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect()
}

#[test]
fn content_length_response_keeps_the_connection() {
    let mut h = Harness::new();
    h.recv(&get("/"));
    h.conn
        .send_headers(
            1,
            &fields(&[(":status", "200"), ("content-type", "text/plain"), ("content-length", "5")]),
            false,
        )
        .unwrap();
    h.conn.send_data(1, b"hel", false).unwrap();
    h.conn.send_data(1, b"lo", true).unwrap();
    let out = h.flush();
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
    let r = response(&out);
    assert_eq!(r.body, b"hello");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header_count("content-length"), 1);
    assert!(r.header("connection").is_none());
    assert!(r.header("transfer-encoding").is_none());
    assert!(h.conn.wants_input());
    assert!(!h.conn.is_done());
    assert_eq!(h.conn.stats().responses, 1);
    assert_eq!(h.conn.stats().responses_content_length, 1);
    assert_eq!(h.conn.stats().body_bytes_sent, 5);
}

#[test]
fn without_a_length_http11_responses_are_chunked() {
    let mut h = Harness::new();
    h.recv(&get("/"));
    h.start_streaming(1, "200");
    h.conn.send_data(1, b"abc", false).unwrap();
    h.conn.send_data(1, b"", false).unwrap();
    h.conn.send_data(1, b"defgh", false).unwrap();
    h.conn.send_data(1, b"", true).unwrap();
    let out = h.flush();
    assert!(find(&out, b"3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n").is_some(), "an empty send writes no chunk");
    let r = response(&out);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body, b"abcdefgh");
    assert_eq!(h.conn.stats().responses_chunked, 1);
}

#[test]
fn trailers_go_after_the_last_chunk() {
    let mut h = Harness::new();
    h.recv(&get("/"));
    h.start_streaming(1, "200");
    h.conn.send_data(1, b"data", false).unwrap();
    h.conn.send_headers(1, &fields(&[("grpc-status", "0"), ("x-sum", "42")]), true).unwrap();
    let r = response(&h.flush());
    assert_eq!(r.body, b"data");
    assert_eq!(r.trailers, [("grpc-status".to_string(), "0".to_string()), ("x-sum".into(), "42".into())]);
    assert!(h.conn.send_data(1, b"x", false).is_err(), "the response was already ended");
}

#[test]
fn trailers_without_chunked_framing_are_dropped() {
    let mut h = Harness::new();
    h.recv(&get("/"));
    h.conn.send_headers(1, &fields(&[(":status", "200"), ("content-length", "2")]), false).unwrap();
    h.conn.send_data(1, b"ok", false).unwrap();
    h.conn.send_headers(1, &fields(&[("x-sum", "1")]), true).unwrap();
    let out = h.flush();
    assert!(find(&out, b"x-sum").is_none());
    assert_eq!(response(&out).body, b"ok");
    assert!(h.conn.wants_input());
}

#[test]
fn end_stream_on_the_head_writes_content_length_zero() {
    let mut h = Harness::new();
    h.recv(&get("/"));
    h.conn.send_headers(1, &fields(&[(":status", "404")]), true).unwrap();
    let out = h.flush();
    assert!(out.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
    let r = response(&out);
    assert_eq!(r.header("content-length"), Some("0"));
    assert!(r.body.is_empty());
}

#[test]
fn head_responses_carry_the_fields_but_no_body() {
    let mut h = Harness::new();
    h.recv(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    h.conn.send_headers(1, &fields(&[(":status", "200"), ("content-length", "1000")]), false).unwrap();
    h.conn.send_data(1, &[b'x'; 1000], true).unwrap();
    h.recv(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    h.start_streaming(2, "200");
    h.conn.send_data(2, b"dropped", true).unwrap();
    let out = h.flush();
    assert!(find(&out, b"x").is_none(), "no body byte for HEAD");
    let r = parse_responses(&out, &[true, true]);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].header("content-length"), Some("1000"));
    assert!(r[1].header("content-length").is_none() && r[1].header("transfer-encoding").is_none());
    assert_eq!(h.conn.stats().responses_without_body, 2);
    assert_eq!(h.conn.stats().body_bytes_sent, 0);
    assert!(h.conn.wants_input());
}

#[test]
fn no_body_for_204_and_304() {
    let mut h = Harness::new();
    h.recv(&get("/a"));
    h.conn.send_headers(1, &fields(&[(":status", "204"), ("content-length", "3")]), false).unwrap();
    h.conn.send_data(1, b"abc", true).unwrap();
    h.recv(&get("/b"));
    h.conn.send_headers(2, &fields(&[(":status", "304"), ("content-length", "3")]), false).unwrap();
    h.conn.send_data(2, b"abc", true).unwrap();
    let out = h.flush();
    let r = responses(&out);
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].status, 204);
    assert!(r[0].header("content-length").is_none(), "RFC 9110 8.6: no Content-Length in a 204");
    assert_eq!(r[1].header("content-length"), Some("3"), "a 304 may say the representation's length");
    assert!(find(&out, b"abc").is_none());
}

#[test]
fn http10_without_a_length_is_close_delimited() {
    let mut h = Harness::new();
    h.recv(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    h.start_streaming(1, "200");
    h.conn.send_data(1, b"all of it", true).unwrap();
    let out = h.flush();
    let r = response(&out);
    assert!(r.to_close && r.closes());
    assert_eq!(r.body, b"all of it");
    assert!(r.header("transfer-encoding").is_none(), "no chunked coding for HTTP/1.0");
    assert!(h.conn.is_done());
    assert_eq!(h.conn.stats().responses_close_delimited, 1);
}

#[test]
fn informational_responses_before_the_final_one() {
    let mut h = Harness::new();
    h.recv(&get("/"));
    h.conn.send_headers(1, &fields(&[(":status", "103"), ("link", "</s.css>; rel=preload")]), false).unwrap();
    h.respond(1, "200", b"x");
    let r = responses(&h.flush());
    assert_eq!((r[0].status, r[0].reason.as_str()), (103, "Early Hints"));
    assert_eq!(r[0].header("link"), Some("</s.css>; rel=preload"));
    assert_eq!(r[1].status, 200);
    // None to an HTTP/1.0 client (RFC 9110 15.2).
    let mut h = Harness::new();
    h.recv(b"GET / HTTP/1.0\r\n\r\n");
    h.conn.send_headers(1, &fields(&[(":status", "103")]), false).unwrap();
    h.respond(1, "200", b"x");
    let r = responses(&h.flush());
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 200);
}

#[test]
fn the_application_may_ask_to_close() {
    let mut h = Harness::new();
    h.recv(&get("/"));
    h.conn
        .send_headers(
            1,
            &fields(&[(":status", "200"), ("connection", "close"), ("content-length", "0")]),
            true,
        )
        .unwrap();
    let out = h.flush();
    let r = response(&out);
    assert_eq!(r.header_count("connection"), 1);
    assert!(r.closes());
    assert!(h.conn.is_done());
}

#[test]
fn status_codes_without_a_standard_reason_have_an_empty_one() {
    let mut h = Harness::new();
    h.recv(&get("/"));
    h.respond(1, "299", b"");
    let out = h.flush();
    assert!(out.starts_with(b"HTTP/1.1 299 \r\n"));
}

#[test]
fn misuse_is_an_error_not_bytes_on_the_wire() {
    let mut h = Harness::new();
    h.recv(&get("/"));
    let misuse = |r: Result<Sent, SendError>| matches!(r, Err(SendError::Misuse(_)));
    assert!(misuse(h.conn.send_data(1, b"x", false)), "data before the head");
    assert!(misuse(h.conn.send_headers(1, &fields(&[("content-length", "1")]), false)), "no :status");
    assert!(misuse(h.conn.send_headers(1, &fields(&[(":status", "20")]), false)));
    assert!(misuse(h.conn.send_headers(1, &fields(&[(":status", "200"), (":path", "/")]), false)));
    assert!(misuse(h.conn.send_headers(
        1,
        &fields(&[(":status", "200"), ("transfer-encoding", "chunked")]),
        false
    )));
    assert!(misuse(h.conn.send_headers(1, &fields(&[(":status", "200"), ("x", "a\r\nInjected: 1")]), false)));
    assert!(misuse(h.conn.send_headers(1, &fields(&[(":status", "200"), ("bad name", "v")]), false)));
    assert!(misuse(h.conn.send_headers(1, &fields(&[(":status", "200"), ("content-length", "x")]), false)));
    assert!(misuse(h.conn.send_headers(1, &fields(&[(":status", "101")]), false)));
    assert!(misuse(h.conn.send_headers(1, &fields(&[(":status", "103")]), true)));
    assert!(misuse(h.conn.send_headers(1, &fields(&[(":status", "200"), ("content-length", "3")]), true)));
    assert!(misuse(h.conn.send_headers(9, &fields(&[(":status", "200")]), true)), "no such request");
    assert!(h.flush().is_empty(), "nothing was written");
    h.conn.send_headers(1, &fields(&[(":status", "200"), ("content-length", "3")]), false).unwrap();
    h.conn.send_data(1, b"abc", true).unwrap();
    assert!(misuse(h.conn.send_data(1, b"", true)), "already ended");
    assert_eq!(response(&h.flush()).body, b"abc");
    assert!(!h.conn.is_done(), "a misuse before anything of the response was written changes nothing");
}

#[test]
fn misuse_after_the_head_ends_the_exchange() {
    let mut h = Harness::new();
    h.recv(&get("/"));
    h.conn.send_headers(1, &fields(&[(":status", "200"), ("content-length", "3")]), false).unwrap();
    // Longer than the content-length: refused, none of it written; the response cannot be
    // completed correctly any more, so the exchange ends as if aborted.
    assert!(matches!(h.conn.send_data(1, b"abcd", false), Err(SendError::Misuse(_))));
    assert_eq!(h.conn.send_data(1, b"abc", true), Ok(Sent::StreamClosed));
    assert_eq!(h.conn.send_headers(1, &fields(&[(":status", "500")]), true), Ok(Sent::StreamClosed));
    let out = h.flush();
    assert!(out.ends_with(b"content-length: 3\r\n\r\n"), "{:?}", String::from_utf8_lossy(&out));
    assert!(h.conn.is_done());
}

#[test]
fn a_body_shorter_than_its_content_length_closes_the_connection() {
    let mut h = Harness::new();
    h.recv(&get("/"));
    h.conn.send_headers(1, &fields(&[(":status", "200"), ("content-length", "10")]), false).unwrap();
    h.conn.send_data(1, b"abc", false).unwrap();
    assert_eq!(h.conn.send_data(1, b"de", true), Ok(Sent::Queued(0)));
    let out = h.flush();
    assert!(out.ends_with(b"abcde"));
    assert!(h.conn.is_done(), "the client can only tell from the close");
}

#[test]
fn abort_closes_after_what_was_written() {
    let mut h = Harness::new();
    h.recv(&get("/"));
    h.start_streaming(1, "200");
    h.conn.send_data(1, b"part", false).unwrap();
    h.conn.abort(1);
    let out = h.flush();
    assert!(out.ends_with(b"4\r\npart\r\n"), "no last chunk: the client sees it was cut short");
    assert!(h.conn.is_done());
    assert_eq!(h.conn.send_data(1, b"x", true), Ok(Sent::StreamClosed));
}
