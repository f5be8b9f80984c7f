//! Request smuggling and malformed requests (RFC 9112 §11.2): each gets its exact status, a
//! message citing the RFC, `Connection: close`, and the connection reads nothing after it, so
//! a request hidden behind it is never seen. Heads are refused before the application hears
//! of them; a body that breaks the chunked coding cancels its request.

mod common_http1;

use common_http1::*;
use h2flow_core::http1::{Config, Reject};

const SMUGGLED: &[u8] = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

/// Feeds `input` followed by a smuggled request and checks the refusal; returns the events.
fn refused(input: &str, status: u16, kind: Reject) -> Vec<Ev> {
    refused_with(Config::default(), input.as_bytes(), status, kind)
}

fn refused_with(cfg: Config, input: &[u8], status: u16, kind: Reject) -> Vec<Ev> {
    let what = String::from_utf8_lossy(input).into_owned();
    let mut h = Harness::with(cfg);
    let mut wire = input.to_vec();
    wire.extend(SMUGGLED);
    let (events, r) = h.feed(&wire);
    let Err(e) = r else { panic!("accepted: {what:?} ({events:?})") };
    assert_eq!((e.kind, e.status()), (kind, status), "{what:?}: {}", e.message);
    assert!(e.message.contains("RFC"), "the message cites the RFC: {}", e.message);
    assert!(request_ids(&events).len() <= 1, "{what:?}: the smuggled request was read: {events:?}");
    let out = h.flush();
    let r = response(&out);
    assert_eq!(r.status, status, "{what:?}");
    assert!(r.closes(), "{what:?}");
    assert_eq!(r.body, format!("{}\n", e.message).as_bytes());
    assert!(h.conn.is_done(), "{what:?}");
    assert!(!h.conn.wants_input());
    assert_eq!(h.conn.stats().rejected(kind), 1);
    assert_eq!(h.conn.stats().rejected_total(), 1);
    // More input changes nothing.
    h.recv(SMUGGLED);
    assert!(h.flush().is_empty());
    events
}

/// A refusal of the head: the application never hears of the request.
fn head_refused(input: &str, status: u16, kind: Reject) {
    let events = refused(input, status, kind);
    assert!(events.is_empty(), "{input:?}: {events:?}");
}

/// A refusal of a chunked body: the request was announced, then cancelled.
fn body_refused(chunks: &str) {
    let input = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}");
    let events = refused(&input, 400, Reject::InvalidChunk);
    assert_eq!(request_ids(&events), [1]);
    assert_eq!(events.last(), Some(&Ev::Cancelled { id: 1 }), "{chunks:?}: {events:?}");
}

const TE_CHUNKED: &str = "Transfer-Encoding: chunked\r\n";

#[test]
fn content_length_with_transfer_encoding() {
    for fields in [
        format!("Content-Length: 5\r\n{TE_CHUNKED}"),
        format!("{TE_CHUNKED}Content-Length: 5\r\n"),
        format!("{TE_CHUNKED}Content-Length: 0\r\n"),
    ] {
        head_refused(
            &format!("POST / HTTP/1.1\r\nHost: a\r\n{fields}\r\n5\r\nhello\r\n0\r\n\r\n"),
            400,
            Reject::ContentLengthWithTransferEncoding,
        );
    }
}

#[test]
fn content_lengths_that_differ() {
    for fields in [
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5, 6\r\n",
        "Content-Length: 5,5,7\r\n",
    ] {
        head_refused(
            &format!("POST / HTTP/1.1\r\nHost: a\r\n{fields}\r\nhello!"),
            400,
            Reject::ConflictingContentLength,
        );
    }
}

#[test]
fn identical_content_lengths_are_one() {
    // RFC 9110 8.6: the same value repeated, as fields or as a list.
    for fields in
        ["Content-Length: 5\r\nContent-Length: 5\r\n", "Content-Length: 5, 5\r\n", "Content-Length: 005\r\n"]
    {
        let mut h = Harness::new();
        let events = h.recv(format!("POST / HTTP/1.1\r\nHost: a\r\n{fields}\r\nhello").as_bytes());
        assert_eq!(body_of(&events, 1), (b"hello".to_vec(), true), "{fields:?}");
        assert!(h.conn.wants_input());
    }
}

#[test]
fn invalid_content_lengths() {
    for value in ["-1", "+5", "5a", "0x5", "", "1 2", "5,", "99999999999999999999", "1e3", "\u{0663}"] {
        head_refused(
            &format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {value}\r\n\r\n"),
            400,
            Reject::InvalidContentLength,
        );
    }
}

#[test]
fn transfer_codings_other_than_chunked() {
    for te in ["gzip, chunked", "identity, chunked", "deflate,chunked"] {
        head_refused(
            &format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n"),
            501,
            Reject::UnsupportedTransferCoding,
        );
    }
    // Two fields make one list (RFC 9110 5.3).
    head_refused(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        501,
        Reject::UnsupportedTransferCoding,
    );
}

#[test]
fn chunked_not_last() {
    for te in
        ["chunked, gzip", "gzip", "identity", "chunked, chunked", "chunked;x=1", "", "chunke", "xchunked"]
    {
        head_refused(
            &format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n"),
            400,
            Reject::ChunkedNotLast,
        );
    }
    head_refused(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
        400,
        Reject::ChunkedNotLast,
    );
}

#[test]
fn chunked_is_case_insensitive() {
    let mut h = Harness::new();
    let events =
        h.recv(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(body_of(&events, 1), (b"abc".to_vec(), true));
}

#[test]
fn transfer_encoding_in_http10() {
    head_refused(
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        400,
        Reject::TransferEncodingInHttp10,
    );
}

#[test]
fn invalid_chunk_sizes() {
    for chunks in [
        "g\r\nhello\r\n0\r\n\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
        "0x5\r\nhello\r\n0\r\n\r\n",
        " 5\r\nhello\r\n0\r\n\r\n",
        "+5\r\nhello\r\n0\r\n\r\n",
        "\r\nhello\r\n0\r\n\r\n",
        ";a\r\nhello\r\n0\r\n\r\n",
        "10000000000000000\r\n",
        "fffffffffffffffff\r\n",
    ] {
        body_refused(chunks);
    }
}

#[test]
fn invalid_chunk_extensions() {
    for chunks in [
        "5 \r\nhello\r\n0\r\n\r\n",
        "5\t\r\nhello\r\n0\r\n\r\n",
        "5;\r\nhello\r\n0\r\n\r\n",
        "5;=v\r\nhello\r\n0\r\n\r\n",
        "5;a=\r\nhello\r\n0\r\n\r\n",
        "5;a b\r\nhello\r\n0\r\n\r\n",
        "5;a=b c\r\nhello\r\n0\r\n\r\n",
        "5;a=\"open\r\nhello\r\n0\r\n\r\n",
        "5;a=\"x\"y\r\nhello\r\n0\r\n\r\n",
        "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n",
        "5;a@b\r\nhello\r\n0\r\n\r\n",
        "5;a;\r\nhello\r\n0\r\n\r\n",
        "0;\r\n\r\n",
    ] {
        body_refused(chunks);
    }
}

#[test]
fn valid_chunk_extensions_are_accepted() {
    for chunks in [
        "5;a\r\nhello\r\n0\r\n\r\n",
        "5 ;a=b\r\nhello\r\n0\r\n\r\n",
        "5; a = b ;c\r\nhello\r\n0\r\n\r\n",
        "5;a=\"q \\\" ;\"\r\nhello\r\n0;last\r\n\r\n",
        "0005\r\nhello\r\n000\r\n\r\n",
    ] {
        let mut h = Harness::new();
        let input = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}");
        let events = h.recv(input.as_bytes());
        assert_eq!(body_of(&events, 1), (b"hello".to_vec(), true), "{chunks:?}");
    }
}

#[test]
fn chunk_delimiters_must_be_crlf() {
    for chunks in [
        "5\nhello\r\n0\r\n\r\n",
        "5\rhello\r\n0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
        "5\r\nhelloXX0\r\n\r\n",
        "5\r\nhello\r0\r\n\r\n",
        "3\r\nhello\r\n0\r\n\r\n",
        "0\r\n\n",
        "0\r\nX: 1\n\r\n",
    ] {
        let input = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}");
        let mut h = Harness::new();
        let (events, r) = h.feed(input.as_bytes());
        let e = r.expect_err(chunks);
        assert_eq!(e.status(), 400, "{chunks:?}");
        assert!(
            matches!(e.kind, Reject::InvalidChunk | Reject::BareLf | Reject::BareCr),
            "{chunks:?}: {e:?}"
        );
        assert_eq!(events.last(), Some(&Ev::Cancelled { id: 1 }));
        assert!(response(&h.flush()).closes());
    }
}

#[test]
fn chunk_lines_and_trailers_are_bounded() {
    let cfg = Config { max_chunk_line: 20, ..Config::default() };
    let input = format!(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;{}\r\nhello\r\n0\r\n\r\n",
        "a".repeat(20)
    );
    refused_with(cfg, input.as_bytes(), 400, Reject::InvalidChunk);
    let cfg = Config { max_headers: 2, ..Config::default() };
    let input =
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    refused_with(cfg, input.as_bytes(), 431, Reject::TooManyHeaders);
    let cfg = Config { max_header_section: 100, max_request_line: 50, ..Config::default() };
    let input = format!(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: {}",
        "b".repeat(200)
    );
    refused_with(cfg, input.as_bytes(), 431, Reject::HeaderSectionTooLarge);
}

#[test]
fn a_body_error_after_the_response_started_cuts_it_short() {
    let mut h = Harness::new();
    h.recv(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    h.start_streaming(1, "200");
    h.conn.send_data(1, b"partial", false).unwrap();
    let (events, r) = h.feed(b"zz\r\n");
    assert_eq!(r.unwrap_err().kind, Reject::InvalidChunk);
    assert_eq!(events, [Ev::Cancelled { id: 1 }]);
    let out = h.flush();
    assert!(out.ends_with(b"7\r\npartial\r\n"), "no 400 in the middle of a response, no last chunk");
    assert!(h.conn.is_done());
}

#[test]
fn obs_fold() {
    head_refused("GET / HTTP/1.1\r\nHost: a\r\nX: one\r\n two\r\n\r\n", 400, Reject::ObsFold);
    head_refused("GET / HTTP/1.1\r\nHost: a\r\nX: one\r\n\ttwo\r\n\r\n", 400, Reject::ObsFold);
    // Whitespace before the first field line (RFC 9112 2.2).
    head_refused("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, Reject::ObsFold);
}

#[test]
fn bare_cr_and_lf() {
    head_refused("GET / HTTP/1.1\rHost: a\r\n\r\n", 400, Reject::BareCr);
    head_refused("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, Reject::BareCr);
    head_refused("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400, Reject::BareCr);
    head_refused("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, Reject::BareCr);
    head_refused("GET / HTTP/1.1\nHost: a\n\n", 400, Reject::BareLf);
    head_refused("GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n", 400, Reject::BareLf);
    head_refused("GET / HTTP/1.1\r\nHost: a\r\n\n", 400, Reject::BareLf);
    head_refused("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, Reject::BareLf);
}

#[test]
fn whitespace_between_field_name_and_colon() {
    head_refused("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, Reject::WhitespaceBeforeColon);
    head_refused(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\nhello",
        400,
        Reject::WhitespaceBeforeColon,
    );
    head_refused(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello",
        400,
        Reject::WhitespaceBeforeColon,
    );
}

#[test]
fn invalid_field_names_and_values() {
    head_refused("GET / HTTP/1.1\r\nHost: a\r\nX(: 1\r\n\r\n", 400, Reject::InvalidField);
    head_refused("GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n", 400, Reject::InvalidField);
    head_refused("GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400, Reject::InvalidField);
    head_refused("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400, Reject::InvalidField);
    head_refused("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400, Reject::InvalidField);
}

#[test]
fn host_rules() {
    head_refused("GET / HTTP/1.1\r\nX: 1\r\n\r\n", 400, Reject::MissingHost);
    head_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, Reject::InvalidHost);
    head_refused("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400, Reject::InvalidHost);
    head_refused("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, Reject::InvalidHost);
    head_refused("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400, Reject::InvalidHost);
    head_refused("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, Reject::InvalidHost);
    head_refused("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, Reject::InvalidHost);
}

#[test]
fn limits() {
    let cfg = Config { max_request_line: 64, ..Config::default() };
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(100));
    refused_with(cfg, long.as_bytes(), 414, Reject::RequestLineTooLong);
    let cfg = Config { max_headers: 3, ..Config::default() };
    refused_with(
        cfg,
        b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
        431,
        Reject::TooManyHeaders,
    );
    let cfg = Config { max_header_section: 256, max_request_line: 64, ..Config::default() };
    let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "b".repeat(300));
    refused_with(cfg, big.as_bytes(), 431, Reject::HeaderSectionTooLarge);
}

#[test]
fn a_refusal_waits_for_the_responses_before_it() {
    let mut h = Harness::new();
    let mut wire = get("/ok");
    wire.extend(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n");
    let (events, r) = h.feed(&wire);
    assert_eq!(r.unwrap_err().kind, Reject::WhitespaceBeforeColon);
    assert_eq!(request_ids(&events), [1]);
    assert!(h.flush().is_empty(), "the 400 waits for response 1");
    h.respond(1, "200", b"fine");
    let r = responses(&h.flush());
    assert_eq!(r.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 400]);
    assert!(!r[0].closes(), "response 1 was written before the refusal was known");
    assert!(r[1].closes());
    assert!(h.conn.is_done());
}
