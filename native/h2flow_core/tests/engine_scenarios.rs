//! The receive-flow-control scenarios of the issue, at engine level, with clients that respect
//! flow control. Each prints a one-line summary (`cargo test -- --nocapture`).

mod common_engine;
use std::time::Duration;

use common_engine::*;
use h2flow_core::ErrorCode;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// (a) 64 uploads sent at once, read by the application only after all arrived.
fn burst_of_64(size: usize) -> (usize, usize, u64) {
    let mut c = Client::new(Harness::established(default_config()));
    let ids: Vec<u32> = (0..64).map(|_| c.open_post(Some(size))).collect();
    c.send_some(usize::MAX, false);
    assert!(c.open.is_empty(), "every body fits in the windows of the server preface");
    c.deliver();
    assert_eq!(c.bodies_complete.len(), 64, "every body delivered without waiting for a credit");
    assert_eq!(c.h.conn.buffered(), 64 * size as u64);
    // The application reads them now, and answers.
    c.consume_all();
    for &id in &ids {
        c.h.conn.send_headers(id, &[(b":status", b"200")], true).unwrap();
    }
    c.round_trip(Duration::from_millis(10));
    assert_eq!(c.responses.len(), 64);
    let (conn, stream) = c.window_updates_read();
    assert!(conn + stream <= 2, "{conn} connection and {stream} stream WINDOW_UPDATEs");
    (conn, stream, c.h.conn.scheduler().stats().peak_buffered)
}

#[test]
fn scenario_a_64_uploads_of_1_kib_and_of_16_kib_need_no_credit() {
    for size in [KIB, 16 * KIB] {
        let (conn, stream, peak) = burst_of_64(size);
        println!(
            "(a) 64 x {} KiB: {} WINDOW_UPDATE frames ({conn} connection incl. the initial one, {stream} stream), peak buffered {peak}",
            size / KIB,
            conn + stream
        );
    }
}

#[test]
fn scenario_b_300_uploads_against_a_limit_of_100_with_a_lagging_consumer() {
    let mut c = Client::fresh(default_config());
    // The client opens all 300 in its first flight, before it has read the server's SETTINGS,
    // and sends what the protocol's initial windows allow.
    let ids: Vec<u32> = (0..300).map(|_| c.open_post(Some(16 * KIB))).collect();
    c.send_some(usize::MAX, false);
    let mut answered = std::collections::BTreeSet::new();
    let mut iterations = 0;
    let mut peak_buffered = 0;
    while answered.len() + c.refused.len() < 300 {
        iterations += 1;
        assert!(iterations < 1000, "no progress");
        c.deliver();
        peak_buffered = peak_buffered.max(c.h.conn.buffered());
        // The application reads a few streams per flush, whole bodies, oldest first.
        for id in c.buffered.keys().copied().take(5).collect::<Vec<_>>() {
            let n = c.buffered[&id];
            c.consume(id, n);
        }
        for &id in &c.bodies_complete {
            if !c.buffered.contains_key(&id) && answered.insert(id) {
                c.h.conn.send_headers(id, &[(b":status", b"200")], true).unwrap();
            }
        }
        c.round_trip(Duration::from_millis(10));
        c.send_some(usize::MAX, false);
    }
    let accepted: Vec<u32> = ids[..100].to_vec();
    assert_eq!(answered.iter().copied().collect::<Vec<_>>(), accepted, "the first 100 complete");
    assert_eq!(c.responses.iter().copied().collect::<Vec<_>>(), accepted);
    assert_eq!(c.refused, ids[100..].to_vec(), "the rest refused");
    assert!(c.goaways.is_empty(), "{:?}", c.goaways);
    let (conn, stream) = c.window_updates_read();
    assert_eq!(stream, 0);
    assert!(conn <= 20, "{conn} connection WINDOW_UPDATEs");
    assert_eq!(c.h.conn.open_streams(), 0);
    assert!(peak_buffered <= MIB as u64);
    println!(
        "(b) 300 x 16 KiB, limit 100, 5 streams consumed per flush: {} accepted, {} refused, {conn} connection + {stream} stream WINDOW_UPDATEs, {iterations} round trips, peak buffered {peak_buffered}",
        answered.len(),
        c.refused.len()
    );
}

#[test]
fn scenario_b_the_same_after_the_client_acknowledged_the_limit() {
    // A client that read and acknowledged our SETTINGS and still opens 300 streams is told to
    // calm down once the refusals exceed their bucket; the 100 accepted streams still complete.
    let mut c = Client::new(Harness::established(default_config()));
    let ids: Vec<u32> = (0..300).map(|_| c.open_post(Some(16 * KIB))).collect();
    c.send_some(usize::MAX, false);
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..200 {
        c.deliver();
        for id in c.buffered.keys().copied().take(5).collect::<Vec<_>>() {
            let n = c.buffered[&id];
            c.consume(id, n);
        }
        for &id in &c.bodies_complete {
            if !c.buffered.contains_key(&id) && answered.insert(id) {
                c.h.conn.send_headers(id, &[(b":status", b"200")], true).unwrap();
            }
        }
        c.round_trip(Duration::from_millis(10));
        c.send_some(usize::MAX, false);
    }
    assert_eq!(answered.iter().copied().collect::<Vec<_>>(), ids[..100].to_vec());
    let burst = c.h.conn.config().refused_streams.burst as usize;
    assert_eq!(c.refused.len(), burst + 1);
    assert_eq!(c.goaways, vec![(ids[99], ErrorCode::ENHANCE_YOUR_CALM.0)]);
    assert!(c.h.conn.is_done());
    println!(
        "(b') after the ACK: {} accepted and answered, {} refused, then GOAWAY ENHANCE_YOUR_CALM last_stream_id {}",
        answered.len(),
        c.refused.len(),
        ids[99]
    );
}

#[test]
fn scenario_c_one_64_mib_upload_consumed_as_it_arrives_does_not_stall() {
    // 256 KiB per millisecond over a 10 ms round trip: 2.5 MiB in flight.
    let mut sim = Sim::new(
        Client::new(Harness::established(default_config())),
        Duration::from_millis(5),
        Duration::from_millis(1),
        256 * KIB,
    );
    let id = sim.c.open_post(Some(64 * MIB));
    let rtt = sim.rtt_steps();
    let mut last_growth_step = 0;
    let mut growths = (0, 0);
    let mut blocked = Vec::new();
    while !sim.c.bodies_complete.contains(&id) || sim.c.h.conn.buffered() > 0 {
        assert!(sim.steps < 5000, "upload did not finish");
        sim.step(|c| c.consume_all());
        let st = sim.c.h.conn.scheduler().stats();
        if (st.connection_window_growths, st.stream_window_growths) != growths {
            growths = (st.connection_window_growths, st.stream_window_growths);
            last_growth_step = sim.steps;
        }
        blocked.push(sim.blocked_run);
        let conn = &sim.c.h.conn;
        assert!(conn.buffered() <= conn.scheduler().connection_window() as u64);
    }
    let blocked_steps = blocked.iter().filter(|&&b| b > 0).count();
    // Once the new windows reached the client (a round trip after the last growth).
    let longest_after_growth =
        blocked[(last_growth_step + rtt).min(blocked.len())..].iter().max().copied().unwrap_or(0);
    let s = sim.c.h.conn.scheduler().stats().clone();
    let (conn_wu, stream_wu) = sim.c.window_updates_read();
    assert!(
        sim.longest_blocked_run <= rtt,
        "blocked for {} steps, one round trip is {rtt}",
        sim.longest_blocked_run
    );
    let ideal = 64 * MIB / (256 * KIB);
    println!(
        "(c) 64 MiB at 256 KiB/ms, RTT 10 ms: {} ms (ideal {ideal} + one round trip), windows grew {} + {} times to {} / {}, blocked {blocked_steps} ms in all, longest {} ms (last growth at {} ms), {conn_wu} connection + {stream_wu} stream WINDOW_UPDATEs, {} SETTINGS, peak buffered {}",
        sim.steps,
        s.connection_window_growths,
        s.stream_window_growths,
        sim.c.h.conn.scheduler().connection_window(),
        sim.c.h.conn.scheduler().stream_window(),
        sim.longest_blocked_run,
        last_growth_step,
        sim.c.read_frames.iter().filter(|f| matches!(f, Out::Settings { ack: false, .. })).count(),
        s.peak_buffered
    );
    assert_eq!(longest_after_growth, 0, "a stall after the windows grew");
}

#[test]
fn scenario_d_a_consumer_that_never_consumes_holds_buffering_at_the_connection_window() {
    let mut c = Client::new(Harness::established(default_config()));
    for _ in 0..8 {
        c.open_post(None);
    }
    for _ in 0..50 {
        c.send_some(usize::MAX, false);
        c.deliver();
        c.round_trip(Duration::from_millis(10));
    }
    let conn = &c.h.conn;
    assert_eq!(conn.buffered(), MIB as u64, "buffering stops at the connection window");
    assert_eq!(c.conn_window, 0, "the client is held by flow control");
    assert!(c.blocked());
    assert!(!conn.is_closed() && c.goaways.is_empty());
    assert!(resets(&c.read_frames).is_empty());
    let (conn_wu, stream_wu) = c.window_updates_read();
    assert_eq!((conn_wu, stream_wu), (1, 0), "only the initial credit");
    assert_eq!(
        conn.scheduler().stats().connection_window_growths + conn.scheduler().stats().stream_window_growths,
        0
    );
    println!(
        "(d) never consumed: buffered {} = connection window, client window 0, {conn_wu} WINDOW_UPDATE, no error",
        conn.buffered()
    );
}
