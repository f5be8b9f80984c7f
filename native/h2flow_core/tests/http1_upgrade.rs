//! The h2c upgrade (RFC 7540 §3.2): `101 Switching Protocols`, everything the HTTP/2 engine
//! needs handed over, and the HTTP/2 engine serving the upgraded request on stream 1; and the
//! requests that must be served over HTTP/1.1 instead.

mod common_engine;
mod common_http1;

use common_engine::{parse_output, settings, settings_ack, Out, PREFACE};
use common_http1::{body_of, find, request_ids, response, Ev, Harness};
use h2flow_core::frame::setting;
use h2flow_core::hpack::HeaderList;
use h2flow_core::http1::upgrade::base64url_decode;
use h2flow_core::http1::{Config, Event};
use h2flow_core::{Connection, Event as H2Event, Payload};

const SWITCHING: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n";

fn base64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = c.iter().enumerate().fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A SETTINGS payload (no frame header).
fn settings_payload(params: &[(u16, u32)]) -> Vec<u8> {
    settings(params)[9..].to_vec()
}

fn upgrade_request(method: &str, extra: &str, params: &[(u16, u32)]) -> Vec<u8> {
    format!(
        "{method} /path?q HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade, HTTP2-Settings\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: {}\r\nUser-Agent: test\r\n{extra}\r\n",
        base64url(&settings_payload(params))
    )
    .into_bytes()
}

fn the_upgrade(events: Vec<Event>) -> h2flow_core::http1::Upgrade {
    match events.into_iter().last() {
        Some(Event::Upgrade(u)) => *u,
        other => panic!("expected an upgrade: {other:?}"),
    }
}

fn strings(l: &HeaderList) -> Vec<(String, String)> {
    common_http1::strings(l)
}

#[test]
fn an_upgraded_get_is_served_on_stream_1() {
    let params = [(setting::INITIAL_WINDOW_SIZE, 100_000), (setting::MAX_FRAME_SIZE, 20_000)];
    let mut h = Harness::new();
    let mut input = upgrade_request("GET", "", &params);
    let request_len = input.len();
    input.extend(PREFACE);
    input.extend(settings(&[]));
    h.conn.recv(&input, h.now).unwrap();
    let up = the_upgrade(h.conn.take_events());
    assert_eq!(up.settings, params);
    assert!(up.body.is_empty());
    assert_eq!(up.rest, Payload::Input { start: request_len, len: input.len() - request_len }, "no copy");
    let got = strings(&up.fields);
    let expected = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "example.com"),
        (":path", "/path?q"),
        ("user-agent", "test"),
    ];
    assert_eq!(got, expected.map(|(n, v)| (n.to_string(), v.to_string())), "no hop-by-hop field, no host");
    assert_eq!(h.flush(), SWITCHING);
    assert!(h.conn.is_done());
    assert!(!h.conn.wants_input());
    assert_eq!(h.conn.stats().upgrades, 1);
    assert_eq!(h.conn.stats().requests, 1);

    // The HTTP/2 engine takes over.
    let rest = up.rest.resolve(&input).to_vec();
    let mut h2 =
        Connection::from_upgrade(Default::default(), h.now, &up.settings, up.fields, up.body).unwrap();
    let events = h2.take_events();
    assert!(matches!(&events[..], [H2Event::Headers { stream_id: 1, end_stream: true, .. }]), "{events:?}");
    assert_eq!(h2.stream_send_window(1), Some(100_000), "the client's SETTINGS apply");
    assert_eq!(h2.peer_max_frame_size(), 20_000);
    h2.recv(&rest, h.now).unwrap();
    let out = parse_output(&h2.flush(h.now));
    assert!(matches!(out[0], Out::Settings { ack: false, .. }), "the server preface comes first: {out:?}");
    assert!(out.contains(&Out::Settings { ack: true, params: vec![] }));
    h2.send_headers(1, &[(b":status", b"200")], false).unwrap();
    h2.send_data(1, &[7; 30_000], true).unwrap();
    h2.recv(&settings_ack(), h.now).unwrap();
    let out = parse_output(&h2.flush(h.now));
    assert!(matches!(out[0], Out::Headers { stream_id: 1, end_stream: false, .. }));
    let data: Vec<&Out> = out.iter().filter(|f| matches!(f, Out::Data { .. })).collect();
    assert_eq!(
        data,
        [
            &Out::Data { stream_id: 1, len: 20_000, end_stream: false },
            &Out::Data { stream_id: 1, len: 10_000, end_stream: true }
        ]
    );
    assert_eq!(h2.open_streams(), 0);
    // Stream 3 is the client's next.
    h2.recv(&common_engine::get(3), h.now).unwrap();
    assert!(matches!(&h2.take_events()[..], [H2Event::Headers { stream_id: 3, .. }]));
}

#[test]
fn an_upgraded_post_carries_its_body() {
    let mut h = Harness::new();
    let mut input = upgrade_request("POST", "Content-Length: 5\r\n", &[]);
    input.extend(b"hello");
    input.extend(&PREFACE[..10]);
    h.conn.recv(&input, h.now).unwrap();
    let up = the_upgrade(h.conn.take_events());
    assert_eq!(up.body, b"hello");
    assert_eq!(up.rest.resolve(&input), &PREFACE[..10]);
    assert_eq!(h.flush(), SWITCHING);
    let mut h2 =
        Connection::from_upgrade(Default::default(), h.now, &up.settings, up.fields, up.body).unwrap();
    let events = h2.take_events();
    assert!(matches!(&events[0], H2Event::Headers { stream_id: 1, end_stream: false, .. }));
    assert_eq!(
        events[1],
        H2Event::Data { stream_id: 1, data: Payload::Owned(b"hello".to_vec()), end_stream: true }
    );
    // The rest of the preface, split.
    h2.recv(up.rest.resolve(&input), h.now).unwrap();
    h2.recv(&PREFACE[10..], h.now).unwrap();
    h2.recv(&settings(&[]), h.now).unwrap();
    h2.send_headers(1, &[(b":status", b"204")], true).unwrap();
    let out = parse_output(&h2.flush(h.now));
    assert!(out.iter().any(|f| matches!(f, Out::Headers { stream_id: 1, end_stream: true, .. })));
}

#[test]
fn an_upgrade_that_expects_100_continue_gets_it_first() {
    let mut h = Harness::new();
    h.conn
        .recv(&upgrade_request("PUT", "Content-Length: 3\r\nExpect: 100-continue\r\n", &[]), h.now)
        .unwrap();
    assert!(h.conn.take_events().is_empty());
    assert_eq!(h.flush(), b"HTTP/1.1 100 Continue\r\n\r\n");
    h.conn.recv(b"ab", h.now).unwrap();
    h.conn.recv(b"c", h.now).unwrap();
    let up = the_upgrade(h.conn.take_events());
    assert_eq!(up.body, b"abc");
    assert!(up.rest.is_empty());
    assert_eq!(h.flush(), SWITCHING);
}

#[test]
fn the_upgrade_request_split_at_every_byte() {
    let mut input = upgrade_request("POST", "Content-Length: 4\r\n", &[(setting::ENABLE_PUSH, 0)]);
    input.extend(b"body");
    input.extend(PREFACE);
    for split in 1..input.len() {
        let mut h = Harness::new();
        let (mut events, r) = h.feed(&input[..split]);
        r.unwrap();
        let (more, r) = h.feed(&input[split..]);
        r.unwrap();
        events.extend(more);
        let [Ev::Upgrade { settings, body, rest, .. }] = &events[..] else {
            panic!("split {split} of {}: {events:?} {:?}", input.len(), h.conn)
        };
        assert_eq!(settings, &[(setting::ENABLE_PUSH, 0)]);
        assert_eq!(body, b"body", "split {split}");
        // The upgrade completes in the read that ends the body; what that read has beyond the
        // request is `rest`, and later reads go to the HTTP/2 engine.
        let rest_start = input.len() - PREFACE.len();
        let expected = if split >= rest_start { &input[rest_start..split] } else { &input[rest_start..] };
        assert_eq!(rest, expected, "split {split}");
        assert!(h.conn.is_closing());
    }
}

fn served_over_http1(cfg: Config, input: &[u8]) -> u64 {
    let mut h = Harness::with(cfg);
    let events = h.recv(input);
    assert_eq!(request_ids(&events), [1], "{:?}", String::from_utf8_lossy(input));
    assert!(!events.iter().any(|e| matches!(e, Ev::Upgrade { .. })));
    h.respond(1, "200", b"over HTTP/1.1");
    let out = h.flush();
    assert!(find(&out, b"101").is_none());
    assert_eq!(response(&out).body, b"over HTTP/1.1");
    h.conn.stats().upgrades_declined
}

#[test]
fn invalid_or_disallowed_upgrades_are_served_over_http1() {
    let good = String::from_utf8(upgrade_request("GET", "", &[])).unwrap();
    let b64 = base64url(&settings_payload(&[(setting::MAX_FRAME_SIZE, 20_000)]));
    let cases: Vec<(&str, String)> = vec![
        ("no HTTP2-Settings", good.replace(&format!("HTTP2-Settings: {}\r\n", base64url(&[])), "")),
        ("two HTTP2-Settings", good.replace("User-Agent", &format!("HTTP2-Settings: {b64}\r\nUser-Agent"))),
        (
            "Connection without HTTP2-Settings",
            good.replace("Connection: Upgrade, HTTP2-Settings", "Connection: Upgrade"),
        ),
        (
            "Connection without Upgrade",
            good.replace("Connection: Upgrade, HTTP2-Settings", "Connection: HTTP2-Settings"),
        ),
        ("HTTP/1.0", good.replace("HTTP/1.1", "HTTP/1.0")),
        ("invalid base64url", good.replace("HTTP2-Settings: ", "HTTP2-Settings: a+b/")),
        ("length not a multiple of 6", good.replace("HTTP2-Settings: ", "HTTP2-Settings: AAAA")),
        (
            "invalid SETTINGS value",
            good.replace(
                "HTTP2-Settings: ",
                &format!("HTTP2-Settings: {}", base64url(&settings_payload(&[(setting::ENABLE_PUSH, 2)]))),
            ),
        ),
        (
            "chunked body",
            good.replace("User-Agent: test\r\n", "User-Agent: test\r\nTransfer-Encoding: chunked\r\n")
                + "0\r\n\r\n",
        ),
        (
            "body over max_upgrade_body",
            good.replace("User-Agent: test\r\n", "Content-Length: 70000\r\n") + &"x".repeat(70_000),
        ),
    ];
    for (what, input) in cases {
        assert_eq!(served_over_http1(Config::default(), input.as_bytes()), 1, "{what}");
    }
    assert_eq!(
        served_over_http1(Config { secure: true, ..Config::default() }, good.as_bytes()),
        1,
        "over TLS"
    );
    assert_eq!(
        served_over_http1(Config { h2c_upgrade: false, ..Config::default() }, good.as_bytes()),
        1,
        "turned off"
    );
}

#[test]
fn an_upgrade_behind_another_request_is_served_over_http1() {
    let mut h = Harness::new();
    let mut input = common_http1::get("/first");
    input.extend(upgrade_request("GET", "", &[]));
    assert_eq!(request_ids(&h.recv(&input)), [1, 2]);
    assert_eq!(h.conn.stats().upgrades_declined, 1);
}

#[test]
fn base64url_decoding_is_strict() {
    assert_eq!(base64url_decode(b"").unwrap(), b"");
    assert_eq!(
        base64url_decode(b"AAMAAABkAAQCAAAAAAIAAAAA").unwrap(),
        [0, 3, 0, 0, 0, 100, 0, 4, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0]
    );
    assert_eq!(base64url_decode(b"_-8").unwrap(), [0xff, 0xef]);
    assert_eq!(base64url_decode(b"_-8=").unwrap(), [0xff, 0xef], "padding tolerated");
    assert!(base64url_decode(b"/+8").is_none(), "base64, not base64url");
    assert!(base64url_decode(b"A").is_none());
    assert!(base64url_decode(b"AA AA").is_none());
    for len in 0..40u8 {
        let bytes: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
        assert_eq!(base64url_decode(base64url(&bytes).as_bytes()).unwrap(), bytes);
    }
}

#[test]
fn body_of_an_upgraded_stream_is_not_flow_controlled() {
    // The body came over HTTP/1.1: consuming it credits nothing and buffers nothing.
    let mut h = Harness::new();
    let mut input = upgrade_request("POST", "Content-Length: 3\r\n", &[]);
    input.extend(b"abc");
    h.conn.recv(&input, h.now).unwrap();
    let up = the_upgrade(h.conn.take_events());
    let mut h2 =
        Connection::from_upgrade(Default::default(), h.now, &up.settings, up.fields, up.body).unwrap();
    assert_eq!(h2.buffered(), 0);
    h2.consume(1, 3).unwrap();
    let (_, ended) = body_of(&[Ev::Data { id: 1, data: b"abc".to_vec(), end: true }], 1);
    assert!(ended);
}

#[test]
fn an_upgraded_request_over_the_header_list_limit_gets_431() {
    let mut fields = HeaderList::new();
    for (n, v) in [(":method", "GET"), (":scheme", "http"), (":path", "/")] {
        fields.push(n.as_bytes(), v.as_bytes());
    }
    fields.push(b"x-big", &[b'v'; 2000]);
    let cfg = h2flow_core::Config { max_header_list_size: 1000, ..Default::default() };
    let mut h2 = Connection::from_upgrade(cfg, std::time::Instant::now(), &[], fields, Vec::new()).unwrap();
    assert!(h2.take_events().is_empty());
    let out = parse_output(&h2.flush(std::time::Instant::now()));
    assert!(out.iter().any(|f| matches!(f, Out::Headers { stream_id: 1, end_stream: true, .. })));
    assert_eq!(h2.stats().defences.header_list_too_large, 1);
}
