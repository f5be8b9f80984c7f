//! Valid frames of every type (RFC 9113 §4, §6) decode to the expected values. Every input is
//! written out byte by byte here, never produced by the encoder under test.

use h2flow_core::frame::{
    decode, frame_len, kind, setting, Continuation, Data, Frame, GoAway, Head, Headers, Ping, Priority,
    PriorityFrame, PushPromise, RstStream, Settings, Unknown, WindowUpdate, DEFAULT_MAX_FRAME_SIZE,
    MAX_STREAM_ID,
};
use h2flow_core::ErrorCode;

/// Decodes `bytes`, which must hold exactly one whole frame, and checks that decoding consumed
/// all of it and nothing more, even with another frame behind it.
fn decode_exact(bytes: &[u8]) -> Frame<'_> {
    let (frame, len) = match decode(bytes, DEFAULT_MAX_FRAME_SIZE) {
        Ok(Some(decoded)) => decoded,
        other => panic!("expected a frame from {bytes:02x?}, got {other:?}"),
    };
    assert_eq!(len, bytes.len(), "decode must consume exactly the frame");
    assert_eq!(frame_len(bytes), Some(len));

    let mut followed = bytes.to_vec();
    followed.extend_from_slice(&[0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    let (again, len_again) = decode(&followed, DEFAULT_MAX_FRAME_SIZE).unwrap().unwrap();
    assert_eq!(len_again, len, "decode read past the frame");
    assert_eq!(again, frame);
    frame
}

fn data(frame: Frame<'_>) -> Data<'_> {
    match frame {
        Frame::Data(d) => d,
        other => panic!("expected DATA, got {other:?}"),
    }
}

fn settings(frame: Frame<'_>) -> Settings<'_> {
    match frame {
        Frame::Settings(s) => s,
        other => panic!("expected SETTINGS, got {other:?}"),
    }
}

// --- DATA (§6.1) ---

#[test]
fn data_plain() {
    let bytes = [0, 0, 5, 0x0, 0x0, 0, 0, 0, 1, b'h', b'e', b'l', b'l', b'o'];
    let d = data(decode_exact(&bytes));
    assert_eq!(d, Data { stream_id: 1, end_stream: false, data: b"hello", pad_len: None });
    assert_eq!(d.flow_len(), 5);
}

#[test]
fn data_padded() {
    // Pad length 3, "hi", three octets of padding.
    let bytes = [0, 0, 6, 0x0, 0x8, 0, 0, 0, 3, 3, b'h', b'i', 0, 0, 0];
    let d = data(decode_exact(&bytes));
    assert_eq!(d, Data { stream_id: 3, end_stream: false, data: b"hi", pad_len: Some(3) });
    // §6.9.1: the whole payload counts, pad-length octet and padding included.
    assert_eq!(d.flow_len(), 6);
}

#[test]
fn data_padded_with_zero_pad_length() {
    let bytes = [0, 0, 1, 0x0, 0x8, 0, 0, 0, 1, 0];
    let d = data(decode_exact(&bytes));
    assert_eq!(d, Data { stream_id: 1, end_stream: false, data: b"", pad_len: Some(0) });
    assert_eq!(d.flow_len(), 1);
}

#[test]
fn data_padding_filling_the_payload_but_the_pad_length_octet() {
    // Pad length 4 in a 5-octet payload: the largest padding §6.1 allows, no data.
    let bytes = [0, 0, 5, 0x0, 0x9, 0, 0, 0, 1, 4, 0, 0, 0, 0];
    let d = data(decode_exact(&bytes));
    assert_eq!(d, Data { stream_id: 1, end_stream: true, data: b"", pad_len: Some(4) });
    assert_eq!(d.flow_len(), 5);
}

#[test]
fn data_nonzero_padding_is_not_checked() {
    // §6.1: a receiver "is not obligated to verify padding"; this codec does not.
    let bytes = [0, 0, 4, 0x0, 0x8, 0, 0, 0, 1, 2, b'x', 0xff, 0x01];
    let d = data(decode_exact(&bytes));
    assert_eq!(d, Data { stream_id: 1, end_stream: false, data: b"x", pad_len: Some(2) });
    assert_eq!(d.flow_len(), 4);
}

#[test]
fn data_end_stream_empty() {
    let bytes = [0, 0, 0, 0x0, 0x1, 0, 0, 0, 7];
    let d = data(decode_exact(&bytes));
    assert_eq!(d, Data { stream_id: 7, end_stream: true, data: b"", pad_len: None });
    assert_eq!(d.flow_len(), 0);
}

#[test]
fn data_undefined_flags_are_ignored() {
    // §4.1: flags with no meaning for the type "MUST be ignored". 0xf6 is every bit except
    // END_STREAM and PADDED.
    let bytes = [0, 0, 2, 0x0, 0xf6, 0, 0, 0, 1, b'o', b'k'];
    let d = data(decode_exact(&bytes));
    assert_eq!(d, Data { stream_id: 1, end_stream: false, data: b"ok", pad_len: None });
}

#[test]
fn data_flow_len_of_large_padded_frame() {
    let mut bytes = vec![0x00, 0x01, 0x2c, 0x0, 0x8, 0, 0, 0, 1, 255];
    bytes.extend_from_slice(&[b'a'; 44]);
    bytes.extend_from_slice(&[0; 255]);
    assert_eq!(bytes.len(), 9 + 300);
    let d = data(decode_exact(&bytes));
    assert_eq!(d.data, &[b'a'; 44][..]);
    assert_eq!(d.pad_len, Some(255));
    assert_eq!(d.flow_len(), 300);
}

// --- HEADERS (§6.2) ---

#[test]
fn headers_plain() {
    let bytes = [0, 0, 3, 0x1, 0x4, 0, 0, 0, 1, 0x82, 0x86, 0x84];
    let expected = Headers {
        stream_id: 1,
        end_stream: false,
        end_headers: true,
        priority: None,
        fragment: &[0x82, 0x86, 0x84],
        pad_len: None,
    };
    assert_eq!(decode_exact(&bytes), Frame::Headers(expected));
}

#[test]
fn headers_padded() {
    let bytes = [0, 0, 5, 0x1, 0x8 | 0x4, 0, 0, 0, 5, 2, 0x82, 0x86, 0, 0];
    let expected = Headers {
        stream_id: 5,
        end_stream: false,
        end_headers: true,
        priority: None,
        fragment: &[0x82, 0x86],
        pad_len: Some(2),
    };
    assert_eq!(decode_exact(&bytes), Frame::Headers(expected));
}

#[test]
fn headers_with_priority_fields() {
    // Exclusive bit set, dependency 3, weight field 15.
    let bytes = [0, 0, 6, 0x1, 0x20 | 0x4, 0, 0, 0, 5, 0x80, 0, 0, 3, 15, 0x82];
    let expected = Headers {
        stream_id: 5,
        end_stream: false,
        end_headers: true,
        priority: Some(Priority { exclusive: true, dependency: 3, weight: 15 }),
        fragment: &[0x82],
        pad_len: None,
    };
    assert_eq!(decode_exact(&bytes), Frame::Headers(expected));
}

#[test]
fn headers_with_priority_not_exclusive_and_empty_fragment() {
    let bytes = [0, 0, 5, 0x1, 0x20, 0, 0, 0, 9, 0x7f, 0xff, 0xff, 0xff, 255];
    let expected = Headers {
        stream_id: 9,
        end_stream: false,
        end_headers: false,
        priority: Some(Priority { exclusive: false, dependency: MAX_STREAM_ID, weight: 255 }),
        fragment: &[],
        pad_len: None,
    };
    assert_eq!(decode_exact(&bytes), Frame::Headers(expected));
}

#[test]
fn headers_padded_with_priority() {
    // Pad length 1, dependency 5 (not exclusive), weight 16, fragment 82 86, one pad octet;
    // END_STREAM without END_HEADERS.
    let bytes = [0, 0, 9, 0x1, 0x8 | 0x20 | 0x1, 0, 0, 0, 7, 1, 0, 0, 0, 5, 16, 0x82, 0x86, 0];
    let expected = Headers {
        stream_id: 7,
        end_stream: true,
        end_headers: false,
        priority: Some(Priority { exclusive: false, dependency: 5, weight: 16 }),
        fragment: &[0x82, 0x86],
        pad_len: Some(1),
    };
    assert_eq!(decode_exact(&bytes), Frame::Headers(expected));
}

#[test]
fn headers_padded_with_priority_and_padding_filling_the_rest() {
    // 1 pad-length octet + 5 priority octets + 2 pad octets: an empty fragment, still valid.
    let bytes = [0, 0, 8, 0x1, 0x8 | 0x20, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0];
    let expected = Headers {
        stream_id: 1,
        end_stream: false,
        end_headers: false,
        priority: Some(Priority { exclusive: false, dependency: 0, weight: 0 }),
        fragment: &[],
        pad_len: Some(2),
    };
    assert_eq!(decode_exact(&bytes), Frame::Headers(expected));
}

#[test]
fn headers_end_stream_and_end_headers() {
    let bytes = [0, 0, 1, 0x1, 0x1 | 0x4, 0, 0, 0, 3, 0x88];
    let expected = Headers {
        stream_id: 3,
        end_stream: true,
        end_headers: true,
        priority: None,
        fragment: &[0x88],
        pad_len: None,
    };
    assert_eq!(decode_exact(&bytes), Frame::Headers(expected));
}

#[test]
fn headers_without_end_flags() {
    let bytes = [0, 0, 1, 0x1, 0x0, 0, 0, 0, 3, 0x88];
    let Frame::Headers(h) = decode_exact(&bytes) else { panic!("expected HEADERS") };
    assert!(!h.end_stream && !h.end_headers);
}

// --- PRIORITY (§6.3) ---

#[test]
fn priority_frame() {
    let bytes = [0, 0, 5, 0x2, 0x0, 0, 0, 0, 5, 0x80, 0, 0, 1, 0xff];
    let expected =
        PriorityFrame { stream_id: 5, priority: Priority { exclusive: true, dependency: 1, weight: 255 } };
    assert_eq!(decode_exact(&bytes), Frame::Priority(expected));
}

#[test]
fn priority_frame_flags_ignored() {
    let bytes = [0, 0, 5, 0x2, 0xff, 0, 0, 0, 3, 0, 0, 0, 0, 0];
    let expected =
        PriorityFrame { stream_id: 3, priority: Priority { exclusive: false, dependency: 0, weight: 0 } };
    assert_eq!(decode_exact(&bytes), Frame::Priority(expected));
}

// --- RST_STREAM (§6.4) ---

#[test]
fn rst_stream() {
    let bytes = [0, 0, 4, 0x3, 0x0, 0, 0, 0, 1, 0, 0, 0, 8];
    assert_eq!(
        decode_exact(&bytes),
        Frame::RstStream(RstStream { stream_id: 1, error_code: ErrorCode::CANCEL })
    );
}

#[test]
fn rst_stream_unknown_error_code_kept() {
    // §7: unknown codes "MUST NOT trigger any special behavior"; the value is kept.
    let bytes = [0, 0, 4, 0x3, 0x0, 0, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef];
    assert_eq!(
        decode_exact(&bytes),
        Frame::RstStream(RstStream { stream_id: 256, error_code: ErrorCode(0xdead_beef) })
    );
}

// --- SETTINGS (§6.5) ---

#[test]
fn settings_params() {
    #[rustfmt::skip]
    let bytes = [
        0, 0, 18, 0x4, 0x0, 0, 0, 0, 0,
        0, 1, 0, 0, 0x10, 0,      // HEADER_TABLE_SIZE 4096
        0, 3, 0, 0, 0, 100,       // MAX_CONCURRENT_STREAMS 100
        0, 4, 0, 0, 0xff, 0xff,   // INITIAL_WINDOW_SIZE 65535
    ];
    let s = settings(decode_exact(&bytes));
    assert!(!s.ack);
    assert_eq!(s.len(), 3);
    assert!(!s.is_empty());
    assert_eq!(s.raw, &bytes[9..]);
    let params: Vec<_> = s.params().collect();
    assert_eq!(
        params,
        [
            (setting::HEADER_TABLE_SIZE, 4096),
            (setting::MAX_CONCURRENT_STREAMS, 100),
            (setting::INITIAL_WINDOW_SIZE, 65535)
        ]
    );
}

#[test]
fn settings_ack() {
    let bytes = [0, 0, 0, 0x4, 0x1, 0, 0, 0, 0];
    let s = settings(decode_exact(&bytes));
    assert_eq!(s, Settings { ack: true, raw: &[] });
    assert!(s.is_empty());
    assert_eq!(s.params().count(), 0);
}

#[test]
fn settings_empty_without_ack() {
    let bytes = [0, 0, 0, 0x4, 0x0, 0, 0, 0, 0];
    assert_eq!(settings(decode_exact(&bytes)), Settings { ack: false, raw: &[] });
}

#[test]
fn settings_repeated_identifier_kept_in_order() {
    // §6.5.3: values are processed in the order they appear; the last one wins.
    #[rustfmt::skip]
    let bytes = [
        0, 0, 18, 0x4, 0x0, 0, 0, 0, 0,
        0, 4, 0, 0, 0, 1,
        0, 4, 0, 0, 0, 3,
        0, 4, 0, 0, 0, 2,
    ];
    let params: Vec<_> = settings(decode_exact(&bytes)).params().collect();
    assert_eq!(params, [(4, 1), (4, 3), (4, 2)]);
}

#[test]
fn settings_unknown_identifiers_kept() {
    // §6.5.2: unknown identifiers MUST be ignored, so no value check applies to them.
    #[rustfmt::skip]
    let bytes = [
        0, 0, 24, 0x4, 0x0, 0, 0, 0, 0,
        0, 0, 0xff, 0xff, 0xff, 0xff,     // identifier 0 is not defined
        0, 7, 0, 0, 0, 2,                 // 7 is not defined either
        0x0a, 0x0a, 0x12, 0x34, 0x56, 0x78,
        0xff, 0xff, 0x80, 0, 0, 0,
    ];
    let params: Vec<_> = settings(decode_exact(&bytes)).params().collect();
    assert_eq!(params, [(0, u32::MAX), (7, 2), (0x0a0a, 0x1234_5678), (0xffff, 0x8000_0000)]);
}

#[test]
fn settings_boundary_values_accepted() {
    #[rustfmt::skip]
    let bytes = [
        0, 0, 60, 0x4, 0x0, 0, 0, 0, 0,
        0, 1, 0xff, 0xff, 0xff, 0xff,     // HEADER_TABLE_SIZE 2^32-1
        0, 2, 0, 0, 0, 0,                 // ENABLE_PUSH 0
        0, 2, 0, 0, 0, 1,                 // ENABLE_PUSH 1
        0, 3, 0, 0, 0, 0,                 // MAX_CONCURRENT_STREAMS 0
        0, 4, 0x7f, 0xff, 0xff, 0xff,     // INITIAL_WINDOW_SIZE 2^31-1
        0, 5, 0, 0, 0x40, 0,              // MAX_FRAME_SIZE 2^14
        0, 5, 0, 0xff, 0xff, 0xff,        // MAX_FRAME_SIZE 2^24-1
        0, 6, 0xff, 0xff, 0xff, 0xff,     // MAX_HEADER_LIST_SIZE 2^32-1
        0, 8, 0, 0, 0, 1,                 // ENABLE_CONNECT_PROTOCOL 1
        0, 9, 0, 0, 0, 1,                 // NO_RFC7540_PRIORITIES 1
    ];
    let s = settings(decode_exact(&bytes));
    assert_eq!(s.len(), 10);
    let params: Vec<_> = s.params().collect();
    assert_eq!(params[4], (setting::INITIAL_WINDOW_SIZE, (1 << 31) - 1));
    assert_eq!(params[6], (setting::MAX_FRAME_SIZE, (1 << 24) - 1));
}

#[test]
fn setting_names() {
    assert_eq!(setting::name(setting::INITIAL_WINDOW_SIZE), Some("initial_window_size"));
    assert_eq!(setting::from_name("max_frame_size"), Some(setting::MAX_FRAME_SIZE));
    assert_eq!(setting::from_name("no_rfc7540_priorities"), Some(setting::NO_RFC7540_PRIORITIES));
    assert_eq!(setting::name(7), None);
    assert_eq!(setting::from_name("bogus"), None);
}

// --- PUSH_PROMISE (§6.6) ---

#[test]
fn push_promise() {
    let bytes = [0, 0, 5, 0x5, 0x4, 0, 0, 0, 1, 0, 0, 0, 2, 0x82];
    let expected = PushPromise {
        stream_id: 1,
        promised_stream_id: 2,
        end_headers: true,
        fragment: &[0x82],
        pad_len: None,
    };
    assert_eq!(decode_exact(&bytes), Frame::PushPromise(expected));
}

#[test]
fn push_promise_padded_reserved_bit_ignored() {
    // Pad length 1, promised stream 4 with the reserved bit set, fragment 82 84, one pad octet.
    let bytes = [0, 0, 8, 0x5, 0x8, 0, 0, 0, 3, 1, 0x80, 0, 0, 4, 0x82, 0x84, 0];
    let expected = PushPromise {
        stream_id: 3,
        promised_stream_id: 4,
        end_headers: false,
        fragment: &[0x82, 0x84],
        pad_len: Some(1),
    };
    assert_eq!(decode_exact(&bytes), Frame::PushPromise(expected));
}

#[test]
fn push_promise_only_promised_stream_id() {
    let bytes = [0, 0, 4, 0x5, 0x4, 0, 0, 0, 1, 0, 0, 0, 6];
    let Frame::PushPromise(p) = decode_exact(&bytes) else { panic!("expected PUSH_PROMISE") };
    assert_eq!((p.promised_stream_id, p.fragment, p.pad_len), (6, &[][..], None));
}

// --- PING (§6.7) ---

#[test]
fn ping() {
    let bytes = [0, 0, 8, 0x6, 0x0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    assert_eq!(decode_exact(&bytes), Frame::Ping(Ping { ack: false, data: [1, 2, 3, 4, 5, 6, 7, 8] }));
}

#[test]
fn ping_ack() {
    let bytes = [0, 0, 8, 0x6, 0x1, 0, 0, 0, 0, 0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0];
    assert_eq!(
        decode_exact(&bytes),
        Frame::Ping(Ping { ack: true, data: [0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0] })
    );
}

// --- GOAWAY (§6.8) ---

#[test]
fn goaway_with_debug_data() {
    // Last stream 7 with the reserved bit set (ignored), INTERNAL_ERROR, debug data "bye".
    let bytes = [0, 0, 11, 0x7, 0x0, 0, 0, 0, 0, 0x80, 0, 0, 7, 0, 0, 0, 2, b'b', b'y', b'e'];
    let expected = GoAway { last_stream_id: 7, error_code: ErrorCode::INTERNAL_ERROR, debug_data: b"bye" };
    assert_eq!(decode_exact(&bytes), Frame::GoAway(expected));
}

#[test]
fn goaway_without_debug_data() {
    let bytes = [0, 0, 8, 0x7, 0x0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0];
    let expected = GoAway { last_stream_id: MAX_STREAM_ID, error_code: ErrorCode::NO_ERROR, debug_data: b"" };
    assert_eq!(decode_exact(&bytes), Frame::GoAway(expected));
}

// --- WINDOW_UPDATE (§6.9) ---

#[test]
fn window_update_connection() {
    let bytes = [0, 0, 4, 0x8, 0x0, 0, 0, 0, 0, 0, 0, 0x10, 0];
    assert_eq!(decode_exact(&bytes), Frame::WindowUpdate(WindowUpdate { stream_id: 0, increment: 4096 }));
}

#[test]
fn window_update_reserved_bit_ignored() {
    let bytes = [0, 0, 4, 0x8, 0x0, 0, 0, 0, 3, 0x80, 0, 0x10, 0];
    assert_eq!(decode_exact(&bytes), Frame::WindowUpdate(WindowUpdate { stream_id: 3, increment: 4096 }));
    let bytes = [0, 0, 4, 0x8, 0x0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff];
    assert_eq!(
        decode_exact(&bytes),
        Frame::WindowUpdate(WindowUpdate { stream_id: 3, increment: (1 << 31) - 1 })
    );
}

#[test]
fn window_update_increment_one() {
    let bytes = [0, 0, 4, 0x8, 0x0, 0, 0, 0, 1, 0, 0, 0, 1];
    assert_eq!(decode_exact(&bytes), Frame::WindowUpdate(WindowUpdate { stream_id: 1, increment: 1 }));
}

// --- CONTINUATION (§6.10) ---

#[test]
fn continuation() {
    let bytes = [0, 0, 2, 0x9, 0x4, 0, 0, 0, 1, 0x82, 0x86];
    let expected = Continuation { stream_id: 1, end_headers: true, fragment: &[0x82, 0x86] };
    assert_eq!(decode_exact(&bytes), Frame::Continuation(expected));
}

#[test]
fn continuation_empty_without_end_headers() {
    let bytes = [0, 0, 0, 0x9, 0x0, 0, 0, 0, 1];
    let expected = Continuation { stream_id: 1, end_headers: false, fragment: &[] };
    assert_eq!(decode_exact(&bytes), Frame::Continuation(expected));
}

// --- Unknown types (§4.1, §5.5) ---

#[test]
fn unknown_types_are_kept_not_rejected() {
    // ALTSVC (0xa) on stream 0, ORIGIN (0xc) on a stream, and 0xff with every flag set.
    let bytes = [0, 0, 3, 0xa, 0x0, 0, 0, 0, 0, 1, 2, 3];
    let expected = Unknown { kind: 0xa, flags: 0, stream_id: 0, payload: &[1, 2, 3] };
    assert_eq!(decode_exact(&bytes), Frame::Unknown(expected));

    let bytes = [0, 0, 0, 0xc, 0x0, 0, 0, 0, 9];
    let expected = Unknown { kind: 0xc, flags: 0, stream_id: 9, payload: &[] };
    assert_eq!(decode_exact(&bytes), Frame::Unknown(expected));

    let bytes = [0, 0, 1, 0xff, 0xff, 0x80, 0, 0, 2, 0xaa];
    let expected = Unknown { kind: 0xff, flags: 0xff, stream_id: 2, payload: &[0xaa] };
    assert_eq!(decode_exact(&bytes), Frame::Unknown(expected));
}

#[test]
fn unknown_types_are_not_checked_like_known_ones() {
    // A type 0xa frame would be an invalid PING or SETTINGS if its type were misread.
    let bytes = [0, 0, 5, 0xa, 0x1, 0, 0, 0, 1, 0, 0, 0, 0, 0];
    let Frame::Unknown(u) = decode_exact(&bytes) else { panic!("expected Unknown") };
    assert_eq!((u.kind, u.flags, u.stream_id, u.payload.len()), (0xa, 1, 1, 5));
}

// --- Frame header (§4.1) ---

#[test]
fn reserved_bit_of_stream_id_ignored() {
    let bytes = [0, 0, 1, 0x0, 0x0, 0x80, 0, 0, 1, b'x'];
    assert_eq!(data(decode_exact(&bytes)).stream_id, 1);

    let bytes = [0, 0, 1, 0x0, 0x0, 0xff, 0xff, 0xff, 0xff, b'x'];
    assert_eq!(data(decode_exact(&bytes)).stream_id, MAX_STREAM_ID);

    // A connection-level frame with only the reserved bit set is on stream 0, not on a stream.
    let bytes = [0, 0, 8, 0x6, 0x0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(decode_exact(&bytes), Frame::Ping(Ping { ack: false, data: [0; 8] }));
    let bytes = [0, 0, 0, 0x4, 0x1, 0x80, 0, 0, 0];
    assert_eq!(decode_exact(&bytes), Frame::Settings(Settings { ack: true, raw: &[] }));
}

#[test]
fn head_parse() {
    let bytes = [0x12, 0x34, 0x56, 0x9, 0xa5, 0xc0, 0, 0x01, 0x02];
    let head = Head::parse(&bytes).unwrap();
    assert_eq!(head, Head { length: 0x123456, kind: 9, flags: 0xa5, stream_id: 0x4000_0102 });
    assert_eq!(frame_len(&bytes), Some(9 + 0x123456));
    assert_eq!(Head::parse(&bytes[..8]), None);
    assert_eq!(frame_len(&bytes[..8]), None);
}

#[test]
fn frame_of_exactly_max_frame_size_accepted() {
    let mut bytes = vec![0, 0x40, 0, 0x0, 0x0, 0, 0, 0, 1];
    bytes.resize(9 + 16384, 7);
    let d = data(decode_exact(&bytes));
    assert_eq!(d.data.len(), 16384);

    let mut bytes = vec![0, 0, 100, 0x0, 0x0, 0, 0, 0, 1];
    bytes.resize(9 + 100, 7);
    assert!(matches!(decode(&bytes, 100), Ok(Some((Frame::Data(_), 109)))));
}

#[test]
fn empty_and_short_buffers_are_incomplete() {
    assert_eq!(decode(&[], DEFAULT_MAX_FRAME_SIZE), Ok(None));
    assert_eq!(decode(&[0, 0, 0, 4, 0, 0, 0, 0], DEFAULT_MAX_FRAME_SIZE), Ok(None));
    assert_eq!(decode(&[0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7], DEFAULT_MAX_FRAME_SIZE), Ok(None));
}

#[test]
fn frame_accessors() {
    let cases: [(&[u8], u8, u32); 11] = [
        (&[0, 0, 0, 0x0, 0, 0, 0, 0, 1], kind::DATA, 1),
        (&[0, 0, 0, 0x1, 0, 0, 0, 0, 3], kind::HEADERS, 3),
        (&[0, 0, 5, 0x2, 0, 0, 0, 0, 5, 0, 0, 0, 1, 0], kind::PRIORITY, 5),
        (&[0, 0, 4, 0x3, 0, 0, 0, 0, 7, 0, 0, 0, 0], kind::RST_STREAM, 7),
        (&[0, 0, 0, 0x4, 0, 0, 0, 0, 0], kind::SETTINGS, 0),
        (&[0, 0, 4, 0x5, 0, 0, 0, 0, 9, 0, 0, 0, 2], kind::PUSH_PROMISE, 9),
        (&[0, 0, 8, 0x6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], kind::PING, 0),
        (&[0, 0, 8, 0x7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], kind::GOAWAY, 0),
        (&[0, 0, 4, 0x8, 0, 0, 0, 0, 11, 0, 0, 0, 1], kind::WINDOW_UPDATE, 11),
        (&[0, 0, 0, 0x9, 0, 0, 0, 0, 13], kind::CONTINUATION, 13),
        (&[0, 0, 0, 0x42, 0, 0, 0, 0, 15], 0x42, 15),
    ];
    for (bytes, kind, stream_id) in cases {
        let frame = decode_exact(bytes);
        assert_eq!(frame.kind(), kind);
        assert_eq!(frame.stream_id(), stream_id);
        assert_eq!(kind::name(kind) == "unknown", usize::from(kind) >= kind::COUNT);
    }
    assert_eq!(kind::name(kind::WINDOW_UPDATE), "window_update");
    assert_eq!(kind::name(0x42), "unknown");
}
