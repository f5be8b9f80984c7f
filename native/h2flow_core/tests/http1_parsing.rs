//! Request heads: the request line and its forms (RFC 9112 §3), fields as HTTP/2 has them,
//! heads split anywhere, the limits (414, 431), versions (505), and protocol detection.

mod common_http1;

use common_http1::*;
use h2flow_core::http1::{detect, Config, Detected, Reject, Version};

fn only_request(events: &[Ev]) -> (u64, Version, Vec<(String, String)>, bool) {
    assert_eq!(events.len(), 1, "{events:?}");
    match &events[0] {
        Ev::Request { id, version, fields, end } => (*id, *version, fields.clone(), *end),
        other => panic!("expected a request: {other:?}"),
    }
}

#[test]
fn origin_form_request_becomes_pseudo_headers_then_lowercased_fields() {
    let mut h = Harness::new();
    let events =
        h.recv(b"GET /a/b?c=d HTTP/1.1\r\nHost: Example.COM:8080\r\nX-Thing: One Two\r\nAccept: */*\r\n\r\n");
    let (id, version, fields, end) = only_request(&events);
    assert_eq!((id, version, end), (1, Version::Http11, true));
    let expected = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "Example.COM:8080"),
        (":path", "/a/b?c=d"),
        ("host", "Example.COM:8080"),
        ("x-thing", "One Two"),
        ("accept", "*/*"),
    ];
    let got: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(got, expected);
}

#[test]
fn secure_connections_say_https() {
    let mut h = Harness::with(Config { secure: true, ..Config::default() });
    let (_, _, fields, _) = only_request(&h.recv(&get("/")));
    assert_eq!(field(&fields, ":scheme"), Some("https"));
}

#[test]
fn absolute_form_target_wins_over_host() {
    // RFC 9112 3.2.2: the authority of an absolute-form target replaces Host.
    let mut h = Harness::new();
    let events = h.recv(b"GET http://origin.example:81?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n");
    let (_, _, fields, _) = only_request(&events);
    assert_eq!(field(&fields, ":scheme"), Some("http"));
    assert_eq!(field(&fields, ":authority"), Some("origin.example:81"));
    assert_eq!(field(&fields, ":path"), Some("/?q=1"));
    let mut h = Harness::new();
    let events = h.recv(b"GET HTTPS://origin.example/x/y HTTP/1.1\r\nHost: origin.example\r\n\r\n");
    let (_, _, fields, _) = only_request(&events);
    assert_eq!(field(&fields, ":scheme"), Some("https"));
    assert_eq!(field(&fields, ":path"), Some("/x/y"));
}

#[test]
fn asterisk_form_only_for_options() {
    let mut h = Harness::new();
    let (_, _, fields, _) = only_request(&h.recv(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_eq!(field(&fields, ":path"), Some("*"));
    let mut h = Harness::new();
    let (_, r) = h.feed(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.unwrap_err().kind, Reject::BadTarget);
}

#[test]
fn connect_uses_authority_form() {
    let mut h = Harness::new();
    let (_, _, fields, _) =
        only_request(&h.recv(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"));
    let got: Vec<&str> = fields.iter().take(2).map(|(n, _)| n.as_str()).collect();
    assert_eq!(got, [":method", ":authority"]);
    assert_eq!(field(&fields, ":authority"), Some("example.com:443"));
    assert_eq!(field(&fields, ":path"), None);
    let mut h = Harness::new();
    let (_, r) = h.feed(b"CONNECT /path HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.unwrap_err().kind, Reject::BadTarget);
}

#[test]
fn http10_request_needs_no_host() {
    let mut h = Harness::new();
    let (_, version, fields, _) = only_request(&h.recv(b"GET / HTTP/1.0\r\n\r\n"));
    assert_eq!(version, Version::Http10);
    assert_eq!(field(&fields, ":authority"), None);
}

#[test]
fn empty_host_is_allowed_and_gives_no_authority() {
    // RFC 9112 3.2: a client sends an empty Host when the target has no authority.
    let mut h = Harness::new();
    let (_, _, fields, _) = only_request(&h.recv(b"GET / HTTP/1.1\r\nHost:\r\n\r\n"));
    assert_eq!(field(&fields, ":authority"), None);
    assert_eq!(field(&fields, "host"), Some(""));
}

#[test]
fn leading_empty_lines_are_skipped() {
    // RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request line.
    let mut h = Harness::new();
    let mut input = b"\r\n\r\n".to_vec();
    input.extend(get("/x"));
    let (id, _, fields, _) = only_request(&h.recv(&input));
    assert_eq!((id, field(&fields, ":path")), (1, Some("/x")));
    // Split inside the empty lines, between CR and LF.
    let mut h = Harness::new();
    assert!(h.recv(b"\r").is_empty());
    assert!(h.recv(b"\n\r").is_empty());
    assert_eq!(request_ids(&h.recv(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")), [1]);
}

#[test]
fn field_values_are_trimmed_of_surrounding_whitespace() {
    let mut h = Harness::new();
    let (_, _, fields, _) = only_request(&h.recv(b"GET / HTTP/1.1\r\nHost: a\r\nX:  \t v w \t \r\n\r\n"));
    assert_eq!(field(&fields, "x"), Some("v w"));
}

#[test]
fn a_head_split_at_every_byte_gives_the_same_request() {
    let input = b"POST /upload?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Type: text/plain\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n";
    let mut whole = Harness::new();
    let expected = whole.recv(input);
    for split in 1..input.len() {
        let mut h = Harness::new();
        let mut events = h.recv(&input[..split]);
        assert!(events.is_empty(), "split {split}: no event before the head is complete");
        events.extend(h.recv(&input[split..]));
        assert_eq!(events, expected, "split at {split}");
    }
    // And one byte at a time.
    let mut h = Harness::new();
    let mut events = Vec::new();
    for b in input.iter() {
        events.extend(h.recv(std::slice::from_ref(b)));
    }
    assert_eq!(events, expected);
    assert!(h.conn.held_input() == 0);
}

#[test]
fn a_partial_head_is_held_and_counted() {
    let mut h = Harness::new();
    h.recv(b"GET / HTTP/1.1\r\nHost: a\r\n");
    assert_eq!(h.conn.held_input(), 25);
    assert!(h.conn.wants_input());
    h.recv(b"\r\n");
    assert_eq!(h.conn.held_input(), 0);
}

fn rejected(cfg: Config, input: &[u8]) -> (Reject, Response) {
    let mut h = Harness::with(cfg);
    let (_, r) = h.feed(input);
    let r = r.expect_err("refused");
    let out = h.flush();
    let resp = response(&out);
    assert_eq!(resp.status, r.status());
    assert!(resp.closes(), "a refusal closes the connection");
    assert!(h.conn.is_done());
    assert!(!h.conn.wants_input());
    assert_eq!(h.conn.stats().rejected(r.kind), 1);
    (r.kind, resp)
}

#[test]
fn request_line_over_the_limit_is_414_even_before_it_ends() {
    let cfg = Config { max_request_line: 100, ..Config::default() };
    // Exactly at the limit: accepted.
    let target = format!("/{}", "a".repeat(100 - "GET  HTTP/1.1".len() - 1));
    let line = format!("GET {target} HTTP/1.1");
    assert_eq!(line.len(), 100);
    let mut h = Harness::with(cfg.clone());
    assert_eq!(request_ids(&h.recv(format!("{line}\r\nHost: a\r\n\r\n").as_bytes())), [1]);
    // One more byte: 414.
    let (kind, resp) = rejected(cfg.clone(), format!("GET {target}a HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    assert_eq!((kind, resp.status, resp.reason.as_str()), (Reject::RequestLineTooLong, 414, "URI Too Long"));
    // A line that never ends is refused as soon as it is too long, not buffered.
    let mut h = Harness::with(cfg);
    let (_, r) = h.feed(format!("GET /{}", "a".repeat(200)).as_bytes());
    assert_eq!(r.unwrap_err().kind, Reject::RequestLineTooLong);
    assert_eq!(h.conn.held_input(), 0);
}

#[test]
fn too_many_fields_is_431() {
    let cfg = Config { max_headers: 5, ..Config::default() };
    let ok = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    let mut h = Harness::with(cfg.clone());
    assert_eq!(request_ids(&h.recv(ok.as_bytes())), [1]);
    let (kind, resp) =
        rejected(cfg, b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n");
    assert_eq!((kind, resp.status), (Reject::TooManyHeaders, 431));
    assert!(String::from_utf8_lossy(&resp.body).contains("RFC 6585"));
}

#[test]
fn header_section_over_the_limit_is_431_before_it_ends() {
    let cfg = Config { max_header_section: 200, max_request_line: 100, ..Config::default() };
    let mut h = Harness::with(cfg.clone());
    let (_, r) = h.feed(format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "v".repeat(300)).as_bytes());
    assert_eq!(r.unwrap_err().kind, Reject::HeaderSectionTooLarge);
    assert_eq!(h.conn.held_input(), 0);
    let (kind, resp) =
        rejected(cfg, format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(180)).as_bytes());
    assert_eq!((kind, resp.status), (Reject::HeaderSectionTooLarge, 431));
}

#[test]
fn other_versions_get_505_and_garbage_gets_400() {
    for line in ["GET / HTTP/2.0", "GET / HTTP/1.2", "GET / HTTP/3.0"] {
        let (kind, resp) = rejected(Config::default(), format!("{line}\r\nHost: a\r\n\r\n").as_bytes());
        assert_eq!((kind, resp.status), (Reject::VersionNotSupported, 505), "{line}");
    }
    for line in ["GET /a b HTTP/1.1", "GET  / HTTP/1.1", "GET / HTTP/1.1 ", "G@T / HTTP/1.1", "GET / FTP/1.1"]
    {
        let (kind, resp) = rejected(Config::default(), format!("{line}\r\nHost: a\r\n\r\n").as_bytes());
        assert_eq!((kind, resp.status), (Reject::BadRequestLine, 400), "{line}");
    }
}

#[test]
fn invalid_targets_are_400() {
    for target in ["ftp://a/b", "http:///x", "http://user@host/", "relative/path", "/\u{7f}"] {
        let mut h = Harness::new();
        let (_, r) = h.feed(format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        let e = r.expect_err(target);
        assert_eq!(e.status(), 400, "{target}: {e:?}");
    }
}

#[test]
fn the_request_after_a_refusal_is_never_read() {
    let mut h = Harness::new();
    let mut input = b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n".to_vec();
    input.extend(get("/next"));
    let (events, r) = h.feed(&input);
    assert!(r.is_err());
    assert!(events.is_empty());
    assert_eq!(h.conn.stats().requests, 0);
}

#[test]
fn detect_tells_the_preface_from_a_request_line() {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    assert_eq!(detect(b"", 8192), Detected::NeedMore);
    for n in 1..PREFACE.len() {
        assert_eq!(detect(&PREFACE[..n], 8192), Detected::NeedMore, "{n}");
    }
    assert_eq!(detect(PREFACE, 8192), Detected::Http2);
    let mut with_frames = PREFACE.to_vec();
    with_frames.extend([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    assert_eq!(detect(&with_frames, 8192), Detected::Http2);

    let line = b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n";
    for n in 0..16 {
        assert_eq!(detect(&line[..n], 8192), Detected::NeedMore, "{n}");
    }
    assert_eq!(detect(&line[..25], 8192), Detected::NeedMore);
    assert_eq!(detect(&line[..26], 8192), Detected::Http1);
    assert_eq!(detect(b"\r\n\r\nPOST / HTTP/1.0\r\n", 8192), Detected::Http1);
    assert_eq!(detect(b"PRI * HTTP/1.1\r\n", 8192), Detected::Http1);

    // RFC 9113 3.4: an invalid preface is the HTTP/2 engine's to answer (GOAWAY), not a 400.
    assert_eq!(detect(b"INVALID CONNECTION PREFACE\r\n\r\n", 8192), Detected::Unknown);
    assert_eq!(detect(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", 8192), Detected::Unknown);
    assert_eq!(detect(b"GET / HTTP/2.0\r\n", 8192), Detected::Unknown);
    assert_eq!(detect(b"\x16\x03\x01\x02\x00", 8192), Detected::Unknown);
    assert_eq!(detect(b"GET / HTTP/1.1\n", 8192), Detected::Unknown);
    assert_eq!(detect(b"GET  / HTTP/1.1\r\n", 8192), Detected::Unknown);
    assert_eq!(detect(b"get\t/", 8192), Detected::Unknown);

    // A request line still going past the limit is HTTP/1 (the engine answers 414)...
    let long = format!("GET /{}", "a".repeat(200));
    assert_eq!(detect(long.as_bytes(), 100), Detected::Http1);
    assert_eq!(detect(long.as_bytes(), 8192), Detected::NeedMore);
    // ... but an endless method is not.
    assert_eq!(detect("A".repeat(200).as_bytes(), 100), Detected::Unknown);
}
