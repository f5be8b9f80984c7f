//! Every length and stream-identifier rule of RFC 9113 §4.2 and §6: the exact error code, the
//! scope (connection or stream, §5.4) and the RFC section the message cites.

mod common_frame;

use common_frame::{raw, raw_head};
use h2flow_core::frame::{
    decode, frame_len, kind, setting, Frame, DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE,
};
use h2flow_core::{Error, ErrorCode};

const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
const ACK: u8 = 0x1;

/// Decodes a whole invalid frame and returns its error, after checking that no strict prefix of
/// it is an error yet: the codec must not judge a frame before it has all of it, so that a
/// stream error can always be skipped with `frame_len`.
fn error_of(bytes: &[u8]) -> Error {
    for end in 0..bytes.len() {
        assert_eq!(decode(&bytes[..end], DEFAULT_MAX_FRAME_SIZE), Ok(None), "prefix of {end} bytes");
    }
    match decode(bytes, DEFAULT_MAX_FRAME_SIZE) {
        Err(e) => e,
        Ok(other) => panic!("expected an error for {bytes:02x?}, got {other:?}"),
    }
}

/// The frame is a connection error (§5.4.1) with `code`, citing `section`.
#[track_caller]
fn expect_conn(bytes: &[u8], code: ErrorCode, section: &str) {
    let err = error_of(bytes);
    match &err {
        Error::Connection { code: got, message } => {
            assert_eq!(*got, code, "{message}");
            assert!(message.contains("RFC"), "{message:?} does not cite the RFC");
            assert!(message.contains(section), "{message:?} does not cite {section}");
        }
        Error::Stream { .. } => panic!("expected a connection error {code}, got {err:?}"),
    }
    assert!(err.is_connection_error());
}

/// The frame is a stream error (§5.4.2) on `stream_id` with `code`, citing `section`.
#[track_caller]
fn expect_stream(bytes: &[u8], stream_id: u32, code: ErrorCode, section: &str) {
    let err = error_of(bytes);
    match &err {
        Error::Stream { stream_id: got_id, code: got, message } => {
            assert_eq!((*got_id, *got), (stream_id, code), "{message}");
            assert!(message.contains("RFC"), "{message:?} does not cite the RFC");
            assert!(message.contains(section), "{message:?} does not cite {section}");
        }
        Error::Connection { .. } => panic!("expected a stream error {code}, got {err:?}"),
    }
    assert!(!err.is_connection_error());
}

fn setting_frame(id: u16, value: u32) -> Vec<u8> {
    let mut payload = id.to_be_bytes().to_vec();
    payload.extend_from_slice(&value.to_be_bytes());
    raw(kind::SETTINGS, 0, 0, &payload)
}

// --- PING (§6.7) ---

#[test]
fn ping_length_not_8() {
    for len in [0, 1, 7, 9, 16] {
        let frame = raw(kind::PING, 0, 0, &vec![0; len]);
        expect_conn(&frame, ErrorCode::FRAME_SIZE_ERROR, "RFC 9113 6.7");
        let frame = raw(kind::PING, ACK, 0, &vec![0; len]);
        expect_conn(&frame, ErrorCode::FRAME_SIZE_ERROR, "RFC 9113 6.7");
    }
}

#[test]
fn ping_on_a_stream() {
    for stream_id in [1, 2, 0x7fff_ffff, 0x8000_0001] {
        expect_conn(&raw(kind::PING, 0, stream_id, &[0; 8]), ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.7");
    }
}

// --- WINDOW_UPDATE (§6.9) ---

#[test]
fn window_update_length_not_4() {
    // A connection error even on a stream (§6.9: "MUST be treated as a connection error").
    for stream_id in [0, 1] {
        for len in [0, 3, 5, 8] {
            let frame = raw(kind::WINDOW_UPDATE, 0, stream_id, &vec![1; len]);
            expect_conn(&frame, ErrorCode::FRAME_SIZE_ERROR, "RFC 9113 6.9");
        }
    }
}

#[test]
fn window_update_zero_increment_on_stream() {
    expect_stream(
        &raw(kind::WINDOW_UPDATE, 0, 3, &[0, 0, 0, 0]),
        3,
        ErrorCode::PROTOCOL_ERROR,
        "RFC 9113 6.9",
    );
    // Only the reserved bit set: the increment is still 0.
    let frame = raw(kind::WINDOW_UPDATE, 0, 0x8000_0005, &[0x80, 0, 0, 0]);
    expect_stream(&frame, 5, ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.9");
}

#[test]
fn window_update_zero_increment_on_connection() {
    expect_conn(&raw(kind::WINDOW_UPDATE, 0, 0, &[0, 0, 0, 0]), ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.9");
    expect_conn(&raw(kind::WINDOW_UPDATE, 0, 0, &[0x80, 0, 0, 0]), ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.9");
}

// --- SETTINGS (§6.5) ---

#[test]
fn settings_on_a_stream() {
    expect_conn(&raw(kind::SETTINGS, 0, 1, &[]), ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.5");
    expect_conn(&raw(kind::SETTINGS, ACK, 3, &[]), ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.5");
    expect_conn(&raw(kind::SETTINGS, 0, 1, &[0, 3, 0, 0, 0, 1]), ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.5");
}

#[test]
fn settings_length_not_multiple_of_6() {
    for len in [1, 5, 7, 11, 13] {
        let frame = raw(kind::SETTINGS, 0, 0, &vec![0; len]);
        expect_conn(&frame, ErrorCode::FRAME_SIZE_ERROR, "RFC 9113 6.5");
    }
}

#[test]
fn settings_ack_with_payload() {
    for len in [1, 6, 12] {
        let frame = raw(kind::SETTINGS, ACK, 0, &vec![0; len]);
        expect_conn(&frame, ErrorCode::FRAME_SIZE_ERROR, "RFC 9113 6.5");
    }
}

#[test]
fn settings_enable_push_not_0_or_1() {
    for value in [2, 0x100, u32::MAX] {
        expect_conn(&setting_frame(setting::ENABLE_PUSH, value), ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.5.2");
    }
}

#[test]
fn settings_initial_window_size_above_max() {
    for value in [1 << 31, u32::MAX] {
        let frame = setting_frame(setting::INITIAL_WINDOW_SIZE, value);
        expect_conn(&frame, ErrorCode::FLOW_CONTROL_ERROR, "RFC 9113 6.5.2");
    }
}

#[test]
fn settings_max_frame_size_out_of_range() {
    for value in [0, 1, 16383, 1 << 24, u32::MAX] {
        let frame = setting_frame(setting::MAX_FRAME_SIZE, value);
        expect_conn(&frame, ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.5.2");
    }
}

#[test]
fn settings_boolean_extensions_not_0_or_1() {
    expect_conn(&setting_frame(setting::ENABLE_CONNECT_PROTOCOL, 2), ErrorCode::PROTOCOL_ERROR, "RFC 8441 3");
    expect_conn(&setting_frame(setting::NO_RFC7540_PRIORITIES, 2), ErrorCode::PROTOCOL_ERROR, "RFC 9218 2.1");
}

#[test]
fn settings_invalid_value_after_valid_ones() {
    #[rustfmt::skip]
    let payload = [
        0, 1, 0, 0, 0x10, 0,          // HEADER_TABLE_SIZE 4096: fine
        0, 4, 0, 0, 0xff, 0xff,       // INITIAL_WINDOW_SIZE 65535: fine
        0, 4, 0x80, 0, 0, 0,          // INITIAL_WINDOW_SIZE 2^31: not
    ];
    expect_conn(&raw(kind::SETTINGS, 0, 0, &payload), ErrorCode::FLOW_CONTROL_ERROR, "RFC 9113 6.5.2");
}

// --- RST_STREAM (§6.4) ---

#[test]
fn rst_stream_length_not_4() {
    for len in [0, 3, 5, 8] {
        let frame = raw(kind::RST_STREAM, 0, 1, &vec![0; len]);
        expect_conn(&frame, ErrorCode::FRAME_SIZE_ERROR, "RFC 9113 6.4");
    }
}

#[test]
fn rst_stream_on_stream_0() {
    expect_conn(&raw(kind::RST_STREAM, 0, 0, &[0, 0, 0, 8]), ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.4");
    expect_conn(
        &raw(kind::RST_STREAM, 0, 0x8000_0000, &[0, 0, 0, 8]),
        ErrorCode::PROTOCOL_ERROR,
        "RFC 9113 6.4",
    );
}

// --- PRIORITY (§6.3) ---

#[test]
fn priority_length_not_5_is_a_stream_error() {
    for len in [0, 4, 6, 10] {
        let frame = raw(kind::PRIORITY, 0, 7, &vec![0; len]);
        expect_stream(&frame, 7, ErrorCode::FRAME_SIZE_ERROR, "RFC 9113 6.3");
    }
}

#[test]
fn priority_on_stream_0() {
    expect_conn(&raw(kind::PRIORITY, 0, 0, &[0, 0, 0, 1, 16]), ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.3");
}

#[test]
fn stream_error_can_be_skipped_with_frame_len() {
    // A bad PRIORITY frame, then a good PING: the caller skips the first and reads the second.
    let mut buf = raw(kind::PRIORITY, 0, 7, &[0, 0, 0]);
    buf.extend_from_slice(&raw(kind::PING, 0, 0, &[9; 8]));
    assert!(matches!(decode(&buf, DEFAULT_MAX_FRAME_SIZE), Err(Error::Stream { stream_id: 7, .. })));
    let skip = frame_len(&buf).unwrap();
    assert_eq!(skip, 12);
    let (frame, len) = decode(&buf[skip..], DEFAULT_MAX_FRAME_SIZE).unwrap().unwrap();
    assert_eq!(len, 17);
    assert!(matches!(frame, Frame::Ping(p) if p.data == [9; 8]));
}

// --- GOAWAY (§6.8) ---

#[test]
fn goaway_shorter_than_8() {
    for len in [0, 4, 7] {
        let frame = raw(kind::GOAWAY, 0, 0, &vec![0; len]);
        expect_conn(&frame, ErrorCode::FRAME_SIZE_ERROR, "RFC 9113 6.8");
    }
}

#[test]
fn goaway_on_a_stream() {
    expect_conn(&raw(kind::GOAWAY, 0, 1, &[0; 8]), ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.8");
}

// --- Frames that need a stream (§6.1, §6.2, §6.6, §6.10) ---

#[test]
fn stream_frames_on_stream_0() {
    let cases: [(u8, &[u8], &str); 4] = [
        (kind::DATA, b"x", "RFC 9113 6.1"),
        (kind::HEADERS, &[0x82], "RFC 9113 6.2"),
        (kind::PUSH_PROMISE, &[0, 0, 0, 2], "RFC 9113 6.6"),
        (kind::CONTINUATION, &[0x82], "RFC 9113 6.10"),
    ];
    for (kind, payload, section) in cases {
        expect_conn(&raw(kind, 0, 0, payload), ErrorCode::PROTOCOL_ERROR, section);
        // The reserved bit does not make it a stream.
        expect_conn(&raw(kind, 0, 0x8000_0000, payload), ErrorCode::PROTOCOL_ERROR, section);
    }
}

// --- Padding (§6.1, §6.2, §6.6) ---

#[test]
fn data_padding_as_long_as_payload() {
    // Pad length 5 in a 5-octet payload, and 255 in a 1-octet payload.
    expect_conn(&raw(kind::DATA, PADDED, 1, &[5, 1, 2, 3, 4]), ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.1");
    expect_conn(&raw(kind::DATA, PADDED, 1, &[1]), ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.1");
    expect_conn(&raw(kind::DATA, PADDED, 1, &[255]), ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.1");
    let mut payload = vec![255];
    payload.resize(255, 0);
    expect_conn(&raw(kind::DATA, PADDED, 1, &payload), ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.1");
}

#[test]
fn data_padding_one_short_of_payload_is_valid() {
    // The boundary of the rule above, so that an off-by-one either way fails one of the two.
    let mut payload = vec![255];
    payload.resize(256, 0);
    let bytes = raw(kind::DATA, PADDED, 1, &payload);
    let (frame, _) = decode(&bytes, DEFAULT_MAX_FRAME_SIZE).unwrap().unwrap();
    assert!(matches!(frame, Frame::Data(d) if d.data.is_empty() && d.flow_len() == 256));
}

#[test]
fn headers_padding_too_long() {
    expect_conn(&raw(kind::HEADERS, PADDED, 1, &[4, 0x82, 0, 0]), ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.2");
    expect_conn(&raw(kind::HEADERS, PADDED, 1, &[1]), ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.2");
    // With PRIORITY, the five priority octets are not room for padding.
    let frame = raw(kind::HEADERS, PADDED | PRIORITY, 1, &[1, 0, 0, 0, 0, 16]);
    expect_conn(&frame, ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.2");
    let frame = raw(kind::HEADERS, PADDED | PRIORITY, 1, &[3, 0, 0, 0, 0, 16, 0x82, 0]);
    expect_conn(&frame, ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.2");
}

#[test]
fn push_promise_padding_too_long() {
    // The four promised-stream octets are not room for padding either.
    let frame = raw(kind::PUSH_PROMISE, PADDED, 1, &[1, 0, 0, 0, 2]);
    expect_conn(&frame, ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.6");
    let frame = raw(kind::PUSH_PROMISE, PADDED, 1, &[5, 0, 0, 0, 2, 0x82, 0, 0, 0]);
    expect_conn(&frame, ErrorCode::PROTOCOL_ERROR, "RFC 9113 6.6");
}

#[test]
fn padded_flag_with_empty_payload() {
    // No room for the pad-length octet itself: too small for mandatory data (§4.2).
    expect_conn(&raw(kind::DATA, PADDED, 1, &[]), ErrorCode::FRAME_SIZE_ERROR, "RFC 9113 6.1");
    expect_conn(&raw(kind::HEADERS, PADDED, 1, &[]), ErrorCode::FRAME_SIZE_ERROR, "RFC 9113 6.2");
    expect_conn(&raw(kind::PUSH_PROMISE, PADDED, 1, &[]), ErrorCode::FRAME_SIZE_ERROR, "RFC 9113 6.6");
}

// --- Fixed fields missing (§4.2: "too small to contain mandatory frame data") ---

#[test]
fn headers_with_priority_flag_shorter_than_5() {
    for len in 0..5 {
        let frame = raw(kind::HEADERS, PRIORITY, 1, &vec![0; len]);
        expect_conn(&frame, ErrorCode::FRAME_SIZE_ERROR, "RFC 9113 6.2");
        // Padded: the priority fields come after the pad-length octet.
        let mut payload = vec![0];
        payload.resize(1 + len, 0);
        let frame = raw(kind::HEADERS, PRIORITY | PADDED, 1, &payload);
        expect_conn(&frame, ErrorCode::FRAME_SIZE_ERROR, "RFC 9113 6.2");
    }
}

#[test]
fn push_promise_shorter_than_4() {
    for len in 0..4 {
        let frame = raw(kind::PUSH_PROMISE, 0, 1, &vec![0; len]);
        expect_conn(&frame, ErrorCode::FRAME_SIZE_ERROR, "RFC 9113 6.6");
        let mut payload = vec![0];
        payload.resize(1 + len, 0);
        let frame = raw(kind::PUSH_PROMISE, PADDED, 1, &payload);
        expect_conn(&frame, ErrorCode::FRAME_SIZE_ERROR, "RFC 9113 6.6");
    }
}

// --- Frame size (§4.2) ---

#[test]
fn frame_longer_than_max_frame_size_rejected_from_header_alone() {
    // Only the 9 header octets are there: the codec must not wait for 16385 payload octets.
    for kind in 0..=12u8 {
        let head = raw_head(16385, kind, 0, 1);
        match decode(&head, DEFAULT_MAX_FRAME_SIZE) {
            Err(Error::Connection { code, message }) => {
                assert_eq!(code, ErrorCode::FRAME_SIZE_ERROR);
                assert!(message.contains("RFC 9113 4.2"), "{message:?}");
            }
            other => panic!("type {kind}: expected FRAME_SIZE_ERROR, got {other:?}"),
        }
    }
    let head = raw_head(MAX_MAX_FRAME_SIZE, kind::DATA, 0, 1);
    assert!(
        matches!(decode(&head, DEFAULT_MAX_FRAME_SIZE), Err(Error::Connection { code, .. }) if code == ErrorCode::FRAME_SIZE_ERROR)
    );
    // Against a smaller advertised limit, too.
    let head = raw_head(101, kind::SETTINGS, 0, 0);
    assert!(
        matches!(decode(&head, 100), Err(Error::Connection { code, .. }) if code == ErrorCode::FRAME_SIZE_ERROR)
    );
}

#[test]
fn frame_at_max_frame_size_waits_for_its_payload() {
    assert_eq!(decode(&raw_head(16384, kind::DATA, 0, 1), DEFAULT_MAX_FRAME_SIZE), Ok(None));
    let head = raw_head(MAX_MAX_FRAME_SIZE, kind::DATA, 0, 1);
    assert_eq!(decode(&head, MAX_MAX_FRAME_SIZE), Ok(None));
    assert_eq!(decode(&head, u32::MAX), Ok(None));
}

#[test]
fn error_display_names_code_scope_and_message() {
    let err = error_of(&raw(kind::PRIORITY, 0, 7, &[0; 4]));
    let text = err.to_string();
    assert!(
        text.contains("stream 7") && text.contains("FRAME_SIZE_ERROR") && text.contains("RFC 9113 6.3"),
        "{text}"
    );
    let err = error_of(&raw(kind::PING, 0, 1, &[0; 8]));
    let text = err.to_string();
    assert!(text.starts_with("connection error PROTOCOL_ERROR") && text.contains("RFC 9113 6.7"), "{text}");
}
