//! SETTINGS (RFC 9113 §6.5, §6.9.2) and their effect on what we send: acknowledgements, order of
//! values, the peer's initial window, frame size and header table size, and SETTINGS_TIMEOUT.

mod common_engine;
use std::time::Duration;

use common_engine::*;
use h2flow_core::frame::{setting, MAX_WINDOW_SIZE};
use h2flow_core::{ErrorCode, Sent};

fn open_get(h: &mut Harness, id: u32) {
    h.recv(&get(id)).unwrap();
    h.conn.send_headers(id, &[(b":status", b"200")], false).unwrap();
}

#[test]
fn rfc9113_6_5_3_every_settings_frame_is_acknowledged() {
    let mut h = Harness::established(default_config());
    let input = concat(&[
        settings(&[]),
        settings(&[(setting::MAX_CONCURRENT_STREAMS, 10)]),
        // Unknown identifiers are ignored (RFC 9113 6.5.2), the frame still acknowledged.
        settings(&[(0x99, 7), (setting::ENABLE_PUSH, 0)]),
    ]);
    h.recv(&input).unwrap();
    let out = h.flush();
    assert_eq!(out, vec![Out::Settings { ack: true, params: vec![] }; 3]);
}

#[test]
fn rfc9113_6_5_3_values_of_one_setting_in_one_frame_are_applied_in_order() {
    let mut h = Harness::established(default_config());
    open_get(&mut h, 1);
    h.recv(&settings(&[(INITIAL_WINDOW_SIZE, 100), (INITIAL_WINDOW_SIZE, 1000)])).unwrap();
    assert_eq!(h.conn.stream_send_window(1), Some(1000));
    assert_eq!(h.conn.send_data(1, &[0; 5000], false), Ok(Sent::Queued(4000)));
    let out = h.flush();
    assert_eq!(datas(&out), vec![(1, 1000, false)]);
    // A stream opened later starts at the last value too.
    open_get(&mut h, 3);
    assert_eq!(h.conn.stream_send_window(3), Some(1000));

    let mut h = Harness::established(default_config());
    open_get(&mut h, 1);
    h.recv(&settings(&[(INITIAL_WINDOW_SIZE, 1000), (INITIAL_WINDOW_SIZE, 100)])).unwrap();
    assert_eq!(h.conn.stream_send_window(1), Some(100));
}

#[test]
fn rfc9113_6_9_2_initial_window_shrink_makes_stream_windows_negative() {
    let mut h = Harness::established(default_config());
    open_get(&mut h, 1);
    h.recv(&window_update(0, 1 << 20)).unwrap();
    h.conn.send_data(1, &vec![0; 60_000], false).unwrap();
    assert_eq!(h.conn.stream_send_window(1), Some(5_535));
    h.flush();

    h.recv(&settings(&[(INITIAL_WINDOW_SIZE, 1000)])).unwrap();
    assert_eq!(h.conn.stream_send_window(1), Some(5_535 - 64_535));
    assert_eq!(h.conn.send_data(1, b"0123456789", true), Ok(Sent::Queued(10)));
    assert!(datas(&h.flush()).is_empty());

    // Back to zero: still nothing to send.
    h.recv(&window_update(1, 59_000)).unwrap();
    assert_eq!(h.conn.stream_send_window(1), Some(0));
    assert!(datas(&h.flush()).is_empty());
    // Positive again: exactly what the window allows.
    h.recv(&window_update(1, 4)).unwrap();
    assert_eq!(datas(&h.flush()), vec![(1, 4, false)]);
    h.recv(&window_update(1, 100)).unwrap();
    assert_eq!(datas(&h.flush()), vec![(1, 6, true)]);
    assert_eq!(h.conn.stream_state(1), None);
}

#[test]
fn rfc9113_6_9_2_initial_window_growth_past_2_31_minus_1_is_connection_flow_control_error() {
    let mut h = Harness::established(default_config());
    open_get(&mut h, 1);
    h.recv(&window_update(1, MAX_WINDOW_SIZE - 65_535)).unwrap();
    assert_eq!(h.conn.stream_send_window(1), Some(MAX_WINDOW_SIZE as i64));
    let (code, _) = h.expect_connection_error(&settings(&[(INITIAL_WINDOW_SIZE, 65_536)]));
    assert_eq!(code, ErrorCode::FLOW_CONTROL_ERROR.0);

    // A value above 2^31-1 is an error whether or not a stream exists (RFC 9113 6.5.2).
    let mut h = Harness::established(default_config());
    let (code, _) = h.expect_connection_error(&settings(&[(INITIAL_WINDOW_SIZE, MAX_WINDOW_SIZE + 1)]));
    assert_eq!(code, ErrorCode::FLOW_CONTROL_ERROR.0);

    // 2^31-1 itself is fine with no data sent yet.
    let mut h = Harness::established(default_config());
    open_get(&mut h, 1);
    h.recv(&settings(&[(INITIAL_WINDOW_SIZE, MAX_WINDOW_SIZE)])).unwrap();
    assert_eq!(h.conn.stream_send_window(1), Some(MAX_WINDOW_SIZE as i64));
}

#[test]
fn rfc9113_6_5_2_invalid_setting_values_are_connection_protocol_errors() {
    for (id, value) in
        [(setting::ENABLE_PUSH, 2), (setting::MAX_FRAME_SIZE, 16_383), (setting::MAX_FRAME_SIZE, 1 << 24)]
    {
        let mut h = Harness::established(default_config());
        let (code, _) = h.expect_connection_error(&settings(&[(id, value)]));
        assert_eq!(code, ErrorCode::PROTOCOL_ERROR.0, "{id} = {value}");
    }
}

#[test]
fn rfc9113_6_5_2_peer_max_frame_size_is_respected_by_data() {
    let mut h = Harness::established(default_config());
    open_get(&mut h, 1);
    h.conn.send_data(1, &vec![0; 40_000], true).unwrap();
    assert_eq!(datas(&h.flush()), vec![(1, 16_384, false), (1, 16_384, false), (1, 7_232, true)]);
    assert_eq!(h.conn.peer_max_frame_size(), 16_384);

    let mut h = Harness::established_with(default_config(), &[(setting::MAX_FRAME_SIZE, 20_000)]);
    open_get(&mut h, 1);
    h.conn.send_data(1, &vec![0; 40_000], false).unwrap();
    assert_eq!(datas(&h.flush()), vec![(1, 20_000, false), (1, 20_000, false)]);
    // Queued data is cut the same way when the window opens.
    h.recv(&concat(&[window_update(0, 100_000), window_update(1, 100_000)])).unwrap();
    h.conn.send_data(1, &vec![0; 50_000], true).unwrap();
    assert_eq!(datas(&h.flush()), vec![(1, 20_000, false), (1, 20_000, false), (1, 10_000, true)]);
}

/// A response header too big for one frame at the default size. Not Huffman-friendly, so the
/// encoded block stays about as long as the value.
fn big_value() -> String {
    (0..40_000u32).map(|i| char::from(b"!#$%&'*+-.^_`|~"[(i % 15) as usize])).collect()
}

#[test]
fn rfc9113_6_5_2_peer_max_frame_size_is_respected_by_header_blocks() {
    let value = big_value();
    for (max, frames) in [(None, 3), (Some(40_000u32), 2), (Some(1 << 16), 1)] {
        let client_settings: Vec<(u16, u32)> =
            max.map(|m| (setting::MAX_FRAME_SIZE, m)).into_iter().collect();
        let mut h = Harness::established_with(default_config(), &client_settings);
        h.recv(&get(1)).unwrap();
        h.conn.send_headers(1, &[(b":status", b"200"), (b"x-big", value.as_bytes())], true).unwrap();
        let bytes = h.conn.flush(h.now);
        // Check the frame lengths on the wire.
        let limit = max.unwrap_or(16_384) as usize;
        let mut rest = &bytes[..];
        let mut n = 0;
        while !rest.is_empty() {
            let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
            assert!(len <= limit, "frame of {len} bytes with max frame size {limit}");
            rest = &rest[9 + len..];
            n += 1;
        }
        assert_eq!(n, frames, "max frame size {limit}");
        let out = parse_output(&bytes);
        let blocks = ResponseDecoder::new().decode(&out);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].1[1], ("x-big".to_string(), value.clone()));
    }
}

#[test]
fn rfc7541_4_2_peer_header_table_size_0_makes_our_next_block_start_with_a_size_update() {
    let mut h = Harness::established_with(default_config(), &[(setting::HEADER_TABLE_SIZE, 0)]);
    let mut decoder = ResponseDecoder::new();
    let respond = |h: &mut Harness, id: u32| {
        h.recv(&get(id)).unwrap();
        h.conn.send_headers(id, &[(b":status", b"200"), (b"x-custom", b"some value")], true).unwrap();
        h.flush()
    };
    let blocks = decoder.decode(&respond(&mut h, 1));
    assert_eq!(blocks[0].2[0], 0x20, "size update to 0 first: {:x?}", blocks[0].2);
    assert_eq!(blocks[0].1[1], ("x-custom".to_string(), "some value".to_string()));
    // Only once.
    let blocks = decoder.decode(&respond(&mut h, 3));
    assert_ne!(blocks[0].2[0] & 0xe0, 0x20, "{:x?}", blocks[0].2);
    assert_eq!(blocks[0].1[1].1, "some value");

    // Mid-connection, after entries were indexed: shrink, then grow back.
    let mut h = Harness::established(default_config());
    let mut decoder = ResponseDecoder::new();
    for id in [1, 3] {
        let blocks = decoder.decode(&respond(&mut h, id));
        assert_eq!(blocks[0].1[1].1, "some value");
    }
    h.recv(&settings(&[(setting::HEADER_TABLE_SIZE, 0)])).unwrap();
    h.flush();
    let blocks = decoder.decode(&respond(&mut h, 5));
    assert_eq!(blocks[0].2[0], 0x20);
    assert_eq!(blocks[0].1[1].1, "some value");
    h.recv(&settings(&[(setting::HEADER_TABLE_SIZE, 4096)])).unwrap();
    h.flush();
    let blocks = decoder.decode(&respond(&mut h, 7));
    // The encoder may repeat the smallest size first (RFC 7541 4.2); the last update is 4096.
    let b = &blocks[0].2;
    let skip = if b[0] == 0x20 { 1 } else { 0 };
    assert_eq!(&b[skip..skip + 3], &[0x3f, 0xe1, 0x1f], "size update to 4096: {b:x?}");
    let blocks = decoder.decode(&respond(&mut h, 9));
    assert_eq!(blocks[0].1[1].1, "some value");
}

#[test]
fn rfc9113_6_5_3_unacknowledged_settings_time_out_with_settings_timeout() {
    let mut h = Harness::unacked(default_config());
    let timeout = h.conn.config().settings_timeout;
    assert!(h.conn.settings_unacked_since().is_some());
    h.advance(timeout);
    assert!(h.conn.check_timeouts(h.now).is_ok());
    h.advance(Duration::from_millis(1));
    let e = h.conn.check_timeouts(h.now).unwrap_err();
    assert_eq!(e.code(), ErrorCode::SETTINGS_TIMEOUT);
    assert_eq!(goaways(&h.flush()), vec![(0, ErrorCode::SETTINGS_TIMEOUT.0)]);
    assert!(h.conn.is_closed());

    // Acknowledged in time: no timeout, however long the connection lives.
    let mut h = Harness::unacked(default_config());
    h.advance(timeout / 2);
    h.recv(&settings_ack()).unwrap();
    assert_eq!(h.conn.settings_unacked_since(), None);
    h.advance(timeout * 10);
    assert!(h.conn.check_timeouts(h.now).is_ok());
    assert!(h.flush().is_empty());
}
