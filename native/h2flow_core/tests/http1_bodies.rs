//! Request bodies: Content-Length and chunked (RFC 9112 §6, §7.1) with extensions and
//! trailers, split at every byte boundary, handed out without copies when they can be.

mod common_http1;

use common_http1::*;
use h2flow_core::http1::{Config, Connection, Event, Payload};

fn body_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn content_length_body_in_one_read_is_a_range_of_the_input() {
    let body = body_bytes(4000);
    let input = post("/up", &body);
    let mut conn = Connection::new(Config::default(), std::time::Instant::now()).unwrap();
    conn.recv(&input, std::time::Instant::now()).unwrap();
    let events = conn.take_events();
    assert!(matches!(events[0], Event::Request { id: 1, end_stream: false, .. }));
    let Event::Data { id: 1, data: Payload::Input { start, len }, end_stream: true } = events[1] else {
        panic!("{:?}", events[1]);
    };
    assert_eq!((start, len), (input.len() - 4000, 4000));
    assert_eq!(&input[start..start + len], &body[..]);
    assert_eq!(events.len(), 2);
    assert_eq!(conn.buffered(), 4000);
}

#[test]
fn content_length_body_split_at_every_boundary() {
    let body = body_bytes(300);
    let mut input = post("/up", &body);
    input.extend(get("/next"));
    for split in 1..input.len() {
        let mut h = Harness::new();
        let mut events = h.recv(&input[..split]);
        events.extend(h.recv(&input[split..]));
        let (got, ended) = body_of(&events, 1);
        assert_eq!(got, body, "split {split}");
        assert!(ended, "split {split}");
        assert_eq!(request_ids(&events), [1, 2], "split {split}");
    }
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let mut h = Harness::new();
    let input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;name=value;flag\r\nhello\r\n\
        6 ; q = \"a \\\"quoted\\\" ext\"\r\n world\r\n\
        0\r\nChecksum: abc\r\nX-Other: 1\r\n\r\n";
    let events = h.recv(input);
    assert!(matches!(&events[0], Ev::Request { id: 1, end: false, .. }));
    let (body, ended) = body_of(&events, 1);
    assert_eq!(body, b"hello world");
    assert!(ended);
    let Some(Ev::Trailers { id: 1, fields }) = events.last() else { panic!("{events:?}") };
    assert_eq!(fields, &[("checksum".into(), "abc".into()), ("x-other".into(), "1".into())]);
    // The body ended with the trailers: no data event says end.
    assert!(!events.iter().any(|e| matches!(e, Ev::Data { end: true, .. })));
}

#[test]
fn chunked_body_without_trailers_ends_on_its_last_data() {
    let mut h = Harness::new();
    let events = h.recv(&post_chunked("/", b"abcdef", 4, ""));
    assert_eq!(
        events[1..],
        [Ev::Data { id: 1, data: b"abcdef".to_vec(), end: true }],
        "small chunks of one read merge into one event that ends the body"
    );
}

#[test]
fn chunked_body_split_at_every_boundary() {
    let body = body_bytes(100);
    let mut input = post_chunked("/", &body, 7, "T: 1\r\n");
    // Extensions and leading zeros in a size, to split inside them too.
    input.extend(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0003;a=\"b\"\r\nxyz\r\n00\r\n\r\n",
    );
    for split in 0..=input.len() {
        let mut h = Harness::new();
        let mut events = h.recv(&input[..split]);
        events.extend(h.recv(&input[split..]));
        let (got, ended) = body_of(&events, 1);
        assert_eq!(got, body, "split {split}");
        assert!(ended, "split {split}");
        assert_eq!(body_of(&events, 2), (b"xyz".to_vec(), true), "split {split}");
        let trailers: Vec<&Ev> = events.iter().filter(|e| matches!(e, Ev::Trailers { .. })).collect();
        assert_eq!(
            trailers,
            [&Ev::Trailers { id: 1, fields: vec![("t".into(), "1".into())] }],
            "split {split}"
        );
    }
    // One byte at a time.
    let mut h = Harness::new();
    let mut events = Vec::new();
    for b in &input {
        events.extend(h.recv(std::slice::from_ref(b)));
    }
    assert_eq!(body_of(&events, 1), (body, true));
    assert_eq!(body_of(&events, 2), (b"xyz".to_vec(), true));
}

#[test]
fn large_chunks_are_ranges_of_the_input_small_ones_are_merged() {
    let big = body_bytes(5000);
    let mut input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    input.extend(format!("{:x}\r\n", big.len()).as_bytes());
    input.extend(&big);
    input.extend(b"\r\n");
    for _ in 0..100 {
        input.extend(b"1\r\nx\r\n");
    }
    input.extend(b"0\r\n\r\n");
    let mut conn = Connection::new(Config::default(), std::time::Instant::now()).unwrap();
    conn.recv(&input, std::time::Instant::now()).unwrap();
    let events = conn.take_events();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(matches!(
        &events[1],
        Event::Data { data: Payload::Input { len: 5000, .. }, end_stream: false, .. }
    ));
    let Event::Data { data: Payload::Owned(v), end_stream: true, .. } = &events[2] else { panic!() };
    assert_eq!(v, &vec![b'x'; 100]);
}

#[test]
fn a_body_that_straddles_reads_is_owned_only_where_it_must_be() {
    // A chunk line split across reads needs no copy of the data that follows.
    let mut h = Harness::new();
    h.recv(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10");
    let mut conn_input = b"00\r\n".to_vec();
    conn_input.extend(vec![b'a'; 0x1000]);
    let r = h.conn.recv(&conn_input, h.now);
    r.unwrap();
    let events = h.conn.take_events();
    assert!(
        matches!(&events[..], [Event::Data { data: Payload::Input { start: 4, len: 4096 }, .. }]),
        "{events:?}"
    );
}

#[test]
fn a_body_the_application_consumes_is_released() {
    let mut h = Harness::new();
    h.recv(&post("/", &body_bytes(1000)));
    assert_eq!(h.conn.buffered(), 1000);
    h.conn.consume(1, 600).unwrap();
    assert_eq!(h.conn.buffered(), 400);
    assert!(h.conn.consume(1, 401).is_err(), "more than was handed out is misuse");
    h.conn.consume(1, 400).unwrap();
    assert_eq!(h.conn.buffered(), 0);
    // A request that is gone: no-op.
    h.respond(1, "200", b"");
    h.conn.consume(1, 5).unwrap();
}

#[test]
fn unread_body_bytes_are_released_with_the_response() {
    let mut h = Harness::new();
    h.recv(&post("/", &body_bytes(1000)));
    h.respond(1, "200", b"ok");
    assert_eq!(h.conn.buffered(), 0);
    assert_eq!(h.conn.stats().peak_buffered, 1000);
}

#[test]
fn stats_count_body_bytes() {
    let mut h = Harness::new();
    h.recv(&post("/", &body_bytes(123)));
    h.recv(&post_chunked("/", &body_bytes(77), 10, ""));
    assert_eq!(h.conn.stats().body_bytes_received, 200);
    assert_eq!(h.conn.stats().requests, 2);
}
