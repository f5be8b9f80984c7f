//! The receive path: who may send how much, what a waiting reader gets, and when we credit it.
//!
//! Every decision about request bodies lives in this file: the windows we enforce, the
//! WINDOW_UPDATE frames we send, and when the bytes that arrived are handed to the application.
//! The rules:
//!
//! 1. **Enforce.** DATA past a stream's window is a stream FLOW_CONTROL_ERROR, past the
//!    connection window a connection FLOW_CONTROL_ERROR (RFC 9113 §6.9.1). Padding counts
//!    against both windows and is credited back at once.
//! 2. **Credit only what was consumed.** Bytes received but not consumed by the application
//!    (`buffered`) plus the window the peer has left plus the credit we hold always sum to the
//!    connection window: buffered bytes can never exceed the connection window. That is the
//!    per-connection memory bound.
//! 3. **Coalesce.** Credits accumulate and [`Scheduler::flush`] releases at most one connection
//!    credit and one per stream.
//! 4. **Threshold.** A credit goes out when it reaches `update_threshold_percent` of the window
//!    (half by default), or — so that no stream stalls on a small remainder — when the peer has
//!    less than one max-size frame left, the credit is at least min(1 KiB, window/4), and a
//!    reader is waiting: the application drained what it was given, overall (buffered <
//!    window/4) or on a stream that is still receiving (it consumed all that stream buffered).
//!    While the application lags, holding credit back *is* the back-pressure, and releasing it
//!    in small pieces would only multiply WINDOW_UPDATE frames; but one slow reader must not
//!    hold up a stream whose reader keeps up.
//! 5. **Only where it can be used.** No stream credit once the peer finished sending (END_STREAM)
//!    and never beyond the stream's remaining declared content-length plus one byte: a peer that
//!    sent exactly its content-length may still need a non-zero window to send the empty DATA
//!    frame that carries END_STREAM (nghttp2, hence Node.js, holds even that frame back while its
//!    window is 0). Padding is credited back beyond that bound, so a padding peer is never short.
//!    No connection credit while the window the peer has left already covers every body it may
//!    still send (all receiving streams have a content-length and they fit) and half the window
//!    besides: when the 64 uploads of a burst have all arrived, one credit tops the window up to
//!    half, and the rest waits until a stream can use it.
//! 6. **Initial windows.** Streams start at `initial_stream_window` (advertised in SETTINGS);
//!    the connection window is raised from 65,535 to `initial_connection_window` by one credit
//!    that goes out right after our SETTINGS ([`Scheduler::take_initial_credit`]; the engine
//!    grants it when the connection starts and counts it when its preface is written).
//! 7. **Adaptive growth.** With a PING round-trip sample ([`Scheduler::ping_sent`],
//!    [`Scheduler::ping_acked`]): if the peer sent at least 3/4 of the window it is sure to
//!    have (the window less the threshold of credit we may hold back) within one round trip
//!    while the application kept up (it consumed during the round trip and holds at most half
//!    the window), the window doubles, up to `max_connection_window` / `max_stream_window`.
//!    Never when bytes pile up unconsumed. The sample includes the batch the probe's flush
//!    answered: a peer that sends its whole window at once is otherwise idle, from our side, for
//!    exactly the round trip being measured. Probes are rare: one at a time, only while a window
//!    may be what limits the peer (it sent at least half of one since the last probe), at most
//!    [`PROBE_BURST`] in a row, then [`PROBES_PER_SECOND`] a second.
//! 8. **Readers, Cowboy's way.** The application reads a body by registering a read with a
//!    `length` ([`Scheduler::read`]): everything the stream holds is handed over at once, and
//!    what arrives while the read is registered is handed over as it arrives; handing over is
//!    consuming (rule 2), so those bytes become credit. The read completes with
//!    [`ReadStatus::Fin`] when the body has ended, with [`ReadStatus::More`] once `length` bytes
//!    were handed over or when its period expires ([`Scheduler::read_timeout`]). Bytes handed
//!    over are the application's (as in Cowboy); what nobody asked for stays buffered and
//!    bounded by the windows. A stream whose application will not read ([`Scheduler::discard`])
//!    has everything consumed as it arrives.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorCode};
use crate::frame::MAX_WINDOW_SIZE;
use crate::IdMap;

use crate::flow::TokenBucket;

/// The window a peer starts with on the connection, before any WINDOW_UPDATE (§6.9.2).
pub const DEFAULT_WINDOW: u32 = 65_535;

/// Round-trip probes (PINGs) allowed in a row, and per second after that (rule 7).
pub const PROBE_BURST: u32 = 8;
pub const PROBES_PER_SECOND: u32 = 2;

/// Tunables of the receive side. Defaults are documented in the README.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Each stream's receive window (our SETTINGS_INITIAL_WINDOW_SIZE). Default 256 KiB.
    pub initial_stream_window: u32,
    /// The connection receive window, i.e. the memory budget. At least 65,535. Default 1 MiB.
    pub initial_connection_window: u32,
    /// Release credit once it reaches this share of the window, in percent. Default 50.
    pub update_threshold_percent: u8,
    /// Grow windows from round-trip samples. Default on.
    pub adaptive: bool,
    /// Upper bound for adaptive growth of the connection window. Default 16 MiB.
    pub max_connection_window: u32,
    /// Upper bound for adaptive growth of stream windows. Default 8 MiB.
    pub max_stream_window: u32,
    /// Our SETTINGS_MAX_FRAME_SIZE: a peer with less than this left is about to stall.
    pub max_frame_size: u32,
    /// The connection window the peer starts with: 65,535 in HTTP/2. When the scheduler is used
    /// beside another HTTP/2 implementation, that implementation's value.
    pub peer_initial_connection_window: u32,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            initial_stream_window: 256 * 1024,
            initial_connection_window: 1024 * 1024,
            update_threshold_percent: 50,
            adaptive: true,
            max_connection_window: 16 * 1024 * 1024,
            max_stream_window: 8 * 1024 * 1024,
            max_frame_size: crate::frame::DEFAULT_MAX_FRAME_SIZE,
            peer_initial_connection_window: DEFAULT_WINDOW,
        }
    }
}

impl SchedulerConfig {
    /// Checks ranges; the message names the offending option.
    pub fn validate(&self) -> Result<(), &'static str> {
        let max = MAX_WINDOW_SIZE;
        if self.initial_stream_window > max || self.max_stream_window > max {
            return Err("stream windows must be at most 2^31-1");
        }
        if self.initial_connection_window > max || self.max_connection_window > max {
            return Err("connection windows must be at most 2^31-1");
        }
        if !(1..=100).contains(&self.update_threshold_percent) {
            return Err("update_threshold_percent must be within 1..100");
        }
        if self.max_stream_window < self.initial_stream_window {
            return Err("max_stream_window must be at least initial_stream_window");
        }
        if self.max_connection_window < self.initial_connection_window {
            return Err("max_connection_window must be at least initial_connection_window");
        }
        Ok(())
    }
}

/// Counters of what the scheduler did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    pub connection_window_updates: u64,
    pub stream_window_updates: u64,
    /// Flushes that released at least one credit.
    pub flushes_with_window_updates: u64,
    pub credited_bytes: u64,
    pub peak_buffered: u64,
    pub connection_window_growths: u64,
    pub stream_window_growths: u64,
    /// The last round-trip sample, in microseconds (0: none yet).
    pub rtt_us: u64,
}

/// One stream's receive state.
#[derive(Clone, Debug)]
struct StreamRecv {
    /// The window size we aim to keep open for this stream.
    window: u32,
    /// What the peer may still send before it needs a credit (its view of the window).
    remaining: i64,
    /// Consumed (or auto-released) bytes not yet credited.
    pending: u64,
    /// Received and not yet consumed.
    buffered: u64,
    /// Declared content-length not yet received, if one was declared.
    expected: Option<u64>,
    /// The peer may still send DATA (it has not sent END_STREAM, the stream is not reset).
    receiving: bool,
    /// Queued in `Scheduler::dirty` for the next flush.
    dirty: bool,
    /// Bytes received since the last PING we sent (adaptive growth).
    sampled: u64,
    /// The application consumed everything this stream received while more may come: its
    /// reader is presumably waiting (counted in `Scheduler::drained_readers`).
    drained: bool,
    /// Bytes received since the last flush, and those received before it (`last_batch`, valid
    /// when `batch_flush` is the scheduler's current flush count): a probe's sample starts
    /// with the batch that was just flushed.
    batch: u64,
    last_batch: u64,
    batch_flush: u64,
    /// Opened before the peer acknowledged our stream window, with the window it was allowed
    /// then (see [`Scheduler::initial_window_acked`]).
    provisional: Option<u32>,
    /// Padding received and not yet credited back: credit beyond the content-length bound.
    padding: u64,
    /// A registered read that is not complete yet (rule 8).
    read: Option<Read>,
    /// The application will not read this stream: what arrives is consumed at once.
    discarded: bool,
}

/// A registered read: how many bytes complete it, and how many it was handed so far.
#[derive(Clone, Copy, Debug)]
struct Read {
    length: u64,
    handed: u64,
}

/// Where a read stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStatus {
    /// The body ended: the read has everything.
    Fin,
    /// `length` bytes were handed over, or the period expired; more of the body may follow.
    More,
    /// The read is registered and waits for more bytes.
    Wait,
}

/// What became of received body bytes ([`Scheduler::on_data`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Nobody will read them (the stream is closed, reset or discarded): they are credited.
    Dropped,
    /// They are the stream's application's; no read completed.
    Kept,
    /// They are the stream's application's, and they complete its read.
    Completes(ReadStatus),
}

/// A round-trip measurement in flight.
#[derive(Clone, Copy, Debug)]
struct Probe {
    sent_at: Instant,
    received_at_send: u64,
    consumed_at_send: u64,
}

/// What changed when a round-trip sample grew the windows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Growth {
    /// The new stream window, to be advertised as SETTINGS_INITIAL_WINDOW_SIZE (the peer
    /// applies the difference to every open stream, §6.9.2 — no per-stream WINDOW_UPDATE).
    pub stream_window: Option<u32>,
    /// The new connection window; the extra credit goes out with the next flush.
    pub connection_window: Option<u32>,
}

/// The receive-side flow-control scheduler of one connection.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    conn_window: u32,
    conn_remaining: i64,
    conn_pending: u64,
    buffered: u64,
    stream_window: u32,
    streams: IdMap<StreamRecv>,
    dirty: Vec<u32>,
    /// Receiving streams without a declared length, and the sum of what those with one still
    /// expect: together the demand for connection credit.
    unbounded_receivers: usize,
    /// Receiving streams whose application drained them (see `StreamRecv::drained`).
    drained_readers: usize,
    expected_total: u64,
    received_total: u64,
    /// Bytes the application consumed, ever, and at the flush before the last one (rule 7: did
    /// it consume during the sample, which starts with the batch the probe's flush answered).
    consumed_total: u64,
    consumed_at_flush: u64,
    consumed_batch_start: u64,
    /// `received_total` at the end of the last flush and of the one before: the bytes between
    /// them are the batch the last flush answered.
    received_at_flush: u64,
    batch_start: u64,
    flushes: u64,
    probe: Option<Probe>,
    /// Probes allowed (rule 7), and whether a window may limit the peer: it sent half of one
    /// (connection or stream) since the last probe.
    probes: TokenBucket,
    window_limited: bool,
    since_probe: u64,
    rtt: Option<Duration>,
    stats: SchedulerStats,
}

/// Misuse of [`Scheduler::consume`]: more bytes than were received and not yet consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverConsumed {
    pub buffered: u64,
}

impl Scheduler {
    pub fn new(cfg: SchedulerConfig) -> Scheduler {
        let peer_initial = cfg.peer_initial_connection_window.min(MAX_WINDOW_SIZE);
        let conn_window = cfg.initial_connection_window.max(peer_initial);
        Scheduler {
            conn_window,
            conn_remaining: peer_initial as i64,
            conn_pending: (conn_window - peer_initial) as u64,
            buffered: 0,
            stream_window: cfg.initial_stream_window,
            streams: HashMap::default(),
            dirty: Vec::new(),
            unbounded_receivers: 0,
            drained_readers: 0,
            expected_total: 0,
            received_total: 0,
            consumed_total: 0,
            consumed_at_flush: 0,
            consumed_batch_start: 0,
            received_at_flush: 0,
            batch_start: 0,
            flushes: 0,
            probe: None,
            probes: TokenBucket::new(PROBE_BURST, PROBES_PER_SECOND),
            window_limited: false,
            since_probe: 0,
            rtt: None,
            stats: SchedulerStats::default(),
            cfg,
        }
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    /// The credit that raises the connection window from the peer's initial 65,535 to ours;
    /// sent unconditionally right after our SETTINGS (rule 6). `None` if there is none.
    pub fn take_initial_credit(&mut self) -> Option<u32> {
        let credit = self.grant_initial_credit()?;
        self.initial_credit_sent(credit);
        Some(credit)
    }

    /// Like [`Scheduler::take_initial_credit`] for a caller that writes the credit later (with
    /// the first flush): the window is the peer's from now on, and counted as sent by
    /// [`Scheduler::initial_credit_sent`].
    pub fn grant_initial_credit(&mut self) -> Option<u32> {
        let credit = self.conn_pending.min(MAX_WINDOW_SIZE as u64) as u32;
        if credit == 0 {
            return None;
        }
        self.conn_pending -= credit as u64;
        self.conn_remaining += credit as i64;
        Some(credit)
    }

    /// The initial credit went out.
    pub fn initial_credit_sent(&mut self, credit: u32) {
        self.stats.connection_window_updates += 1;
        self.stats.credited_bytes += credit as u64;
    }

    /// A stream was opened by the peer. `initial_window` is the window the peer may use on it
    /// (normally [`Scheduler::stream_window`]). `content_length` is its declared body length.
    pub fn open_stream(&mut self, id: u32, content_length: Option<u64>, end_stream: bool) {
        let window = self.stream_window;
        self.open_stream_with_window(id, content_length, end_stream, window)
    }

    /// Like [`Scheduler::open_stream`] for a stream whose peer-side window differs from the
    /// current stream window (e.g. opened before the peer acknowledged our SETTINGS).
    pub fn open_stream_with_window(
        &mut self,
        id: u32,
        content_length: Option<u64>,
        end_stream: bool,
        window: u32,
    ) {
        let s = StreamRecv {
            window: self.stream_window.max(window),
            remaining: window as i64,
            pending: 0,
            buffered: 0,
            expected: if end_stream { Some(0) } else { content_length },
            receiving: !end_stream,
            dirty: false,
            sampled: 0,
            drained: false,
            batch: 0,
            last_batch: 0,
            batch_flush: 0,
            provisional: (window != self.stream_window).then_some(window),
            padding: 0,
            read: None,
            discarded: false,
        };
        // A caller that reopens an id gets a clean entry; release what the old one held.
        self.close_stream(id);
        if end_stream {
            // Nothing will arrive and nothing will be consumed: no entry to keep.
            return;
        }
        self.streams.insert(id, s);
        self.add_demand(id);
    }

    /// The peer declared the length of what it still sends on a stream opened without one (a
    /// response's content-length, client role): from now on the stream is credited within it
    /// (rule 5). A stream that is not receiving is left alone.
    pub fn expect_length(&mut self, id: u32, length: u64) {
        if !self.streams.get(&id).is_some_and(|s| s.receiving) {
            return;
        }
        self.remove_demand(id);
        if let Some(s) = self.streams.get_mut(&id) {
            s.expected = Some(length);
            s.receiving = true;
        }
        self.add_demand(id);
    }

    /// The peer acknowledged the SETTINGS_INITIAL_WINDOW_SIZE we advertised
    /// (`initial_stream_window`). It has applied the difference between that value and the window
    /// it assumed to every stream it had opened before (RFC 9113 §6.9.2), so streams opened with
    /// [`Scheduler::open_stream_with_window`] and another window get the same correction.
    /// Without it, a stream window below 65,535 would leave the peer blocked while we still
    /// believe it has window, and no credit would ever be due.
    pub fn initial_window_acked(&mut self) {
        let advertised = self.cfg.initial_stream_window as i64;
        let current = self.stream_window;
        for s in self.streams.values_mut() {
            if let Some(assumed) = s.provisional.take() {
                s.remaining += advertised - assumed as i64;
                s.window = current;
            }
        }
    }

    /// The window new streams get (grows with adaptive growth).
    pub fn stream_window(&self) -> u32 {
        self.stream_window
    }

    /// Accounts a DATA frame. `flow_len` is what it counts against the windows (padding
    /// included), `data_len` the payload handed to the application. Errors are the window
    /// violations of §6.9.1; on a stream error the connection window was still charged and the
    /// stream's bytes are released (the caller resets the stream with [`Scheduler::close_stream`]).
    /// Otherwise says whether the bytes are for the application and whether they complete its
    /// read (rule 8).
    pub fn on_data(
        &mut self,
        id: u32,
        flow_len: u32,
        data_len: u32,
        end_stream: bool,
    ) -> Result<Arrival, Error> {
        debug_assert!(data_len <= flow_len);
        if flow_len as i64 > self.conn_remaining {
            return Err(Error::connection(
                ErrorCode::FLOW_CONTROL_ERROR,
                "DATA exceeds the connection flow-control window (RFC 9113 6.9.1)",
            ));
        }
        self.conn_remaining -= flow_len as i64;
        self.received_total += flow_len as u64;
        self.since_probe += flow_len as u64;
        if self.since_probe * 2 >= self.conn_window as u64 {
            self.window_limited = true;
        }
        let padding = (flow_len - data_len) as u64;
        // Padding is credited back at once (rule 1).
        self.conn_pending += padding;
        let Some(s) = self.streams.get_mut(&id).filter(|s| s.receiving) else {
            // A stream that is closed, reset or unknown: nobody will consume this.
            self.conn_pending += data_len as u64;
            return Ok(Arrival::Dropped);
        };
        if flow_len as i64 > s.remaining {
            self.conn_pending += data_len as u64;
            return Err(Error::stream(
                id,
                ErrorCode::FLOW_CONTROL_ERROR,
                "DATA exceeds the stream flow-control window (RFC 9113 6.9.1)",
            ));
        }
        s.remaining -= flow_len as i64;
        s.pending += padding;
        s.padding += padding;
        if data_len > 0 && s.drained {
            s.drained = false;
            self.drained_readers -= 1;
        }
        s.buffered += data_len as u64;
        s.sampled += flow_len as u64;
        s.batch += flow_len as u64;
        if s.sampled * 2 >= s.window as u64 {
            self.window_limited = true;
        }
        self.buffered += data_len as u64;
        self.stats.peak_buffered = self.stats.peak_buffered.max(self.buffered);
        if let Some(e) = s.expected.as_mut() {
            let used = (*e).min(data_len as u64);
            *e -= used;
            self.expected_total -= used;
        }
        if !s.dirty {
            s.dirty = true;
            self.dirty.push(id);
        }
        let discarded = s.discarded;
        let reading = s.read.is_some();
        let arrival = if discarded {
            let n = s.buffered;
            self.take(id, n);
            Arrival::Dropped
        } else if reading {
            match self.hand_over(id, end_stream) {
                ReadStatus::Wait => Arrival::Kept,
                done => Arrival::Completes(done),
            }
        } else {
            Arrival::Kept
        };
        if end_stream {
            self.end_stream(id);
        }
        Ok(arrival)
    }

    /// The peer will send no more DATA on this stream (END_STREAM received): it gets no more
    /// credit. Its buffered bytes still count until consumed. A registered read completes
    /// ([`ReadStatus::Fin`], returned).
    pub fn end_stream(&mut self, id: u32) -> Option<ReadStatus> {
        self.remove_demand(id);
        let s = self.streams.get_mut(&id)?;
        s.receiving = false;
        s.pending = 0;
        let done = s.read.take().map(|_| ReadStatus::Fin);
        if s.buffered == 0 {
            self.streams.remove(&id);
        }
        done
    }

    /// Registers a read of up to `length` bytes (rule 8): hands over everything the stream
    /// holds, and says whether that completes the read. `None` for a stream the scheduler does
    /// not track: its body ended and was all consumed, or it is gone (the caller knows which).
    pub fn read(&mut self, id: u32, length: u64) -> Option<ReadStatus> {
        let s = self.streams.get_mut(&id)?;
        s.read = Some(Read { length, handed: 0 });
        let receiving = s.receiving;
        Some(self.hand_over(id, !receiving))
    }

    /// The period of a registered read expired: it completes with what it was handed
    /// ([`ReadStatus::More`]). `false` if no read was registered.
    pub fn read_timeout(&mut self, id: u32) -> bool {
        self.streams.get_mut(&id).and_then(|s| s.read.take()).is_some()
    }

    /// The application will not read this stream: what it holds, and what arrives from now
    /// on, is consumed at once (and so credited while the peer keeps sending).
    pub fn discard(&mut self, id: u32) {
        let Some(s) = self.streams.get_mut(&id) else { return };
        s.discarded = true;
        s.read = None;
        let n = s.buffered;
        self.take(id, n);
    }

    /// Whether the application said it will not read this stream ([`Scheduler::discard`]).
    pub fn is_discarded(&self, id: u32) -> bool {
        self.streams.get(&id).is_some_and(|s| s.discarded)
    }

    /// Hands what the stream holds to its registered read and completes the read when the body
    /// ended (`ended`) or its length is reached.
    fn hand_over(&mut self, id: u32, ended: bool) -> ReadStatus {
        let Some(s) = self.streams.get_mut(&id) else { return ReadStatus::Fin };
        let n = s.buffered;
        let Some(read) = s.read.as_mut() else { return ReadStatus::Wait };
        read.handed += n;
        let status = if ended {
            ReadStatus::Fin
        } else if read.handed >= read.length {
            ReadStatus::More
        } else {
            ReadStatus::Wait
        };
        if status != ReadStatus::Wait {
            s.read = None;
        }
        self.take(id, n);
        status
    }

    /// The application consumed `n` bytes of this stream: they become credit (rule 2).
    /// Consuming on a stream the scheduler no longer tracks is a no-op (its bytes were released
    /// when it closed). Consuming everything buffered on a receiving stream — `n = 0` when
    /// nothing is buffered — says its reader waits for more (rule 4).
    pub fn consume(&mut self, id: u32, n: u64) -> Result<(), OverConsumed> {
        let Some(s) = self.streams.get(&id) else { return Ok(()) };
        if n > s.buffered {
            return Err(OverConsumed { buffered: s.buffered });
        }
        self.take(id, n);
        Ok(())
    }

    /// Consumes `n` (at most what the stream buffers) bytes of a tracked stream.
    fn take(&mut self, id: u32, n: u64) {
        let Some(s) = self.streams.get_mut(&id) else { return };
        debug_assert!(n <= s.buffered);
        s.buffered -= n;
        self.buffered -= n;
        self.conn_pending += n;
        self.consumed_total += n;
        if s.receiving && s.buffered == 0 && !s.drained {
            s.drained = true;
            self.drained_readers += 1;
        }
        if s.receiving {
            s.pending += n;
            if !s.dirty {
                s.dirty = true;
                self.dirty.push(id);
            }
        } else if s.buffered == 0 {
            self.streams.remove(&id);
        }
    }

    /// The stream is gone (reset by either side, or closed with bytes the application will
    /// never read): what it buffered is released to the connection.
    pub fn close_stream(&mut self, id: u32) {
        self.remove_demand(id);
        if let Some(s) = self.streams.remove(&id) {
            self.release(s);
        }
    }

    fn release(&mut self, s: StreamRecv) {
        self.buffered -= s.buffered;
        self.conn_pending += s.buffered;
    }

    fn add_demand(&mut self, id: u32) {
        if let Some(s) = self.streams.get(&id).filter(|s| s.receiving) {
            match s.expected {
                Some(e) => self.expected_total += e,
                None => self.unbounded_receivers += 1,
            }
        }
    }

    fn remove_demand(&mut self, id: u32) {
        if let Some(s) = self.streams.get_mut(&id).filter(|s| s.receiving) {
            match s.expected {
                Some(e) => self.expected_total -= e,
                None => self.unbounded_receivers -= 1,
            }
            if s.drained {
                s.drained = false;
                self.drained_readers -= 1;
            }
            s.receiving = false;
        }
    }

    /// Bytes received and not yet consumed, over all streams.
    pub fn buffered(&self) -> u64 {
        self.buffered
    }

    /// Bytes received and not yet consumed on one stream.
    pub fn stream_buffered(&self, id: u32) -> u64 {
        self.streams.get(&id).map_or(0, |s| s.buffered)
    }

    /// The connection window we maintain (the memory budget).
    pub fn connection_window(&self) -> u32 {
        self.conn_window
    }

    /// Connection credit owed: bytes consumed (or dropped, or padding) not yet credited back.
    /// What the peer may still send, what is buffered and this always sum to the window.
    pub fn connection_pending(&self) -> u64 {
        self.conn_pending
    }

    /// What the peer may still send on the connection.
    pub fn connection_remaining(&self) -> i64 {
        self.conn_remaining
    }

    /// What the peer may still send on a stream (`None` if untracked).
    pub fn stream_remaining(&self, id: u32) -> Option<i64> {
        self.streams.get(&id).map(|s| s.remaining)
    }

    pub fn stats(&self) -> &SchedulerStats {
        &self.stats
    }

    /// Number of streams tracked (receiving, or holding unconsumed bytes).
    pub fn tracked_streams(&self) -> usize {
        self.streams.len()
    }

    fn threshold(&self, window: u32) -> u64 {
        (window as u64 * self.cfg.update_threshold_percent as u64 / 100).max(1)
    }

    /// Releases the credits that are due: at most one for the connection (stream id 0), sent
    /// first, and one per stream. `emit(stream_id, increment)` is called for each.
    pub fn flush(&mut self, mut emit: impl FnMut(u32, u32)) {
        self.flushes += 1;
        self.batch_start = self.received_at_flush;
        self.received_at_flush = self.received_total;
        self.consumed_batch_start = self.consumed_at_flush;
        self.consumed_at_flush = self.consumed_total;
        let mut any = false;
        if let Some(credit) = self.connection_credit() {
            self.conn_pending -= credit as u64;
            self.conn_remaining += credit as i64;
            self.stats.connection_window_updates += 1;
            self.stats.credited_bytes += credit as u64;
            emit(0, credit);
            any = true;
        }
        let dirty = std::mem::take(&mut self.dirty);
        for &id in &dirty {
            let Some(s) = self.streams.get_mut(&id) else { continue };
            s.dirty = false;
            s.last_batch = std::mem::take(&mut s.batch);
            s.batch_flush = self.flushes;
            if let Some(credit) = stream_credit(s, &self.cfg) {
                s.pending -= credit as u64;
                s.remaining += credit as i64;
                self.stats.stream_window_updates += 1;
                emit(id, credit);
                any = true;
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
        if any {
            self.stats.flushes_with_window_updates += 1;
        }
    }

    fn connection_credit(&self) -> Option<u32> {
        let pending = self.conn_pending;
        if pending == 0 {
            return None;
        }
        // Rule 5: no credit while what the peer has left covers every body it may still send
        // and half the window for bodies to come.
        let remaining = self.conn_remaining.max(0) as u64;
        let window = self.conn_window as u64;
        if self.unbounded_receivers == 0 && self.expected_total <= remaining && remaining >= window / 2 {
            return None;
        }
        // Rule 4's small remainder: a reader waits (the application drained what it was given,
        // overall or on some stream) and the peer cannot send a full frame.
        let starving = remaining < self.cfg.max_frame_size as u64
            && pending >= (window / 4).min(1024)
            && (self.buffered < window / 4 || self.drained_readers > 0);
        if pending < self.threshold(self.conn_window) && !starving {
            return None;
        }
        let room = MAX_WINDOW_SIZE as i64 - self.conn_remaining;
        Some(pending.min(room.max(0) as u64) as u32).filter(|&c| c > 0)
    }

    /// Whether a round-trip probe should go out now (rule 7): adaptive growth is on and can
    /// still grow a window, none is in flight, bodies are still expected, a window limited the
    /// peer since the last probe, and the probe rate allows one.
    pub fn wants_probe(&mut self, now: Instant) -> bool {
        if !self.cfg.adaptive || self.probe.is_some() || !self.window_limited {
            return false;
        }
        if self.conn_window >= self.cfg.max_connection_window
            && self.stream_window >= self.cfg.max_stream_window
        {
            return false;
        }
        self.unbounded_receivers + (self.expected_total > 0) as usize > 0 && self.probes.take(now)
    }

    /// A PING was sent to measure the round trip; call it right after [`Scheduler::flush`].
    ///
    /// The sample starts with the batch of bytes that flush answered, not after it: the PING
    /// goes out with the credits for that batch, and a peer that sends a whole window at once
    /// then has nothing in flight until those credits arrive, so a sample that starts after the
    /// batch would miss exactly the peers that drain the window (hyper's BDP estimator likewise
    /// counts the DATA frame that triggers its PING).
    pub fn ping_sent(&mut self, now: Instant) {
        self.probe = Some(Probe {
            sent_at: now,
            received_at_send: self.batch_start,
            consumed_at_send: self.consumed_batch_start,
        });
        self.window_limited = false;
        self.since_probe = 0;
        let flushes = self.flushes;
        for s in self.streams.values_mut() {
            s.sampled = (if s.batch_flush == flushes { s.last_batch } else { 0 }) + s.batch;
        }
    }

    /// The PING came back: a round-trip sample. Returns how the windows grew, if they did.
    pub fn ping_acked(&mut self, now: Instant) -> Growth {
        let Some(probe) = self.probe.take() else { return Growth::default() };
        let rtt = now.saturating_duration_since(probe.sent_at);
        self.rtt = Some(rtt);
        self.stats.rtt_us = rtt.as_micros().min(u64::MAX as u128) as u64;
        let mut growth = Growth::default();
        let sample = self.received_total - probe.received_at_send;
        // Drained within one round trip while the application kept up: it consumed during the
        // sample and holds at most half the window (an application handed bodies half a window
        // at a time holds up to that much while it keeps up).
        let window = self.conn_window as u64;
        let consuming = self.consumed_total > probe.consumed_at_send;
        if self.drained(sample, window)
            && consuming
            && self.buffered * 2 <= window
            && self.conn_window < self.cfg.max_connection_window
        {
            let new = (self.conn_window as u64 * 2).min(self.cfg.max_connection_window as u64) as u32;
            self.conn_pending += (new - self.conn_window) as u64;
            self.conn_window = new;
            self.stats.connection_window_growths += 1;
            growth.connection_window = Some(new);
        }
        let sw = self.stream_window as u64;
        let stream_drained =
            consuming && self.streams.values().any(|s| self.drained(s.sampled, sw) && s.buffered * 2 <= sw);
        if stream_drained && self.stream_window < self.cfg.max_stream_window {
            let new = (sw * 2).min(self.cfg.max_stream_window as u64) as u32;
            self.apply_stream_window(new);
            self.stats.stream_window_growths += 1;
            growth.stream_window = Some(new);
        }
        growth
    }

    /// Rule 7's test: the peer sent at least 3/4 of the window it is sure to have, the window
    /// less the credit we may hold back below the threshold. Measured against the whole window,
    /// a peer limited by flow control would not look like it drains it: with credit released in
    /// threshold-sized pieces as its bursts arrive, it gets between the window less the threshold
    /// and the whole window per round trip. Counted as at least a quarter of the window, so a
    /// threshold near 100% does not make every trickle look like a drained window.
    fn drained(&self, sample: u64, window: u64) -> bool {
        let assured = (window - self.threshold(window as u32).min(window)).max(window / 4);
        sample * 4 >= assured.max(1) * 3
    }

    /// Raises the window of every stream to `new` (the peer applies the same difference when it
    /// processes our SETTINGS_INITIAL_WINDOW_SIZE, §6.9.2).
    fn apply_stream_window(&mut self, new: u32) {
        let delta = new as i64 - self.stream_window as i64;
        self.stream_window = new;
        for s in self.streams.values_mut() {
            s.remaining = (s.remaining + delta).min(MAX_WINDOW_SIZE as i64);
            s.window = s.window.max(new);
        }
    }
}

fn stream_credit(s: &mut StreamRecv, cfg: &SchedulerConfig) -> Option<u32> {
    if !s.receiving || s.pending == 0 {
        return None;
    }
    // Rule 5: never beyond the remaining declared content-length, plus the byte that lets the
    // peer send END_STREAM (`data_need`), plus the padding it spent (credited back beyond that
    // bound).
    let (data_need, needed) = match s.expected {
        Some(e) => {
            let data_need = (e + 1) as i64 - s.remaining;
            (data_need, data_need + s.padding as i64)
        }
        None => (i64::MAX, i64::MAX),
    };
    if needed <= 0 {
        s.pending = 0;
        s.padding = 0;
        return None;
    }
    let window = s.window as u64;
    let threshold = (window * cfg.update_threshold_percent as u64 / 100).max(1);
    let starving = s.remaining < cfg.max_frame_size as i64
        && s.pending >= (window / 4).min(1024)
        && s.buffered < window / 4;
    // Enough for the whole rest of the body, however much of its window the peer spent on
    // padding: the peer can always finish.
    let completes = s.expected.is_some() && s.pending as i64 >= data_need;
    if s.pending < threshold && !starving && !completes {
        return None;
    }
    let room = MAX_WINDOW_SIZE as i64 - s.remaining;
    let credit = (s.pending as i64).min(needed).min(room);
    if credit <= 0 {
        return None;
    }
    s.padding -= s.padding.min(credit as u64);
    if credit == needed {
        // The whole body fits now: what else was consumed will never be needed.
        s.pending = credit as u64;
    }
    Some(credit as u32)
}
