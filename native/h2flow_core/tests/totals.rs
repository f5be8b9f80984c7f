//! A server's totals: what engines report at flush adds up to the sum of their own counters;
//! gauges leave with the connection, peaks stay; defences that trip are reported once.

mod common_engine;
use std::collections::HashMap;

use common_engine::*;
use h2flow_core::totals::{fields, snapshot, snapshot_http1, Kind, Presence, Reporter, Totals, Values};
use h2flow_core::ErrorCode;

fn named(values: &Values) -> HashMap<(Option<&'static str>, &'static str), u64> {
    fields().iter().zip(values.iter()).map(|(f, &v)| ((f.group, f.name), v)).collect()
}

fn value(values: &Values, group: Option<&'static str>, name: &'static str) -> u64 {
    named(values)[&(group, name)]
}

#[test]
fn every_field_has_a_unique_name() {
    let names = named(&[0; h2flow_core::totals::LEN]);
    assert_eq!(names.len(), h2flow_core::totals::LEN);
    assert!(names.contains_key(&(Some("frames_sent"), "window_update")));
    assert!(names.contains_key(&(Some("stream_errors"), "unknown")));
    assert!(names.contains_key(&(Some("defences"), "reset_flood")));
}

#[test]
fn snapshots_name_the_engines_counters() {
    let mut h = Harness::established(default_config());
    h.recv(&get(1)).unwrap();
    h.conn.send_headers(1, &[(b":status", b"200")], false).unwrap();
    h.conn.send_data(1, b"hello", true).unwrap();
    h.flush();
    let s = snapshot(&h.conn);
    let stats = h.conn.stats();
    assert_eq!(value(&s, Some("frames_received"), "headers"), 1);
    assert_eq!(value(&s, Some("frames_sent"), "data"), stats.frames_sent[0]);
    assert_eq!(value(&s, None, "bytes_sent"), stats.bytes_sent);
    assert_eq!(value(&s, None, "data_bytes_sent"), 5);
    assert_eq!(value(&s, None, "streams_opened"), 1);
    assert_eq!(value(&s, None, "peak_open_streams"), 1);
    assert_eq!(value(&s, None, "open_streams"), 0);
    assert_eq!(value(&s, None, "connection_window"), 1024 * 1024);
    assert_eq!(value(&s, Some("window_update_frames"), "connection"), 1);
    assert_eq!(value(&s, None, "connections"), 0);
}

#[test]
fn totals_are_the_sum_of_what_engines_reported() {
    let totals = Totals::new();
    let mut a = Harness::established(default_config());
    let mut b = Harness::established(default_config());
    let mut pa = Presence::join(totals.clone());
    let pb = Presence::join(totals.clone());
    let mut ra = Reporter::new(totals.clone(), &a.conn);
    let mut rb = Reporter::new(totals.clone(), &b.conn);
    assert_eq!(value(&totals.read(), None, "connections"), 2);
    assert_eq!(value(&totals.read(), None, "http2_connections"), 2);

    // Two requests open on a, one on b; a gets a body it holds.
    a.recv(&concat(&[post(1, Some(10)), data(1, &[1; 10], true), get(3)])).unwrap();
    b.recv(&get(1)).unwrap();
    a.flush();
    b.flush();
    ra.report(&a.conn);
    rb.report(&b.conn);
    let t = totals.read();
    assert_eq!(value(&t, None, "streams_opened"), 3);
    assert_eq!(value(&t, None, "open_streams"), 3);
    assert_eq!(value(&t, None, "buffered_bytes"), 10);
    assert_eq!(value(&t, None, "peak_open_streams"), 2);
    assert_eq!(value(&t, None, "connection_window"), 2 * 1024 * 1024);
    let sa = snapshot(&a.conn);
    let sb = snapshot(&b.conn);
    for (i, f) in fields().iter().enumerate() {
        let want = match f.kind {
            Kind::Counter | Kind::Gauge => sa[i] + sb[i],
            Kind::Peak => sa[i].max(sb[i]),
            Kind::Last => t[i],
        };
        if f.name.starts_with("connections") {
            continue;
        }
        assert_eq!(t[i], want, "{f:?}");
    }

    // a closes: its counters stay, its gauges go, its peak stays.
    ra.close(&a.conn);
    ra.close(&a.conn);
    pa.leave();
    pa.leave();
    let t = totals.read();
    assert_eq!(value(&t, None, "http2_connections"), 1);
    assert_eq!(value(&t, None, "connections"), 1);
    assert_eq!(value(&t, None, "connections_closed"), 1);
    assert_eq!(value(&t, None, "streams_opened"), 3);
    assert_eq!(value(&t, None, "open_streams"), 1);
    assert_eq!(value(&t, None, "buffered_bytes"), 0);
    assert_eq!(value(&t, None, "peak_open_streams"), 2);
    assert_eq!(value(&t, None, "connection_window"), 1024 * 1024);

    // b is dropped without close (its owner was killed): it leaves all the same.
    drop(rb);
    drop(pb);
    let t = totals.read();
    assert_eq!(value(&t, None, "http2_connections"), 0);
    assert_eq!(value(&t, None, "connections"), 0);
    assert_eq!(value(&t, None, "connections_closed"), 2);
    assert_eq!(value(&t, None, "open_streams"), 0);
    assert_eq!(value(&t, None, "connection_window"), 0);
    assert_eq!(value(&t, None, "streams_opened"), 3);
}

#[test]
fn a_defence_that_trips_is_reported_once() {
    let totals = Totals::new();
    let cfg = default_config();
    let burst = cfg.peer_resets.burst;
    let mut h = Harness::established(cfg);
    let mut r = Reporter::new(totals.clone(), &h.conn);
    let mut input = Vec::new();
    for i in 0..=burst {
        input.extend(post(2 * i + 1, None));
        input.extend(rst_stream(2 * i + 1, ErrorCode::CANCEL.0));
    }
    let (_, result) = h.feed(&input);
    assert!(result.is_err());
    h.flush();
    let rapid_reset = fields().iter().position(|f| f.name == "rapid_reset").unwrap();
    let first = h2flow_core::totals::DEFENCES;
    assert_eq!(r.report(&h.conn), 1 << (rapid_reset - first));
    assert_eq!(r.report(&h.conn), 0);
    assert_eq!(value(&totals.read(), Some("defences"), "rapid_reset"), 1);
    assert_eq!(value(&totals.read(), Some("connection_errors"), "enhance_your_calm"), 1);
}

#[test]
fn http1_engines_report_their_own_values() {
    use h2flow_core::http1;
    let totals = Totals::new();
    let mut presence = Presence::join(totals.clone());
    let mut conn = http1::Connection::new(http1::Config::default(), std::time::Instant::now()).unwrap();
    let mut r = Reporter::new(totals.clone(), &conn);
    let now = std::time::Instant::now();
    conn.recv(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab", now).unwrap();
    conn.send_headers(1, &[(b":status", b"204")], true).unwrap();
    conn.flush(now);
    conn.recv(b"cdGET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", now)
        .unwrap_err();
    conn.flush(now);
    r.report(&conn);
    let t = totals.read();
    assert_eq!(value(&t, Some("http1"), "connections"), 1);
    assert_eq!(value(&t, Some("http1"), "requests"), 1);
    assert_eq!(value(&t, Some("http1"), "responses"), 1);
    assert_eq!(value(&t, Some("http1"), "body_bytes_received"), 2);
    assert_eq!(value(&t, Some("http1"), "body_bytes_discarded"), 2);
    assert_eq!(value(&t, Some("http1_rejected"), "conflicting_content_length"), 1);
    assert_eq!(value(&t, Some("http1"), "rejected_total"), 1);
    assert_eq!(value(&t, None, "http2_connections"), 0);
    assert_eq!(value(&t, None, "bytes_received"), 0, "HTTP/2 values are HTTP/2's");
    assert_eq!(value(&snapshot_http1(&conn), None, "connections"), 0, "the presence's");
    // The h2c upgrade: the HTTP/1.1 engine hands over to an HTTP/2 one; the connection stays.
    r.close(&conn);
    let h2 = Harness::established(default_config());
    let _r2 = Reporter::new(totals.clone(), &h2.conn);
    let t = totals.read();
    assert_eq!(value(&t, Some("http1"), "connections"), 0);
    assert_eq!(value(&t, None, "http2_connections"), 1);
    assert_eq!(value(&t, None, "connections"), 1);
    assert_eq!(value(&t, Some("http1"), "requests"), 1, "counters stay");
    presence.leave();
    assert_eq!(value(&totals.read(), None, "connections_closed"), 1);
}
