//! The MUSTs a server can violate, checked through the engine (bytes in, frames out), grouped
//! by RFC section: malformed requests (RFC 9113 §8.1–8.5) are answered with RST_STREAM
//! PROTOCOL_ERROR and never reach the application, header block decoding errors (RFC 7541) end
//! the connection with COMPRESSION_ERROR, and stream errors on idle streams (RFC 9113 §6.4).
//! The rules themselves are tested one by one in fields.rs and hpack.rs.

mod common_engine;
use common_engine::*;
use h2flow_core::ErrorCode;

const PROTOCOL_ERROR: u32 = ErrorCode::PROTOCOL_ERROR.0;
const FRAME_SIZE_ERROR: u32 = ErrorCode::FRAME_SIZE_ERROR.0;
const COMPRESSION_ERROR: u32 = ErrorCode::COMPRESSION_ERROR.0;

/// A request the engine must refuse as malformed (RFC 9113 8.1.1): RST_STREAM PROTOCOL_ERROR,
/// no event, and the connection goes on (a valid request after it is delivered).
fn assert_malformed(name: &str, fields: &[(&str, &str)]) {
    for end_stream in [true, false] {
        let mut h = Harness::established(default_config());
        let mut input = headers(1, fields, end_stream);
        if !end_stream {
            // The body that was already on its way is ignored.
            input.extend(data(1, b"body", true));
        }
        let ev = h.recv(&input).unwrap_or_else(|e| panic!("{name}: connection error {e}"));
        assert!(ev.is_empty(), "{name}: the application saw {ev:?}");
        let out = h.flush();
        assert_eq!(resets(&out), vec![(1, PROTOCOL_ERROR)], "{name}: {out:?}");
        assert!(goaways(&out).is_empty(), "{name}: {out:?}");
        let ev = h.recv(&get(3)).unwrap();
        assert!(matches!(&ev[..], [Ev::Headers { stream_id: 3, .. }]), "{name}: {ev:?}");
    }
}

/// `request_fields("GET", "/")` with `extra` appended.
fn get_with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut f = request_fields("GET", "/");
    f.extend_from_slice(extra);
    f
}

fn assert_accepted(name: &str, fields: &[(&str, &str)]) {
    let mut h = Harness::established(default_config());
    let ev = h.recv(&headers(1, fields, true)).unwrap();
    assert!(matches!(&ev[..], [Ev::Headers { stream_id: 1, .. }]), "{name}: {ev:?}");
    assert!(resets(&h.flush()).is_empty(), "{name}");
}

// --- RFC 9113 8.2: field names and values --------------------------------------------------------

#[test]
fn rfc9113_8_2_uppercase_field_name_is_rst_stream_protocol_error() {
    assert_malformed("uppercase name", &get_with(&[("X-Custom", "1")]));
    assert_malformed("uppercase pseudo-header", &[(":METHOD", "GET"), (":scheme", "http"), (":path", "/")]);
}

#[test]
fn rfc9113_8_2_1_invalid_characters_in_names_and_values_are_rst_stream_protocol_error() {
    assert_malformed("empty name", &get_with(&[("", "x")]));
    assert_malformed("space in name", &get_with(&[("x y", "1")]));
    assert_malformed("colon in name", &get_with(&[("x:y", "1")]));
    assert_malformed("non-ASCII name", &get_with(&[("x\u{e9}", "1")]));
    for value in ["a\0b", "a\rb", "a\nb", " lead", "trail\t"] {
        assert_malformed(&format!("value {value:?}"), &get_with(&[("x-v", value)]));
    }
    assert_malformed("CR in :path", &[(":method", "GET"), (":scheme", "http"), (":path", "/a\r\nb")]);
}

#[test]
fn rfc9113_8_2_2_connection_specific_fields_are_rst_stream_protocol_error() {
    for name in ["connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade"] {
        assert_malformed(name, &get_with(&[(name, "x")]));
    }
}

#[test]
fn rfc9113_8_2_2_te_other_than_trailers_is_rst_stream_protocol_error() {
    assert_malformed("te: gzip", &get_with(&[("te", "gzip")]));
    assert_malformed("te: trailers, gzip", &get_with(&[("te", "trailers, gzip")]));
    assert_accepted("te: trailers", &get_with(&[("te", "trailers")]));
}

// --- RFC 9113 8.3: pseudo-header fields ----------------------------------------------------------

#[test]
fn rfc9113_8_3_unknown_or_response_pseudo_header_is_rst_stream_protocol_error() {
    assert_malformed(":foo", &get_with(&[]).into_iter().chain([(":foo", "x")]).collect::<Vec<_>>());
    assert_malformed(
        ":status",
        &[(":status", "200"), (":method", "GET"), (":scheme", "http"), (":path", "/")],
    );
}

#[test]
fn rfc9113_8_3_pseudo_header_after_a_regular_field_is_rst_stream_protocol_error() {
    assert_malformed(
        "regular first",
        &[(":method", "GET"), ("accept", "*/*"), (":scheme", "http"), (":path", "/")],
    );
}

#[test]
fn rfc9113_8_3_duplicate_pseudo_header_is_rst_stream_protocol_error() {
    for dup in [":method", ":scheme", ":path", ":authority"] {
        let mut f = request_fields("GET", "/");
        f.insert(1, (dup, if dup == ":path" { "/x" } else { "x" }));
        assert_malformed(dup, &f);
    }
}

#[test]
fn rfc9113_8_3_1_missing_or_empty_pseudo_headers_are_rst_stream_protocol_error() {
    for missing in [":method", ":scheme", ":path"] {
        let f: Vec<_> = request_fields("GET", "/").into_iter().filter(|(n, _)| *n != missing).collect();
        assert_malformed(&format!("no {missing}"), &f);
        let f: Vec<_> = request_fields("GET", "/")
            .into_iter()
            .map(|(n, v)| (n, if n == missing { "" } else { v }))
            .collect();
        assert_malformed(&format!("empty {missing}"), &f);
    }
}

#[test]
fn rfc9113_8_3_1_path_rules_are_enforced() {
    assert_malformed("relative path", &request_fields("GET", "index.html"));
    assert_malformed("asterisk with GET", &request_fields("GET", "*"));
    assert_accepted("asterisk with OPTIONS", &request_fields("OPTIONS", "*"));
    assert_malformed(
        "userinfo",
        &[(":method", "GET"), (":scheme", "https"), (":authority", "user@host"), (":path", "/")],
    );
}

// --- RFC 9113 8.5: CONNECT -----------------------------------------------------------------------

#[test]
fn rfc9113_8_5_connect_rules_are_enforced() {
    assert_accepted("CONNECT", &[(":method", "CONNECT"), (":authority", "example.com:443")]);
    assert_malformed(
        "CONNECT with :scheme",
        &[(":method", "CONNECT"), (":scheme", "https"), (":authority", "example.com:443")],
    );
    assert_malformed(
        "CONNECT with :path",
        &[(":method", "CONNECT"), (":authority", "example.com:443"), (":path", "/")],
    );
    assert_malformed("CONNECT without :authority", &[(":method", "CONNECT")]);
    // RFC 8441 4: :protocol belongs to an extended CONNECT only.
    assert_malformed(
        ":protocol without CONNECT",
        &get_with(&[]).into_iter().chain([(":protocol", "websocket")]).collect::<Vec<_>>(),
    );
}

// --- RFC 9113 8.1: trailers and the HEADERS sequence ---------------------------------------------

#[test]
fn rfc9113_8_1_trailers_follow_the_field_rules() {
    for (name, trailer) in [
        ("pseudo-header", (":path", "/x")),
        ("uppercase", ("X-Sum", "1")),
        ("connection", ("connection", "close")),
    ] {
        let mut h = Harness::established(default_config());
        h.recv(&post(1, None)).unwrap();
        let ev = h.recv(&concat(&[data(1, b"x", false), headers(1, &[trailer], true)])).unwrap();
        assert_eq!(
            ev.last(),
            Some(&Ev::StreamError { stream_id: 1, code: PROTOCOL_ERROR }),
            "{name}: {ev:?}"
        );
        assert_eq!(resets(&h.flush()), vec![(1, PROTOCOL_ERROR)], "{name}");
        assert!(!h.conn.is_closed());
    }
}

// --- RFC 9113 6.4, 5.4.1: no RST_STREAM on an idle stream ----------------------------------------

/// Found by the soak (tests/fuzz_soak.rs): a PRIORITY frame with a bad length on an even (so
/// idle) stream was answered with RST_STREAM, which a client must treat as a connection error.
#[test]
fn rfc9113_6_4_stream_errors_on_idle_streams_are_connection_errors_not_rst_stream() {
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        ("self-dependent PRIORITY, idle odd stream", priority(3, 3), PROTOCOL_ERROR),
        ("self-dependent PRIORITY, even stream", priority(2, 2), PROTOCOL_ERROR),
        ("4-octet PRIORITY, idle odd stream", raw_frame(0x2, 0, 3, &[0, 0, 0, 0]), FRAME_SIZE_ERROR),
        ("6-octet PRIORITY, even stream", raw_frame(0x2, 0, 2, &[0, 0, 0, 0, 0, 0]), FRAME_SIZE_ERROR),
    ];
    for (name, frame, code) in cases {
        let mut h = Harness::established(default_config());
        h.recv(&get(1)).unwrap();
        let (got, out) = h.expect_connection_error(&frame);
        assert_eq!(got, code, "{name}");
        assert!(resets(&out).is_empty(), "{name}: {out:?}");
        // Streams the client opened may still complete (GOAWAY's last stream id).
        assert_eq!(goaways(&out), vec![(1, code)], "{name}");
    }
    // On a stream that is not idle, the same frames are stream errors.
    let mut h = Harness::established(default_config());
    h.recv(&concat(&[get(1), get(3)])).unwrap();
    let ev = h.recv(&concat(&[priority(1, 1), raw_frame(0x2, 0, 3, &[0, 0, 0, 0])])).unwrap();
    assert_eq!(
        ev,
        vec![
            Ev::StreamError { stream_id: 1, code: PROTOCOL_ERROR },
            Ev::StreamError { stream_id: 3, code: FRAME_SIZE_ERROR }
        ]
    );
    assert_eq!(resets(&h.flush()), vec![(1, PROTOCOL_ERROR), (3, FRAME_SIZE_ERROR)]);
    assert!(!h.conn.is_closed());
}

// --- RFC 7541: header block decoding errors are connection errors (RFC 9113 4.3) -----------------

/// A HEADERS frame on stream 1 carrying `block` must end the connection with COMPRESSION_ERROR.
fn assert_compression_error(name: &str, h: &mut Harness, block: &[u8]) {
    let (code, out) = h.expect_connection_error(&headers_frame(1, block, true, true));
    assert_eq!(code, COMPRESSION_ERROR, "{name}");
    assert!(resets(&out).is_empty(), "{name}: {out:?}");
}

/// A valid GET's block, to follow a size update.
fn get_block() -> Vec<u8> {
    literal_block(&request_fields("GET", "/"))
}

#[test]
fn rfc7541_6_3_size_update_above_settings_header_table_size_is_goaway_compression_error() {
    let mut cfg = default_config();
    cfg.header_table_size = 256;
    let mut h = Harness::established(cfg);
    let mut block = Vec::new();
    put_int(&mut block, 0x20, 5, 257);
    block.extend(get_block());
    assert_compression_error("size update 257 > 256", &mut h, &block);
}

#[test]
fn rfc7541_4_2_required_size_update_missing_after_a_smaller_table_size_is_acknowledged() {
    let mut cfg = default_config();
    cfg.header_table_size = 256;
    let mut h = Harness::established(cfg.clone());
    assert_compression_error("no size update", &mut h, &get_block());
    // With it, the request goes through.
    let mut h = Harness::established(cfg);
    let mut block = Vec::new();
    put_int(&mut block, 0x20, 5, 256);
    block.extend(get_block());
    let ev = h.recv(&headers_frame(1, &block, true, true)).unwrap();
    assert!(matches!(&ev[..], [Ev::Headers { stream_id: 1, .. }]), "{ev:?}");
}

/// RFC 7541 4.2 and RFC 9113 6.5.3: until the client acknowledges our SETTINGS it may use the
/// initial 4096 octets, and may say so with a size update.
#[test]
fn rfc7541_4_2_before_our_settings_are_acknowledged_the_limit_is_4096() {
    let mut cfg = default_config();
    cfg.header_table_size = 256;
    let mut h = Harness::unacked(cfg);
    let mut block = Vec::new();
    put_int(&mut block, 0x20, 5, 4096);
    block.extend(get_block());
    let ev = h.recv(&headers_frame(1, &block, true, true)).unwrap();
    assert!(matches!(&ev[..], [Ev::Headers { stream_id: 1, .. }]), "{ev:?}");
    // Acknowledged: 256 is the limit, and the next block must bring the table down to it.
    h.recv(&settings_ack()).unwrap();
    let mut block = Vec::new();
    put_int(&mut block, 0x20, 5, 4096);
    block.extend(get_block());
    assert_compression_error("size update 4096 after the ACK", &mut h, &block);
}

#[test]
fn rfc7541_4_2_size_update_after_a_field_is_goaway_compression_error() {
    let mut h = Harness::established(default_config());
    let mut block = get_block();
    put_int(&mut block, 0x20, 5, 0);
    assert_compression_error("size update at the end", &mut h, &block);
}

#[test]
fn rfc7541_2_3_3_index_out_of_range_is_goaway_compression_error() {
    // 61 static entries, an empty dynamic table.
    for index in [62usize, 1000] {
        let mut h = Harness::established(default_config());
        let mut block = get_block();
        put_int(&mut block, 0x80, 7, index);
        assert_compression_error(&format!("index {index}"), &mut h, &block);
    }
    // An indexed name out of range too.
    let mut h = Harness::established(default_config());
    let mut block = get_block();
    put_int(&mut block, 0x00, 4, 70);
    block.extend_from_slice(&[1, b'x']);
    assert_compression_error("name index 70", &mut h, &block);
    // RFC 7541 6.1: index 0 is not used.
    let mut h = Harness::established(default_config());
    let mut block = get_block();
    block.push(0x80);
    assert_compression_error("index 0", &mut h, &block);
}

#[test]
fn rfc7541_5_1_integer_overflow_is_goaway_compression_error() {
    let mut h = Harness::established(default_config());
    let mut block = get_block();
    block.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert_compression_error("index past 2^28", &mut h, &block);
    // A string length that runs past the end of the block.
    let mut h = Harness::established(default_config());
    let mut block = get_block();
    block.extend_from_slice(&[0x00, 0x7f, 0xff, 0xff, 0xff, 0x7f]);
    assert_compression_error("string length", &mut h, &block);
}

#[test]
fn rfc7541_5_2_invalid_huffman_padding_or_eos_is_goaway_compression_error() {
    // '0' is 00000 (5 bits): padding of zeros instead of ones.
    let zeros = [0x00];
    // Eight bits of padding: longer than 7 bits.
    let long = [0xff];
    // Thirty ones: the EOS symbol inside the string.
    let eos = [0xff, 0xff, 0xff, 0xff];
    for (name, coded) in [("zero padding", &zeros[..]), ("8-bit padding", &long[..]), ("EOS", &eos[..])] {
        let mut h = Harness::established(default_config());
        let mut block = get_block();
        block.extend_from_slice(&[0x00, 0x01, b'x', 0x80 | coded.len() as u8]);
        block.extend_from_slice(coded);
        assert_compression_error(name, &mut h, &block);
    }
    // The same field with valid Huffman coding ('0' padded with ones) is accepted.
    let mut h = Harness::established(default_config());
    let mut block = get_block();
    block.extend_from_slice(&[0x00, 0x01, b'x', 0x81, 0x07]);
    let ev = h.recv(&headers_frame(1, &block, true, true)).unwrap();
    assert!(matches!(&ev[..], [Ev::Headers { stream_id: 1, .. }]), "{ev:?}");
}

#[test]
fn rfc7541_a_decoding_error_in_a_block_for_an_ignored_stream_still_ends_the_connection() {
    // After our GOAWAY new streams are ignored, but their blocks are still decoded (the table
    // must stay in step), so a broken one is still a connection error (RFC 9113 4.3).
    let mut h = Harness::established(default_config());
    h.recv(&get(1)).unwrap();
    h.conn.goaway(ErrorCode::NO_ERROR, b"");
    h.flush();
    let mut block = get_block();
    block.push(0x80);
    let (code, _) = h.expect_connection_error(&headers_frame(3, &block, true, true));
    assert_eq!(code, COMPRESSION_ERROR);
}
