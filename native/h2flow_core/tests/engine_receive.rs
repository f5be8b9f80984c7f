//! The engine's receive side: window enforcement (RFC 9113 §6.9.1), the credits it writes
//! (WINDOW_UPDATE frames on the wire), adaptive growth with a synthetic clock, and DATA payloads
//! returned as ranges of the input.

mod common_engine;
use std::time::Duration;

use common_engine::*;
use h2flow_core::frame::setting;
use h2flow_core::scheduler::{ReadStatus, PROBES_PER_SECOND, PROBE_BURST};
use h2flow_core::{Config, Connection, ErrorCode, Event, Payload};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

fn cfg_windows(stream: u32, connection: u32) -> Config {
    let mut cfg = default_config();
    cfg.window.initial_stream_window = stream;
    cfg.window.initial_connection_window = connection;
    cfg
}

fn body_len(events: &[Ev], id: u32) -> usize {
    events
        .iter()
        .map(|e| {
            if let Ev::Data { stream_id, data, .. } = e {
                if *stream_id == id {
                    data.len()
                } else {
                    0
                }
            } else {
                0
            }
        })
        .sum()
}

#[test]
fn rfc9113_6_9_1_data_past_the_stream_window_is_rst_stream_flow_control_error() {
    let mut h = Harness::established(default_config());
    h.recv(&concat(&[post(1, None), post(3, None)])).unwrap();
    let ev = h.recv(&body(1, 256 * KIB, false)).unwrap();
    assert_eq!(body_len(&ev, 1), 256 * KIB);
    let ev = h.recv(&data(1, b"x", false)).unwrap();
    assert_eq!(ev, vec![Ev::StreamError { stream_id: 1, code: ErrorCode::FLOW_CONTROL_ERROR.0 }]);
    assert_eq!(resets(&h.flush()), vec![(1, ErrorCode::FLOW_CONTROL_ERROR.0)]);
    assert!(!h.conn.is_closed());
    // The reset stream's bytes are released; the connection still counted all of them.
    assert_eq!(h.conn.buffered(), 0);
    assert_eq!(h.conn.scheduler().connection_remaining(), (MIB - 256 * KIB - 1) as i64);
    let ev = h.recv(&data(3, b"fine", false)).unwrap();
    assert_eq!(body_len(&ev, 3), 4);
}

#[test]
fn rfc9113_6_9_1_data_past_the_connection_window_is_goaway_flow_control_error() {
    let mut h = Harness::established(default_config());
    let mut input = Vec::new();
    for id in [1, 3, 5, 7, 9] {
        input.extend(post(id, None));
    }
    for id in [1, 3, 5, 7] {
        input.extend(body(id, 256 * KIB, false));
    }
    h.recv(&input).unwrap();
    assert_eq!(h.conn.buffered(), MIB as u64);
    assert!(window_updates(&h.flush()).is_empty());
    let (code, out) = h.expect_connection_error(&data(9, b"x", false));
    assert_eq!(code, ErrorCode::FLOW_CONTROL_ERROR.0);
    assert_eq!(goaways(&out), vec![(9, ErrorCode::FLOW_CONTROL_ERROR.0)]);
}

#[test]
fn rfc9113_6_1_padding_counts_against_windows_and_is_credited_back_without_consume() {
    let mut h = Harness::established(cfg_windows(65_535, 65_535));
    h.recv(&post(1, None)).unwrap();
    let mut input = Vec::new();
    for _ in 0..200 {
        input.extend(padded_data(1, b"x", 200, false));
    }
    let ev = h.recv(&input).unwrap();
    assert_eq!(body_len(&ev, 1), 200);
    assert_eq!(h.conn.scheduler().connection_remaining(), 65_535 - 200 * 202);
    assert_eq!(h.conn.scheduler().stream_remaining(1), Some(65_535 - 200 * 202));
    // The padding and the pad-length octets, nothing that the application holds.
    let out = h.flush();
    assert_eq!(window_updates(&out), vec![(0, 200 * 201), (1, 200 * 201)]);
    assert_eq!(h.conn.buffered(), 200);
}

#[test]
fn credit_only_after_consume() {
    let mut h = Harness::established(cfg_windows(65_535, 65_535));
    h.recv(&post(1, None)).unwrap();
    h.recv(&body(1, 40_000, false)).unwrap();
    assert!(window_updates(&h.flush()).is_empty());
    h.conn.consume(1, 30_000).unwrap();
    assert!(
        window_updates(&h.flush()).is_empty(),
        "30,000 < half of 65,535 and the peer has a frame's worth"
    );
    h.conn.consume(1, 10_000).unwrap();
    assert_eq!(window_updates(&h.flush()), vec![(0, 40_000), (1, 40_000)]);
    assert_eq!(h.conn.scheduler().stats().credited_bytes, 40_000);
}

#[test]
fn consumes_across_many_streams_are_coalesced_into_one_flush() {
    let mut h = Harness::established(cfg_windows(65_535, MIB as u32));
    let ids: Vec<u32> = (0..20).map(|i| 2 * i + 1).collect();
    let mut input = Vec::new();
    for &id in &ids {
        input.extend(post(id, None));
        input.extend(body(id, 40_000, false));
    }
    h.recv(&input).unwrap();
    assert!(window_updates(&h.flush()).is_empty());
    let before = h.flushes_with_output;
    for _ in 0..400 {
        for &id in &ids {
            h.conn.consume(id, 100).unwrap();
        }
    }
    let out = h.flush();
    assert_eq!(h.flushes_with_output, before + 1);
    let wu = window_updates(&out);
    assert_eq!(wu[0], (0, 20 * 40_000));
    assert_eq!(wu.len(), 21, "{wu:?}");
    assert!(wu[1..].iter().all(|&(_, n)| n == 40_000));
    assert!(window_updates(&h.flush()).is_empty());
    // Still one per stream and one for the connection when done over several flushes.
    let (c, s) = h.window_updates_written();
    assert_eq!((c, s), (2, 20), "the initial credit and the coalesced one");
}

#[test]
fn stream_credit_threshold_is_half_the_window_by_default_and_configurable() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, None)).unwrap();
    h.recv(&body(1, 200 * KIB, false)).unwrap();
    h.conn.consume(1, 128 * KIB as u64 - 1).unwrap();
    assert!(window_updates(&h.flush()).is_empty());
    h.conn.consume(1, 1).unwrap();
    assert_eq!(window_updates(&h.flush()), vec![(1, 128 * KIB as u32)]);

    let mut cfg = default_config();
    cfg.window.update_threshold_percent = 10;
    let mut h = Harness::established(cfg);
    h.recv(&post(1, None)).unwrap();
    h.recv(&body(1, 200 * KIB, false)).unwrap();
    h.conn.consume(1, 26_214).unwrap();
    assert_eq!(window_updates(&h.flush()), vec![(1, 26_214)]);
}

#[test]
fn small_remainder_rule_releases_credit_early_with_small_windows() {
    let mut h = Harness::established(cfg_windows(32 * KIB as u32, MIB as u32));
    h.recv(&post(1, None)).unwrap();
    h.recv(&body(1, 20_000, false)).unwrap();
    h.conn.consume(1, 11_000).unwrap();
    assert!(window_updates(&h.flush()).is_empty(), "9,000 still buffered: the application lags");
    h.conn.consume(1, 3_000).unwrap();
    // 14,000 < the 16 KiB threshold, but the peer has 12,768 left, less than one frame.
    assert_eq!(window_updates(&h.flush()), vec![(1, 14_000)]);
}

#[test]
fn no_stream_window_update_to_a_half_closed_remote_stream() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, None)).unwrap();
    h.recv(&body(1, 200 * KIB, true)).unwrap();
    h.conn.consume(1, 200 * KIB as u64).unwrap();
    let out = h.flush();
    assert!(window_updates(&out).iter().all(|&(id, _)| id == 0), "{out:?}");
    // Trailers end the stream too.
    h.recv(&post(3, None)).unwrap();
    h.recv(&body(3, 200 * KIB, false)).unwrap();
    h.recv(&headers(3, &[("x-t", "1")], true)).unwrap();
    h.conn.consume(3, 200 * KIB as u64).unwrap();
    assert!(window_updates(&h.flush()).iter().all(|&(id, _)| id == 0));
    assert_eq!(h.conn.scheduler().stats().stream_window_updates, 0);
}

#[test]
fn stream_credit_never_exceeds_the_remaining_content_length_and_the_end_stream_byte() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, Some(300_000))).unwrap();
    h.recv(&body(1, 256 * KIB, false)).unwrap();
    h.conn.consume(1, 256 * KIB as u64).unwrap();
    // The rest of the body, and one byte for the DATA frame that carries END_STREAM.
    assert_eq!(window_updates(&h.flush()), vec![(1, 300_000 - 256 * KIB as u32 + 1)]);
    h.recv(&body(1, 300_000 - 256 * KIB, true)).unwrap();
    h.conn.consume(1, 300_000 - 256 * KIB as u64).unwrap();
    assert!(window_updates(&h.flush()).is_empty());
}

/// Node.js (nghttp2) holds back even the empty DATA frame that carries END_STREAM while its
/// stream window is 0: a body of exactly one window with a content-length must still get the
/// one byte of window that lets the client end the stream, or the request never completes.
#[test]
fn a_body_of_exactly_one_window_can_still_be_ended() {
    let mut h = Harness::established(default_config());
    let window = 256 * KIB;
    h.recv(&post(1, Some(window))).unwrap();
    h.recv(&body(1, window, false)).unwrap();
    assert_eq!(h.conn.scheduler().stream_remaining(1), Some(0));
    assert_eq!(h.conn.read(1, 8_000_000), Some(ReadStatus::Wait));
    let updates = window_updates(&h.flush());
    assert!(updates.contains(&(1, 1)), "the client needs one byte of window to end the stream: {updates:?}");
    let ev = h.recv(&data(1, b"", true)).unwrap();
    assert!(ev.contains(&Ev::ReadDone { stream_id: 1, fin: true }), "{ev:?}");
}

/// A client that pads every frame spends window on padding the content-length does not
/// count: the padding is credited back beyond the bound, so the body always fits.
#[test]
fn a_padding_client_with_a_content_length_is_never_short_of_window() {
    let mut h = Harness::established(default_config());
    let total = 600_000usize;
    h.recv(&post(1, Some(total))).unwrap();
    let mut sent = 0usize;
    let mut peer_window: i64 = 256 * KIB as i64;
    let mut rounds = 0;
    while sent < total {
        rounds += 1;
        assert!(rounds < 1000, "stalled at {sent} of {total}, peer window {peer_window}");
        // Frames of up to 16 KiB with 200 bytes of padding (201 with the length byte), as
        // long as the window allows; padding shrinks when the window is short.
        let mut input = Vec::new();
        while sent < total && peer_window > 0 {
            let room = peer_window.min(16_384) as usize;
            let pad = if room > 401 { 200 } else { 0 };
            let n = (room - if pad > 0 { pad + 1 } else { 0 }).min(total - sent);
            let end = sent + n == total;
            if pad > 0 {
                input.extend(padded_data(1, &vec![1; n], pad as u8, end));
                peer_window -= (n + pad + 1) as i64;
            } else {
                input.extend(data(1, &vec![1; n], end));
                peer_window -= n as i64;
            }
            sent += n;
        }
        h.recv(&input).unwrap();
        let _ = h.conn.read(1, 8_000_000);
        for (id, n) in window_updates(&h.flush()) {
            if id == 1 {
                peer_window += n as i64;
            }
        }
    }
    assert_eq!(h.conn.buffered(), 0);
}

#[test]
fn no_connection_credit_while_declared_bodies_fit_and_the_peer_keeps_half_the_window() {
    let mut cfg = cfg_windows(65_535, 65_535);
    cfg.window.update_threshold_percent = 25;
    let mut h = Harness::established(cfg);
    let mut input = Vec::new();
    for id in [1, 3] {
        input.extend(post(id, Some(16_000)));
        input.extend(body(id, 16_000, true));
    }
    h.recv(&input).unwrap();
    for id in [1, 3] {
        h.conn.consume(id, 16_000).unwrap();
    }
    // 32,000 consumed (over the 25% threshold), but the peer still has 33,535, over half.
    assert!(h.flush().is_empty(), "nobody needs the credit");
    h.recv(&post(5, Some(5_000))).unwrap();
    assert!(window_updates(&h.flush()).is_empty(), "5,000 fits in the 33,535 the peer has left");
    h.recv(&post(7, Some(40_000))).unwrap();
    assert_eq!(window_updates(&h.flush()), vec![(0, 32_000)]);
}

#[test]
fn connection_credit_tops_up_a_peer_below_half_the_window_even_without_a_receiving_stream() {
    let mut h = Harness::established(cfg_windows(65_535, 65_535));
    let mut input = Vec::new();
    for id in [1, 3, 5] {
        input.extend(post(id, Some(20_000)));
        input.extend(body(id, 20_000, true));
    }
    h.recv(&input).unwrap();
    for id in [1, 3, 5] {
        h.conn.consume(id, 20_000).unwrap();
    }
    // The peer has 5,535 left: the next upload would wait a round trip for credit.
    assert_eq!(window_updates(&h.flush()), vec![(0, 60_000)]);
}

#[test]
fn a_reader_that_keeps_up_is_not_held_up_by_slow_readers_of_other_streams() {
    // Three streams hold 768 KiB unread; the fourth is read as it arrives.
    let mut h = Harness::established(default_config());
    let mut input = Vec::new();
    for id in [1, 3, 5, 7] {
        input.extend(post(id, None));
    }
    for id in [1, 3, 5, 7] {
        input.extend(body(id, 256 * KIB, false));
    }
    h.recv(&input).unwrap();
    h.conn.consume(7, 256 * KIB as u64).unwrap();
    let credits = window_updates(&h.flush());
    assert!(credits.contains(&(0, 256 * KIB as u32)), "{credits:?}");
    assert!(credits.contains(&(7, 256 * KIB as u32)), "{credits:?}");
}

#[test]
fn rfc9113_6_9_2_streams_opened_before_our_settings_ack_get_credit_under_a_small_stream_window() {
    // Our stream window is smaller than the protocol default. The client opens a stream and
    // sends before it has read our SETTINGS, then applies them (its window drops to 0 or below)
    // and acknowledges. It must get credit once the application consumes.
    for sent in [16_384usize, 30_000] {
        let mut h = Harness::unacked(cfg_windows(16_384, MIB as u32));
        h.recv(&post(1, None)).unwrap();
        h.recv(&body(1, sent, false)).unwrap();
        h.recv(&settings_ack()).unwrap();
        assert_eq!(h.conn.scheduler().stream_remaining(1), Some(16_384 - sent as i64), "the peer's view");
        h.conn.consume(1, sent as u64).unwrap();
        let wu = window_updates(&h.flush());
        assert_eq!(wu, vec![(1, sent as u32)], "sent {sent}");
        // Now the peer may send a full window again, and not more.
        h.recv(&body(1, 16_384, false)).unwrap();
        let ev = h.recv(&data(1, b"x", false)).unwrap();
        assert_eq!(ev, vec![Ev::StreamError { stream_id: 1, code: ErrorCode::FLOW_CONTROL_ERROR.0 }]);
    }
    // Before the acknowledgement the protocol default applies (RFC 9113 6.9.2): not an error.
    let mut h = Harness::unacked(cfg_windows(16_384, MIB as u32));
    h.recv(&post(1, None)).unwrap();
    let ev = h.recv(&body(1, 65_535, false)).unwrap();
    assert_eq!(body_len(&ev, 1), 65_535);
}

#[test]
fn buffered_bytes_never_exceed_the_connection_window_in_randomized_sequences() {
    for seed in 0..40u64 {
        let mut rng = Rng::new(seed);
        let mut cfg = cfg_windows(
            [16_384, 65_535, 256 * KIB as u32][rng.below(3) as usize],
            [65_535, MIB as u32][rng.below(2) as usize],
        );
        cfg.window.adaptive = rng.below(2) == 0;
        let mut client = Client::new(Harness::established(cfg));
        for step in 0..400 {
            let ctx = format!("seed {seed} step {step}");
            match rng.below(8) {
                0 if client.open.len() < 10 => {
                    let cl = if rng.below(2) == 0 { Some(rng.below(300_000) as usize + 1) } else { None };
                    client.open_post(cl);
                }
                1..=3 => {
                    let budget = rng.below(100_000) as usize;
                    let pad = rng.below(3) == 0;
                    client.send_some(budget, pad);
                }
                4 => {
                    let ids: Vec<u32> = client.buffered.keys().copied().collect();
                    for id in ids {
                        let b = client.buffered[&id];
                        let n = rng.below(b as u64 + 1) as usize;
                        client.consume(id, n);
                    }
                }
                5 if rng.below(4) == 0 => {
                    if let Some(&id) = client.open.keys().next() {
                        client.input.extend(rst_stream(id, ErrorCode::CANCEL.0));
                        client.open.remove(&id);
                    }
                }
                _ => client.round_trip(Duration::from_millis(1 + rng.below(20))),
            }
            client.deliver();
            let conn = &client.h.conn;
            assert!(conn.buffered() <= conn.scheduler().connection_window() as u64, "{ctx}");
            assert!(!conn.is_closed(), "{ctx}");
        }
    }
}

#[test]
fn adaptive_growth_doubles_windows_when_the_peer_drains_them_within_one_round_trip() {
    let mut client = Client::new(Harness::established(default_config()));
    let ids: Vec<u32> = (0..4).map(|_| client.open_post(None)).collect();
    client.send_some(4, false);
    client.deliver();
    // A trickle does not make a window the limit: no probe.
    let out = client.h.flush();
    assert!(!out.iter().any(|f| matches!(f, Out::Ping { ack: false, .. })), "{out:?}");
    // The client sends 4 × 200 KiB at once; the application keeps up. The flush that credits
    // it carries a probe: the windows limited the client.
    client.send_some(800 * KIB - 4, false);
    client.deliver();
    client.consume_all();
    let probe = client.h.flush();
    assert_eq!(probe.iter().filter(|f| matches!(f, Out::Ping { ack: false, .. })).count(), 1, "{probe:?}");
    client.h.advance(Duration::from_millis(10));
    client.read(&probe);
    client.deliver();
    let out = client.h.flush();
    let params: Vec<_> = out
        .iter()
        .filter_map(
            |f| if let Out::Settings { ack: false, params } = f { Some(params.clone()) } else { None },
        )
        .collect();
    assert_eq!(params, vec![vec![(setting::INITIAL_WINDOW_SIZE, 512 * KIB as u32)]]);
    assert_eq!(client.h.conn.scheduler().connection_window(), 2 * MIB as u32);
    // The growth of the connection window goes out as one WINDOW_UPDATE.
    let conn: Vec<u32> = window_updates(&out).iter().filter(|w| w.0 == 0).map(|w| w.1).collect();
    assert_eq!(conn.len(), 1, "{out:?}");
    assert_eq!(client.conn_window + conn[0] as i64, 2 * MIB as i64);
    // No stream credit: the SETTINGS raise every stream's window instead.
    assert!(window_updates(&out).iter().all(|w| w.0 == 0), "{out:?}");
    client.read(&out);
    let windows: i64 = ids.iter().map(|id| client.open[id].window).sum();
    assert_eq!(windows, 4 * 512 * KIB as i64);
    let stats = client.h.conn.scheduler().stats().clone();
    assert_eq!((stats.connection_window_growths, stats.stream_window_growths, stats.rtt_us), (1, 1, 10_000));
    assert_eq!(client.grown, vec![(2 * MIB as u32, 512 * KIB as u32)]);
}

#[test]
fn adaptive_growth_stops_at_the_caps() {
    // 1 MiB per millisecond over a 10 ms round trip: 10 MiB in flight, above both caps.
    let mut sim = Sim::new(
        Client::new(Harness::established(default_config())),
        Duration::from_millis(5),
        Duration::from_millis(1),
        MIB,
    );
    for _ in 0..4 {
        sim.c.open_post(None);
    }
    let cfg = sim.c.h.conn.config().window.clone();
    for _ in 0..2000 {
        sim.step(|c| c.consume_all());
        assert!(sim.c.h.conn.scheduler().connection_window() <= cfg.max_connection_window);
        assert!(sim.c.conn_window <= cfg.max_connection_window as i64);
    }
    assert_eq!(sim.c.h.conn.scheduler().connection_window(), cfg.max_connection_window);
    assert_eq!(sim.c.h.conn.scheduler().stream_window(), cfg.max_stream_window);
    let values: Vec<u32> = sim
        .c
        .read_frames
        .iter()
        .filter_map(|f| {
            if let Out::Settings { ack: false, params } = f {
                params.iter().find(|p| p.0 == setting::INITIAL_WINDOW_SIZE).map(|p| p.1)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        values,
        vec![256 * KIB as u32, 512 * KIB as u32, MIB as u32, 2 * MIB as u32, 4 * MIB as u32, 8 * MIB as u32]
    );
    assert_eq!(sim.c.h.conn.scheduler().stats().connection_window_growths, 4);
    // One event per growth, each with the windows after it, the last at the caps.
    let grown = &sim.c.grown;
    assert_eq!(grown.len(), 5, "{grown:?}");
    assert!(grown.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1), "{grown:?}");
    assert_eq!(grown.last(), Some(&(cfg.max_connection_window, cfg.max_stream_window)));
    // At the caps the probes stop.
    let pings = sim.c.h.conn.stats().pings_sent;
    for _ in 0..500 {
        sim.step(|c| c.consume_all());
    }
    assert_eq!(sim.c.h.conn.stats().pings_sent, pings);
}

#[test]
fn no_growth_when_the_consumer_lags() {
    let mut client = Client::new(Harness::established(default_config()));
    let ids: Vec<u32> = (0..4).map(|_| client.open_post(None)).collect();
    client.send_some(800 * KIB, false);
    client.deliver();
    // Only a little consumed.
    for &id in &ids {
        client.consume(id, 50 * KIB);
    }
    let probe = client.h.flush();
    assert!(probe.iter().any(|f| matches!(f, Out::Ping { ack: false, .. })));
    assert!(window_updates(&probe).is_empty(), "200 KiB consumed of 1 MiB: below the threshold");
    client.h.advance(Duration::from_millis(10));
    client.read(&probe);
    client.deliver();
    let out = client.h.flush();
    assert!(!out.iter().any(|f| matches!(f, Out::Settings { ack: false, .. })), "{out:?}");
    assert_eq!(client.h.conn.scheduler().connection_window(), MIB as u32);
    assert_eq!(client.h.conn.scheduler().stats().connection_window_growths, 0);
    assert!(client.grown.is_empty(), "{:?}", client.grown);
    assert!(window_updates(&out).is_empty(), "{out:?}");
}

/// Probes (rule 7) are PINGs the peer must answer: a trickle never makes a window the limit
/// and is never probed (a gRPC stream that sends a few bytes a second got ~94 PINGs a second
/// before this rule); while windows do limit the peer, one probe at a time, at most
/// PROBE_BURST in a row, then PROBES_PER_SECOND.
#[test]
fn probes_only_while_a_window_limits_the_peer_one_at_a_time_and_rarely() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, None)).unwrap();
    // A 5-second trickle: 50 small DATA frames, consumed as they come.
    for _ in 0..50 {
        h.advance(Duration::from_millis(100));
        h.recv(&data(1, &[b'x'; 2000], false)).unwrap();
        h.conn.read(1, 8_000_000);
        h.flush();
    }
    assert_eq!(h.conn.stats().pings_sent, 0, "a trickle is never probed");
    // Now the peer fills its windows each round: probes follow, one at a time.
    let mut pings = Vec::new();
    let mut acked = 0;
    for round in 0..40 {
        h.advance(Duration::from_millis(10));
        h.recv(&data(1, &vec![b'y'; 16_000], false)).unwrap();
        h.conn.read(1, 8_000_000);
        let out = h.flush();
        let probes: Vec<_> = out
            .iter()
            .filter_map(|f| if let Out::Ping { ack: false, data } = f { Some(*data) } else { None })
            .collect();
        assert!(probes.len() <= 1, "{out:?}");
        assert!(pings.len() == acked || probes.is_empty(), "a second probe while one is in flight");
        pings.extend(probes);
        // Every other round, the peer acknowledges the probe in flight.
        if round % 2 == 1 && pings.len() > acked {
            h.recv(&ping_ack(pings[acked])).unwrap();
            acked += 1;
        }
    }
    let elapsed_s = 0.4;
    let bound = PROBE_BURST as f64 + PROBES_PER_SECOND as f64 * elapsed_s;
    assert!(!pings.is_empty(), "windows limited the peer: probes expected");
    assert!((pings.len() as f64) <= bound, "{} probes in {elapsed_s} s", pings.len());
}

#[test]
fn recv_returns_data_payloads_as_input_ranges_except_a_frame_straddling_two_calls() {
    let mut conn = Connection::new(default_config(), std::time::Instant::now()).unwrap();
    let now = std::time::Instant::now();
    // Our preface (with the credit that opens the connection window) goes out first.
    conn.flush(now);
    conn.recv(&concat(&[PREFACE.to_vec(), settings(&[]), settings_ack()]), now).unwrap();
    conn.take_events();
    let mut input = Vec::new();
    let mut expected = Vec::new();
    let mut i = 0u32;
    while input.len() < 64 * KIB {
        let id = 2 * (i % 8) + 1;
        if i < 8 {
            input.extend(post(id, None));
        }
        let payload: Vec<u8> =
            (0..(500 + 997 * i as usize % 3000)).map(|b| (b as u32 * 7 + i) as u8).collect();
        if i.is_multiple_of(3) {
            input.extend(padded_data(id, &payload, 17, false));
        } else {
            input.extend(data(id, &payload, false));
        }
        expected.push((id, payload));
        match i % 4 {
            0 => input.extend(ping([i as u8; 8])),
            1 => input.extend(window_update(0, 1 + i)),
            2 => input.extend(priority(id, 0)),
            _ => input.extend(raw_frame(0xfa, 0, 0, b"ext")),
        }
        i += 1;
    }
    // Cut inside the last DATA frame.
    let (a, b) = input.split_at(input.len() - 1500);
    let mut got = Vec::new();
    conn.recv(a, now).unwrap();
    for e in conn.take_events() {
        if let Event::Data { stream_id, data, .. } = e {
            match data {
                Payload::Input { start, len } => {
                    // The range points into this call's input: no copy was made.
                    got.push((stream_id, a[start..start + len].to_vec(), false));
                }
                Payload::Owned(_) => panic!("a whole frame was copied"),
            }
        }
    }
    conn.recv(b, now).unwrap();
    for e in conn.take_events() {
        if let Event::Data { stream_id, data, .. } = e {
            match data {
                Payload::Owned(v) => got.push((stream_id, v, true)),
                Payload::Input { .. } => panic!("the straddling frame cannot be a range of either input"),
            }
        }
    }
    assert!(input.len() >= 64 * KIB);
    assert_eq!(got.len(), expected.len());
    assert_eq!(got.iter().filter(|g| g.2).count(), 1);
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!((g.0, &g.1), (e.0, &e.1));
    }
}

/// Found by the soak (tests/fuzz_soak.rs): a late stream error on a stream both sides had
/// ended released the body bytes the application still held, crediting the peer for them.
#[test]
fn a_late_stream_error_on_a_finished_stream_keeps_the_bytes_the_application_holds() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, None)).unwrap();
    let ev = h.recv(&body(1, 10 * KIB, true)).unwrap();
    assert_eq!(body_len(&ev, 1), 10 * KIB);
    h.conn.send_headers(1, &[(b":status", b"200")], true).unwrap();
    assert_eq!(h.conn.stream_state(1), None, "both sides ended the stream");
    h.flush();
    let remaining = h.conn.scheduler().connection_remaining();
    // WINDOW_UPDATE with an increment of 0: a stream error (RFC 9113 6.9), answered with
    // RST_STREAM, and nothing to tell the application about a stream it finished.
    let ev = h.recv(&raw_frame(0x8, 0, 1, &[0, 0, 0, 0])).unwrap();
    assert!(ev.is_empty(), "{ev:?}");
    let out = h.flush();
    assert_eq!(resets(&out), vec![(1, ErrorCode::PROTOCOL_ERROR.0)]);
    assert_eq!(h.conn.buffered(), 10 * KIB as u64, "the application still holds the body");
    assert!(window_updates(&out).is_empty(), "no credit for bytes not consumed: {out:?}");
    assert_eq!(h.conn.scheduler().connection_remaining(), remaining);
    // Consuming them is what releases them.
    h.conn.consume(1, 10 * KIB as u64).unwrap();
    assert_eq!(h.conn.buffered(), 0);
}
