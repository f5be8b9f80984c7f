//! A server's totals: counters every connection of the server adds to without a round trip, so
//! that reading them costs the same with one connection or ten thousand, and never waits on
//! any of them.
//!
//! Each connection's engine, HTTP/2 or HTTP/1.1, owns a [`Reporter`]. At every flush (a call
//! that happens once per burst of work anyway) the reporter takes a snapshot of the engine's
//! counters ([`Source::snapshot`]: [`snapshot`] for HTTP/2, [`snapshot_http1`] for HTTP/1.1,
//! each filling its own values), compares it with the previous one and adds what changed to
//! the shared [`Totals`] (relaxed atomics; most values do not change between two flushes, so a
//! flush does a handful of atomic adds). A connection itself is counted by its [`Presence`],
//! from the moment it is accepted (before anyone knows which protocol it speaks) until it
//! closes; an engine may hand over to another on the way (an h2c upgrade).
//! Four kinds of value:
//!
//! - counters (frames, bytes, streams, defences, errors) add up;
//! - gauges (buffered bytes, queued bytes, open streams, windows) are what is true now: a
//!   connection adds the change, and takes its share back when it closes, so the total covers
//!   live connections only;
//! - peaks are the maximum over every connection, live or closed;
//! - `rtt_us` is the last round trip any connection measured.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use crate::error::ErrorCode;
use crate::frame::kind;
use crate::http1::Reject;
use crate::stats::{UNKNOWN_CODE, UNKNOWN_KIND};
use crate::Connection;

/// How a value combines over connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only grows; the total is the sum.
    Counter,
    /// Goes up and down; the total is the sum over live connections.
    Gauge,
    /// The total is the maximum over every connection.
    Peak,
    /// The total is the last value reported.
    Last,
}

/// One value of a snapshot: its name (within `group`, a nested map, if any) and kind.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub group: Option<&'static str>,
    pub name: &'static str,
    pub kind: Kind,
}

const FRAME_SLOTS: usize = UNKNOWN_KIND + 1;
const CODE_SLOTS: usize = UNKNOWN_CODE + 1;

use Kind::{Counter, Gauge, Last, Peak};

/// The HTTP/2 values after the per-frame-type and per-error-code slots, in snapshot order.
/// Keep in step with [`named_values`].
const NAMED: [(Option<&str>, &str, Kind); ENGINE_NAMED] = [
    (Some("window_update_frames"), "connection", Counter),
    (Some("window_update_frames"), "stream", Counter),
    (Some("defences"), "rapid_reset", Counter),
    (Some("defences"), "continuation_flood", Counter),
    (Some("defences"), "ack_flood", Counter),
    (Some("defences"), "settings_flood", Counter),
    (Some("defences"), "empty_frames", Counter),
    (Some("defences"), "header_list_too_large", Counter),
    (Some("defences"), "refused_stream_flood", Counter),
    (Some("defences"), "reset_flood", Counter),
    (None, "bytes_received", Counter),
    (None, "bytes_sent", Counter),
    (None, "data_bytes_received", Counter),
    (None, "data_bytes_sent", Counter),
    (None, "flushes", Counter),
    (None, "flushes_with_window_updates", Counter),
    (None, "credited_bytes", Counter),
    (None, "send_timeouts", Counter),
    (None, "streams_opened", Counter),
    (None, "streams_refused", Counter),
    (None, "streams_reset_by_peer", Counter),
    (None, "streams_reset_by_us", Counter),
    (None, "writes_to_closed_streams", Counter),
    (None, "stream_stalls", Counter),
    (None, "connection_stalls", Counter),
    (None, "connection_window_growths", Counter),
    (None, "stream_window_growths", Counter),
    (None, "pings_sent", Counter),
    (None, "buffered_bytes", Gauge),
    (None, "queued_send_bytes", Gauge),
    (None, "open_streams", Gauge),
    (None, "connection_window", Gauge),
    (None, "stream_window", Gauge),
    (None, "peak_buffered_bytes", Peak),
    (None, "peak_queued_send_bytes", Peak),
    (None, "peak_open_streams", Peak),
    (None, "rtt_us", Last),
    // 1 while the engine is live: live HTTP/2 connections.
    (None, "http2_connections", Gauge),
];

/// The values an HTTP/2 engine reports after its frame and error slots.
const ENGINE_NAMED: usize = 38;

/// The values of an HTTP/1.1 engine (group `http1`), in snapshot order. Keep in step with
/// [`snapshot_http1`].
const HTTP1_NAMED: [(&str, Kind); 26] = [
    // 1 while the engine is live: live HTTP/1.1 connections.
    ("connections", Gauge),
    ("requests", Counter),
    ("responses", Counter),
    ("bytes_received", Counter),
    ("bytes_sent", Counter),
    ("body_bytes_received", Counter),
    ("body_bytes_discarded", Counter),
    ("body_bytes_sent", Counter),
    ("responses_content_length", Counter),
    ("responses_chunked", Counter),
    ("responses_close_delimited", Counter),
    ("responses_without_body", Counter),
    ("continues_sent", Counter),
    ("upgrades", Counter),
    ("upgrades_declined", Counter),
    ("cancelled", Counter),
    ("writes_to_closed", Counter),
    ("idle_timeouts", Counter),
    ("input_pauses", Counter),
    ("rejected_total", Counter),
    ("buffered_bytes", Gauge),
    ("queued_bytes", Gauge),
    ("pipelined", Gauge),
    ("peak_pipelined", Peak),
    ("peak_buffered_bytes", Peak),
    ("peak_queued_bytes", Peak),
];

/// Where the HTTP/1.1 values start, then its refusals by kind (group `http1_rejected`).
pub const HTTP1: usize = 2 * FRAME_SLOTS + 2 * CODE_SLOTS + ENGINE_NAMED;
const HTTP1_REJECTED: usize = HTTP1 + HTTP1_NAMED.len();

/// Number of values in a snapshot.
pub const LEN: usize = HTTP1_REJECTED + Reject::COUNT + 2;

/// Where the defence counters start in a snapshot (eight of them, in [`NAMED`]'s order).
pub const DEFENCES: usize = 2 * FRAME_SLOTS + 2 * CODE_SLOTS + 2;
/// Number of defence counters.
pub const DEFENCE_COUNT: usize = 8;
const CONNECTIONS: usize = LEN - 2;
const CONNECTIONS_CLOSED: usize = LEN - 1;

/// A snapshot: one value per [`fields`] entry.
pub type Values = [u64; LEN];

/// The name and kind of every value of a snapshot, in order: frames received and sent by type,
/// connection and stream errors by code, then the named values.
pub fn fields() -> &'static [Field; LEN] {
    static FIELDS: OnceLock<[Field; LEN]> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let mut fields = [Field { group: None, name: "", kind: Counter }; LEN];
        let mut i = 0;
        for group in ["frames_received", "frames_sent"] {
            for k in 0..FRAME_SLOTS {
                let name = if k == UNKNOWN_KIND { "unknown" } else { kind::name(k as u8) };
                fields[i] = Field { group: Some(group), name, kind: Counter };
                i += 1;
            }
        }
        for group in ["connection_errors", "stream_errors"] {
            for c in 0..CODE_SLOTS {
                let name = ErrorCode(c as u32).name().unwrap_or("unknown");
                fields[i] = Field { group: Some(group), name, kind: Counter };
                i += 1;
            }
        }
        for (group, name, kind) in NAMED {
            fields[i] = Field { group, name, kind };
            i += 1;
        }
        for (name, kind) in HTTP1_NAMED {
            fields[i] = Field { group: Some("http1"), name, kind };
            i += 1;
        }
        for r in Reject::ALL {
            fields[i] = Field { group: Some("http1_rejected"), name: r.name(), kind: Counter };
            i += 1;
        }
        // Counted by `Presence`, not by engines.
        fields[CONNECTIONS] = Field { group: None, name: "connections", kind: Gauge };
        fields[CONNECTIONS_CLOSED] = Field { group: None, name: "connections_closed", kind: Counter };
        fields
    })
}

fn named_values(conn: &Connection) -> [u64; ENGINE_NAMED] {
    let s = conn.stats();
    let w = conn.scheduler().stats();
    let d = &s.defences;
    [
        w.connection_window_updates,
        w.stream_window_updates,
        d.rapid_reset,
        d.continuation_flood,
        d.ack_flood,
        d.settings_flood,
        d.empty_frames,
        d.header_list_too_large,
        d.refused_stream_flood,
        d.reset_flood,
        s.bytes_received,
        s.bytes_sent,
        s.data_bytes_received,
        s.data_bytes_sent,
        s.flushes,
        w.flushes_with_window_updates,
        w.credited_bytes,
        s.send_timeouts,
        s.streams_opened,
        s.streams_refused,
        s.streams_reset_by_peer,
        s.streams_reset_by_us,
        s.writes_to_closed_streams,
        s.stream_stalls,
        s.connection_stalls,
        w.connection_window_growths,
        w.stream_window_growths,
        s.pings_sent,
        conn.buffered(),
        conn.queued(),
        conn.open_streams() as u64,
        conn.scheduler().connection_window() as u64,
        conn.scheduler().stream_window() as u64,
        w.peak_buffered,
        s.peak_queued_send_bytes,
        s.peak_open_streams,
        w.rtt_us,
        1,
    ]
}

/// The HTTP/2 engine's counters now (its HTTP/1.1 values and the `connections` values are 0:
/// they are other sources').
pub fn snapshot(conn: &Connection) -> Values {
    let s = conn.stats();
    let mut v = [0u64; LEN];
    let (frames_received, rest) = v.split_at_mut(FRAME_SLOTS);
    frames_received.copy_from_slice(&s.frames_received);
    let (frames_sent, rest) = rest.split_at_mut(FRAME_SLOTS);
    frames_sent.copy_from_slice(&s.frames_sent);
    let (connection_errors, rest) = rest.split_at_mut(CODE_SLOTS);
    connection_errors.copy_from_slice(&s.connection_errors);
    let (stream_errors, rest) = rest.split_at_mut(CODE_SLOTS);
    stream_errors.copy_from_slice(&s.stream_errors);
    rest[..ENGINE_NAMED].copy_from_slice(&named_values(conn));
    v
}

/// The HTTP/1.1 engine's counters now, in the `http1` and `http1_rejected` values (the others
/// are 0).
pub fn snapshot_http1(conn: &crate::http1::Connection) -> Values {
    let s = conn.stats();
    let named: [u64; HTTP1_NAMED.len()] = [
        1,
        s.requests,
        s.responses,
        s.bytes_received,
        s.bytes_sent,
        s.body_bytes_received,
        s.body_bytes_discarded,
        s.body_bytes_sent,
        s.responses_content_length,
        s.responses_chunked,
        s.responses_close_delimited,
        s.responses_without_body,
        s.continues_sent,
        s.upgrades,
        s.upgrades_declined,
        s.cancelled,
        s.writes_to_closed,
        s.idle_timeouts,
        s.input_pauses,
        s.rejected_total(),
        conn.buffered(),
        conn.queued(),
        conn.pipelined() as u64,
        s.peak_pipelined,
        s.peak_buffered,
        s.peak_queued,
    ];
    let mut v = [0u64; LEN];
    // ok: constant ranges within LEN, of the lengths of `named` and `rejected`.
    v[HTTP1..HTTP1_REJECTED].copy_from_slice(&named);
    v[HTTP1_REJECTED..HTTP1_REJECTED + Reject::COUNT].copy_from_slice(&s.rejected);
    v
}

/// An engine whose counters a [`Reporter`] reports.
pub trait Source {
    fn snapshot(&self) -> Values;
}

impl Source for Connection {
    fn snapshot(&self) -> Values {
        snapshot(self)
    }
}

impl Source for crate::http1::Connection {
    fn snapshot(&self) -> Values {
        snapshot_http1(self)
    }
}

/// The totals of one server, shared by its connections' reporters.
pub struct Totals {
    values: [AtomicU64; LEN],
}

impl Default for Totals {
    fn default() -> Self {
        Totals { values: std::array::from_fn(|_| AtomicU64::new(0)) }
    }
}

impl Totals {
    pub fn new() -> Arc<Totals> {
        Arc::new(Totals::default())
    }

    /// The totals now, one value per [`fields`] entry. Each value is read atomically; the set is
    /// not one instant's (a flush may land between two reads), which no reader can tell from
    /// a read a moment earlier or later.
    pub fn read(&self) -> Values {
        let mut v: Values = std::array::from_fn(|i| self.values[i].load(Relaxed));
        for (i, f) in fields().iter().enumerate() {
            // A gauge is a sum of signed changes kept in wrapping arithmetic; a reader may see
            // a connection's decrease before another's increase, never a negative total.
            if f.kind == Gauge && (v[i] as i64) < 0 {
                v[i] = 0;
            }
        }
        v
    }

    fn apply(&self, i: usize, kind: Kind, old: u64, new: u64) {
        match kind {
            Counter | Gauge => {
                self.values[i].fetch_add(new.wrapping_sub(old), Relaxed);
            }
            Peak => {
                self.values[i].fetch_max(new, Relaxed);
            }
            Last => self.values[i].store(new, Relaxed),
        }
    }
}

/// One engine's link to its server's [`Totals`].
pub struct Reporter {
    totals: Arc<Totals>,
    last: Values,
    closed: bool,
}

impl Reporter {
    /// Reports the engine's initial values (its windows, its live-connection gauge).
    pub fn new(totals: Arc<Totals>, source: &impl Source) -> Reporter {
        let mut r = Reporter { totals, last: [0; LEN], closed: false };
        r.report(source);
        r
    }

    /// Adds what changed since the last report. Returns a mask of the defences that tripped
    /// meanwhile (bit `i`: the `i`-th of `defences`, in [`fields`] order).
    pub fn report(&mut self, source: &impl Source) -> u8 {
        if self.closed {
            return 0;
        }
        let now = source.snapshot();
        let fields = fields();
        let mut defences = 0u8;
        for i in 0..CONNECTIONS {
            let (old, new) = (self.last[i], now[i]);
            if old != new {
                self.totals.apply(i, fields[i].kind, old, new);
                if (DEFENCES..DEFENCES + DEFENCE_COUNT).contains(&i) {
                    defences |= 1 << (i - DEFENCES);
                }
            }
        }
        self.last = now;
        defences
    }

    /// The engine is done (its connection closed, or it handed over to another engine): a
    /// last report, then its gauges leave the totals. Idempotent.
    pub fn close(&mut self, source: &impl Source) {
        self.report(source);
        self.leave();
    }

    fn leave(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        for (i, f) in fields().iter().enumerate().take(CONNECTIONS) {
            if f.kind == Gauge && self.last[i] != 0 {
                self.totals.apply(i, Gauge, self.last[i], 0);
            }
        }
    }
}

impl Drop for Reporter {
    /// An engine dropped without [`Reporter::close`] (its owner was killed) still leaves.
    fn drop(&mut self) {
        self.leave();
    }
}

/// A live connection, counted in `connections` from the moment it is accepted until it
/// closes (then in `connections_closed`), whatever engines it has on the way.
pub struct Presence {
    totals: Arc<Totals>,
    left: bool,
}

impl Presence {
    pub fn join(totals: Arc<Totals>) -> Presence {
        totals.values[CONNECTIONS].fetch_add(1, Relaxed);
        Presence { totals, left: false }
    }

    /// The connection closed. Idempotent.
    pub fn leave(&mut self) {
        if self.left {
            return;
        }
        self.left = true;
        self.totals.values[CONNECTIONS].fetch_sub(1, Relaxed);
        self.totals.values[CONNECTIONS_CLOSED].fetch_add(1, Relaxed);
    }
}

impl Drop for Presence {
    /// A connection whose process was killed still leaves.
    fn drop(&mut self) {
        self.leave();
    }
}
