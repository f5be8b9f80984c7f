//! The scheduler inside a Cowboy 2 server: a mirror of Cowboy 2.13's receive windows
//! (`cowboy_http2` demand, `cow_http2_machine` windows, `cowboy_stream_h`'s read buffer) that
//! turns the [`Scheduler`]'s credits into the `{flow, N}` demands that make Cowboy send them.
//!
//! `H2Flow.Cowboy.StreamHandler` (lib/h2flow/cowboy/stream_handler.ex) owns one [`CowboyMirror`]
//! per Cowboy connection process and calls it once per `cowboy_stream` callback; every decision
//! is made here. The moduledoc of that module explains the approach; the short version:
//!
//! * A stream handler cannot write frames. A `{flow, n}` command adds `n` to Cowboy's demand of
//!   the stream and of the connection, and `cow_http2_machine:ensure_window/4` then raises each
//!   window whose demand exceeds it, if the window is at most that level's threshold, to the
//!   demand plus the margin (at most the level's maximum). DATA lowers demand and window alike.
//! * The mirror tracks those demands and windows, feeds DATA and reads to the scheduler, and when
//!   the scheduler's view of what the peer may send (`remaining`) is ahead of Cowboy's window, it
//!   emits the least demand that raises the window to it.
//! * One demand moves both levels, so connection credit rides on a stream that can take it
//!   without raising its own window past its body; when none can and the peer is about to run
//!   out of connection window, another stream is asked to ([`Plan::ask`]).
//! * Cowboy's connection window is known within bounds (`window` ..= `window_max`) while DATA of
//!   stopped streams may still arrive unseen (`lingering`).

use crate::frame::MAX_WINDOW_SIZE;
use crate::scheduler::{Scheduler, SchedulerConfig};
use crate::IdMap;

/// The window HTTP/2 starts every window with, and the one `cow_http2_machine` gives streams
/// until the peer acknowledged its SETTINGS.
const DEFAULT_WINDOW: i64 = crate::scheduler::DEFAULT_WINDOW as i64;

/// Demand "without bound": a stream that can take any demand without its window being raised.
const UNBOUNDED: i64 = i64::MAX;

/// One level's `ensure_window/4` parameters: `*_window_margin_size`, `*_window_update_threshold`
/// and `max_*_window_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    pub margin: i64,
    pub threshold: i64,
    pub max: i64,
}

impl Level {
    /// Cowboy 2.13's defaults for both levels.
    pub const COWBOY_DEFAULT: Level =
        Level { margin: 65_535, threshold: 163_840, max: MAX_WINDOW_SIZE as i64 };

    /// The WINDOW_UPDATE increment a demand of `size` yields on `window`.
    fn increment(self, size: i64, window: i64) -> i64 {
        if size == 0 || size <= window || window > self.threshold {
            0
        } else if size + self.margin > self.max {
            (self.max - window).max(0)
        } else {
            size + self.margin - window
        }
    }

    /// The least extra demand that raises `window` by at least `want` (as much as the maximum
    /// allows): 0 when the demand already does (Cowboy acts on it at its next check, every DATA
    /// frame being one), `None` when the window is above the threshold.
    fn least_demand(self, demand: i64, window: i64, want: i64) -> Option<i64> {
        let want = want.min(self.max - window);
        if window > self.threshold || want <= 0 {
            None
        } else if self.increment(demand, window) >= want {
            Some(0)
        } else {
            Some((window - demand + 1).max(want + window - self.margin - demand).max(1))
        }
    }
}

/// The Cowboy protocol options the mirror needs (Cowboy's defaults in [`Default`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CowboyOptions {
    pub initial_connection_window_size: u32,
    pub initial_stream_window_size: u32,
    pub max_frame_size_received: u32,
    pub connection: Level,
    pub stream: Level,
    /// The scheduler's `update_threshold_percent`.
    pub window_update_threshold: u8,
}

impl Default for CowboyOptions {
    fn default() -> Self {
        CowboyOptions {
            initial_connection_window_size: DEFAULT_WINDOW as u32,
            initial_stream_window_size: DEFAULT_WINDOW as u32,
            max_frame_size_received: 16_384,
            connection: Level::COWBOY_DEFAULT,
            stream: Level::COWBOY_DEFAULT,
            window_update_threshold: 50,
        }
    }
}

/// Which callback a plan is made for: Cowboy checks both windows after a flow command, and
/// after every DATA frame (even without one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callback {
    Info,
    Data,
    /// The message [`Plan::ask`] asked for.
    Carry,
}

/// What a callback returns to Cowboy: the demand to add (`{flow, demand}`, none when 0) and a
/// stream to ask to carry connection credit (by a message through Cowboy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub demand: i64,
    pub ask: Option<u32>,
}

/// The read that waits in `cowboy_stream_h` for DATA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    None,
    /// `read_body` with `length => auto`: any DATA answers it.
    Auto,
    /// `read_body` with a length: answered when this much is buffered, or at the end of the body.
    Length(i64),
}

#[derive(Clone, Copy, Debug)]
struct MStream {
    /// Cowboy's demand for the stream, cow_http2_machine's window, the scheduler's view of what
    /// the peer may send.
    flow: i64,
    window: i64,
    remaining: i64,
    /// Body bytes still to come when the length is known; `None` without a content-length.
    expected: Option<i64>,
    /// The peer may still send DATA that a handler sees.
    receiving: bool,
    /// Bytes received, fed to the scheduler and not yet taken by a reader.
    fed: i64,
    /// cowboy_stream_h's read buffer, its end-of-body flag and the read that waits.
    buffer: i64,
    buffer_fin: bool,
    waiting: Waiting,
    /// The handler stopped: Cowboy ends the stream once the response is out.
    stopped: bool,
    /// Opened before Cowboy may have had the SETTINGS ACK: its window there may be smaller.
    early: bool,
}

impl MStream {
    /// What the peer could still send on the stream, its window and body permitting.
    fn cover(&self) -> i64 {
        if self.receiving {
            self.window.min(self.expected.unwrap_or(self.window)).max(0)
        } else {
            0
        }
    }
}

/// DATA that may still arrive on a stream that stopped receiving, charged to Cowboy's connection
/// window without any handler seeing it.
#[derive(Clone, Copy, Debug)]
struct Lingering {
    id: u32,
    amount: i64,
    /// For a stream Cowboy reset: the connection window the peer had when it was reset, less
    /// what arrived since. Below zero, everything sent before the RST_STREAM has arrived.
    headroom: Option<i64>,
}

/// Counters and mirrored values for `H2Flow.Cowboy.StreamHandler.connection_info/1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MirrorInfo {
    /// Cowboy's connection demand.
    pub demand: i64,
    /// Bounds of cow_http2_machine's connection window (equal when known exactly).
    pub window: i64,
    pub window_max: i64,
    /// DATA of stopped streams that may still arrive.
    pub lingering: i64,
    pub streams: usize,
}

/// The mirror of one Cowboy HTTP/2 connection, with its scheduler.
#[derive(Debug)]
pub struct CowboyMirror {
    sched: Scheduler,
    /// Cowboy's connection demand. cow_http2_machine's connection window is known within
    /// bounds: `window` is at most that window plus the DATA of stopped streams that arrived
    /// since (no handler sees it; `lingering` lists what may still come), `window_max` at least
    /// that window. Without lingering DATA and with equal bounds it is exact.
    flow: i64,
    window: i64,
    window_max: i64,
    lingering: Vec<Lingering>,
    lingering_total: i64,
    /// Scheduler events not flushed yet.
    dirty: bool,
    stream_window: i64,
    /// Streams opened before the peer's SETTINGS ACK reached Cowboy have a window of 65,535 in
    /// cow_http2_machine until it does, then the advertised one. The peer can send more than
    /// 65,535 bytes only with a WINDOW_UPDATE that Cowboy wrote after its SETTINGS, so once the
    /// connection received that much, the ACK has arrived.
    received: i64,
    acked: bool,
    max_frame_size: i64,
    conn: Level,
    stream: Level,
    /// The stream asked to carry connection credit, until it does or ends.
    carrier: Option<u32>,
    /// The sum of [`MStream::cover`] over the streams.
    coverage: i64,
    streams: IdMap<MStream>,
    /// Set by [`CowboyMirror::ask`] during a callback, returned in its [`Plan`].
    ask: Option<u32>,
}

impl CowboyMirror {
    pub fn new(opts: &CowboyOptions) -> Result<CowboyMirror, &'static str> {
        let window = opts.initial_connection_window_size;
        let stream_window = opts.initial_stream_window_size;
        let cfg = SchedulerConfig {
            initial_stream_window: stream_window,
            initial_connection_window: window,
            update_threshold_percent: opts.window_update_threshold,
            adaptive: false,
            max_connection_window: window,
            max_stream_window: stream_window,
            max_frame_size: opts.max_frame_size_received,
            peer_initial_connection_window: window,
        };
        cfg.validate()?;
        let window = window as i64;
        let stream_window = stream_window as i64;
        Ok(CowboyMirror {
            sched: Scheduler::new(cfg),
            flow: 0,
            window,
            window_max: window,
            lingering: Vec::new(),
            lingering_total: 0,
            dirty: false,
            stream_window,
            received: 0,
            acked: stream_window <= DEFAULT_WINDOW,
            max_frame_size: opts.max_frame_size_received as i64,
            conn: opts.connection,
            stream: opts.stream,
            carrier: None,
            coverage: 0,
            streams: IdMap::default(),
            ask: None,
        })
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.sched
    }

    pub fn info(&self) -> MirrorInfo {
        MirrorInfo {
            demand: self.flow,
            window: self.window,
            window_max: self.window_max,
            lingering: self.lingering(),
            streams: self.streams.len(),
        }
    }

    // ---- The callbacks. `stop`: the handlers after this one returned a `stop` command.

    /// `init/3`: the peer opened stream `id`, with a body or not.
    pub fn open(&mut self, id: u32, content_length: Option<u64>, has_body: bool, stop: bool) -> Plan {
        if has_body {
            // A stream without a body is not tracked by the scheduler: nothing to tell it.
            self.sched.open_stream(id, content_length, false);
        }
        let expected = if has_body { content_length.map(|n| n.min(i64::MAX as u64) as i64) } else { Some(0) };
        let s = MStream {
            flow: 0,
            window: self.stream_window,
            remaining: self.stream_window,
            expected,
            receiving: has_body,
            fed: 0,
            buffer: 0,
            buffer_fin: false,
            waiting: Waiting::None,
            stopped: false,
            early: !self.acked,
        };
        self.put_stream(id, s);
        self.plan(id, stop, Callback::Info)
    }

    /// `data/4`: a DATA frame of `size` bytes. Cowboy lowers both demands (not below 0) and
    /// cow_http2_machine both windows. The scheduler refuses DATA beyond its view of the windows:
    /// what Cowboy granted beyond it is not fed to it (and not counted twice).
    pub fn data(&mut self, id: u32, size: u32, fin: bool, stop: bool) -> Plan {
        self.received(id, size as i64, fin);
        self.plan(id, stop, Callback::Data)
    }

    /// `info/3` with cowboy_req's `{read_body, Pid, Ref, Length, Period}` (`length` `None` for
    /// `auto`). Returns whether the read now waits for DATA (with a length: the one a
    /// `read_body_timeout` can end).
    pub fn read_body(&mut self, id: u32, length: Option<u64>, stop: bool) -> (bool, Plan) {
        let waits = self.read(id, length.map(|n| n.min(i64::MAX as u64) as i64));
        (waits, self.plan(id, stop, Callback::Info))
    }

    /// `info/3` with the `read_body_timeout` of the read that waits.
    pub fn read_timeout(&mut self, id: u32, stop: bool) -> Plan {
        if let Some(s) = self.streams.get(&id).copied() {
            if let Waiting::Length(_) = s.waiting {
                self.put_stream(id, MStream { buffer: 0, waiting: Waiting::None, ..s });
            }
        }
        self.plan(id, stop, Callback::Info)
    }

    /// `info/3` with any other message.
    pub fn info_other(&mut self, id: u32, stop: bool) -> Plan {
        self.plan(id, stop, Callback::Info)
    }

    /// `info/3` with the message a [`Plan::ask`] sent.
    pub fn carry(&mut self, id: u32, stop: bool) -> Plan {
        self.carrier = None;
        self.plan(id, stop, Callback::Carry)
    }

    /// `terminate/3`. `peer_reset`: the peer reset the stream (Cowboy's `reason` is then the
    /// bare error code). Cowboy subtracts a terminated stream's demand from the connection's,
    /// except when the peer reset it. Cowboy resets a stream whose body has not fully arrived:
    /// from now on, the peer can send on it only what it sent before it read the RST_STREAM,
    /// which is at most its connection window now (`window_max`).
    pub fn terminate(&mut self, id: u32, peer_reset: bool) -> Option<u32> {
        self.ask = None;
        if !matches!(self.streams.get(&id), Some(s) if s.stopped) {
            self.stop_receiving(id, peer_reset);
        }
        self.reset_lingering(id);
        if let Some(s) = self.streams.remove(&id) {
            if !peer_reset {
                self.flow -= s.flow;
            }
            self.coverage -= s.cover();
            if self.carrier == Some(id) {
                // The stream asked to carry connection credit ended first (Cowboy drops the
                // message): another stream still receiving is asked, so that a starving peer is
                // not left waiting.
                self.carrier = None;
                if let Some(other) = self.lowest(|_, s| s.receiving) {
                    self.ask(other);
                }
            }
        }
        self.ask.take()
    }

    // ---- Events

    fn received(&mut self, id: u32, size: i64, fin: bool) {
        let Some(mut s) = self.streams.get(&id).copied() else { return };
        let fed = size.min(self.remaining().max(0)).min(s.remaining.max(0));
        // cowboy_stream_h's data/4: a waiting read takes the bytes; otherwise they are buffered.
        let taken = match s.waiting {
            Waiting::None => {
                s.buffer += size;
                s.buffer_fin = fin;
                false
            }
            Waiting::Auto => {
                s.waiting = Waiting::None;
                true
            }
            Waiting::Length(length) => {
                if !fin && s.buffer + size < length {
                    s.buffer += size;
                } else {
                    s.buffer = 0;
                    s.waiting = Waiting::None;
                }
                true
            }
        };
        // `fed` fits the scheduler's windows, so it accepts it; a consume within what it holds
        // cannot fail.
        let _ = self.sched.on_data(id, fed as u32, fed as u32, fin);
        if taken {
            let _ = self.sched.consume(id, (s.fed + fed) as u64);
        }
        s.flow = (s.flow - size).max(0);
        s.window -= size;
        s.remaining -= fed;
        s.expected = s.expected.map(|e| (e - size).max(0));
        s.receiving = s.receiving && !fin;
        s.fed = if taken { 0 } else { s.fed + fed };

        self.received += size;
        self.acked = self.acked || self.received > DEFAULT_WINDOW;
        self.expire_lingering(size);
        self.flow = (self.flow - size).max(0);
        self.window -= size;
        self.window_max -= size;
        self.put_stream(id, s);
        self.flush();
    }

    /// cowboy_stream_h's info/3 for a read: what is buffered goes to the reader now or is kept
    /// for it, so it is consumed either way, and a read that cannot be answered waits (in auto
    /// mode only when nothing is buffered).
    fn read(&mut self, id: u32, length: Option<i64>) -> bool {
        let Some(mut s) = self.streams.get(&id).copied() else { return false };
        let _ = self.sched.consume(id, s.fed as u64);
        s.fed = 0;
        let waits = match length {
            None if s.buffer == 0 => {
                s.waiting = Waiting::Auto;
                false
            }
            None => {
                s.buffer = 0;
                false
            }
            Some(length) if s.buffer_fin || s.buffer >= length => {
                s.buffer = 0;
                false
            }
            Some(length) => {
                s.waiting = Waiting::Length(length);
                true
            }
        };
        self.put_stream(id, s);
        self.flush();
        waits
    }

    /// The stream will get no more DATA that any handler sees: the handler stopped (Cowboy then
    /// ignores the stream's DATA), or it was reset. Unless the peer reset it, cow_http2_machine
    /// still charges what the peer sends on it to the connection window, up to the stream's
    /// window: that much is set aside (`lingering`) until it has surely arrived.
    fn stop_receiving(&mut self, id: u32, peer_reset: bool) {
        let Some(s) = self.streams.get(&id).copied() else { return };
        // The scheduler no longer tracks a stream that has nothing left to receive or consume.
        let released = s.receiving || s.fed > 0;
        if released {
            self.sched.close_stream(id);
        }
        if s.receiving && !peer_reset {
            let amount = s.window.min(s.expected.unwrap_or(s.window)).max(0);
            if amount > 0 {
                self.lingering.push(Lingering { id, amount, headroom: None });
                self.lingering_total += amount;
            }
        }
        self.dirty |= released;
        let stopped = MStream {
            receiving: false,
            expected: Some(0),
            fed: 0,
            waiting: Waiting::None,
            stopped: true,
            ..s
        };
        self.put_stream(id, stopped);
    }

    fn reset_lingering(&mut self, id: u32) {
        if self.lingering.is_empty() {
            return;
        }
        let headroom = self.window_max;
        let mut total = 0;
        for l in &mut self.lingering {
            if l.id == id {
                l.amount = l.amount.min(headroom.max(0));
                l.headroom = Some(headroom);
            }
            total += l.amount;
        }
        self.lingering_total = total;
    }

    /// More visible DATA than the peer had window when a stream was reset can only have been
    /// sent with credit that went out after the RST_STREAM, so after the peer read it:
    /// everything it sent on that stream has arrived before (one TCP stream, in order).
    fn expire_lingering(&mut self, size: i64) {
        if self.lingering.is_empty() {
            return;
        }
        let mut gone = 0;
        self.lingering.retain_mut(|l| {
            if let Some(h) = l.headroom.as_mut() {
                *h -= size;
                if *h < 0 {
                    gone += l.amount;
                    return false;
                }
            }
            true
        });
        // What arrived of it is no longer to come but has lowered the window: at most all of it.
        self.lingering_total -= gone;
        self.window -= gone;
    }

    // ---- Plans

    fn plan(&mut self, id: u32, stop: bool, callback: Callback) -> Plan {
        self.ask = None;
        if stop {
            self.stop_receiving(id, false);
        }
        // Streams closed in the scheduler since its last flush (DATA and reads flush at once).
        if self.dirty {
            self.dirty = false;
            self.flush();
        }
        let demand = self.realize(id, callback);
        Plan { demand, ask: self.ask.take() }
    }

    /// The scheduler's credits raise its view of what the peer may send on the streams (its
    /// view of the connection is [`CowboyMirror::remaining`]).
    fn flush(&mut self) {
        let streams = &mut self.streams;
        self.sched.flush(|id, credit| {
            if let Some(s) = streams.get_mut(&id).filter(|_| id != 0) {
                s.remaining += credit as i64;
            }
        });
    }

    /// What the scheduler lets the peer send on the connection.
    fn remaining(&self) -> i64 {
        self.sched.connection_remaining()
    }

    /// The demand to emit on stream `id` so that Cowboy's windows reach the scheduler's view of
    /// what the peer may send: the stream's own credit, and the connection's when this stream
    /// can carry it without raising its own window (see `carry_short` otherwise).
    fn realize(&mut self, id: u32, callback: Callback) -> i64 {
        let Some(s) = self.streams.get(&id).copied() else { return 0 };
        // Nothing owed, and Cowboy's demands within its windows: no WINDOW_UPDATE, now or at the
        // check after this DATA frame. The common case.
        if self.lingering_total == 0
            && self.remaining() <= self.window
            && s.remaining <= s.window
            && s.flow <= s.window
            && self.flow <= self.window
        {
            return 0;
        }
        // Bytes beyond the scheduler's view were not fed to it: it may count them as body still
        // to come, so its view is capped at the body that is really still to come.
        let target = s.expected.map_or(s.remaining, |e| s.remaining.min(e));
        // Before the SETTINGS ACK the peer cannot have used the stream's window up (it can have
        // sent 65,535 bytes in all), and a raise then would be raised again by the ACK.
        let stream_n = if s.receiving && target > s.window && self.machine_window(&s) == s.window {
            self.stream.least_demand(s.flow, s.window, target - s.window)
        } else {
            None
        };
        let base = stream_n.unwrap_or(0);
        let n = match self.connection_demand(None) {
            None => base,
            Some(conn_n) if base >= conn_n || self.free_demand(&s) >= conn_n => base.max(conn_n),
            Some(_) => self.carry_short(id, &s, callback, base),
        };
        self.demand(id, s, n, callback);
        n
    }

    /// This stream cannot carry the whole connection credit without raising its own window: it
    /// waits for a stream that can (a fresh one, one that stops) or for the next stream credit,
    /// which carries connection credit with it. But when the peer is about to run out of
    /// connection window while the streams could take more (`coverage`), that much goes out
    /// now: raising this stream's window within its body, or asking a stream that can, or else
    /// as much as this stream's body allows, or past this stream's body when it allows nothing.
    /// That last is the only way to move Cowboy's connection window when every stream's window
    /// already covers its body; the peer cannot use the extra (Cowboy enforces the
    /// content-length).
    fn carry_short(&mut self, id: u32, s: &MStream, callback: Callback, base: i64) -> i64 {
        let need = if self.window - self.lingering() < self.max_frame_size {
            self.connection_demand(Some(self.remaining().min(self.coverage)))
        } else {
            None
        };
        let need = match need {
            None | Some(0) => return base,
            Some(n) => n,
        };
        let most = self.most_demand(s);
        if most >= need {
            return base.max(need);
        }
        if self.carrier.is_some() {
            return base;
        }
        if callback != Callback::Carry {
            if let Some(other) = self.find_carrier(id, need) {
                self.ask(other);
                return base;
            }
        }
        // Part of it within this stream's body, if that surely gives the peer a frame: it can
        // send, and the callbacks that follow carry the rest.
        if self.sure_credit(most) >= self.max_frame_size {
            base.max(most)
        } else {
            base.max(need)
        }
    }

    /// A stream whose handler still runs that can take demand `n` without raising its window,
    /// or else one still receiving that can take it within its body (the lowest id of either).
    fn find_carrier(&self, id: u32, n: i64) -> Option<u32> {
        self.lowest(|other, s| other != id && !s.stopped && self.free_demand(s) >= n)
            .or_else(|| self.lowest(|other, s| other != id && s.receiving && self.most_demand(s) >= n))
    }

    fn lowest(&self, pred: impl Fn(u32, &MStream) -> bool) -> Option<u32> {
        self.streams.iter().filter(|(&id, s)| pred(id, s)).map(|(&id, _)| id).min()
    }

    fn ask(&mut self, carrier: u32) {
        self.carrier = Some(carrier);
        self.ask = Some(carrier);
    }

    /// The connection credit a demand of `n` gives for sure, whatever cow_http2_machine's
    /// window within its bounds.
    fn sure_credit(&self, n: i64) -> i64 {
        if self.exact() {
            self.conn.increment(self.flow + n, self.window)
        } else {
            (self.flow + n - self.window_max).max(0)
        }
    }

    /// The least demand that gives the peer the scheduler's connection window (or `target`):
    /// exactly, when the window is known; otherwise a demand that covers it and the lingering
    /// DATA whatever the window is (cow_http2_machine raises its window to at least the demand).
    fn connection_demand(&self, target: Option<i64>) -> Option<i64> {
        let target = target.unwrap_or(self.remaining());
        let lingering = self.lingering();
        let owed = target - (self.window - lingering);
        if owed <= 0 {
            None
        } else if self.exact() {
            self.conn.least_demand(self.flow, self.window, owed)
        } else {
            Some((target + lingering - self.flow).max(1))
        }
    }

    fn exact(&self) -> bool {
        self.lingering_total == 0 && self.window == self.window_max
    }

    /// The most DATA still to come on stopped streams: up to each one's window, and on those
    /// Cowboy already reset, what the peer sent before it read the RST_STREAM, so at most its
    /// connection window now (credit written after the RST_STREAM reaches it after it).
    fn lingering(&self) -> i64 {
        if self.lingering_total == 0 {
            return 0;
        }
        let (mut reset, mut stopping) = (0, 0);
        for l in &self.lingering {
            match l.headroom {
                None => stopping += l.amount,
                Some(_) => reset += l.amount,
            }
        }
        reset.min(self.window_max.max(0)) + stopping
    }

    /// Applies a demand of `n` as Cowboy will: both levels are checked after a flow command,
    /// and after a DATA frame that brought none.
    fn demand(&mut self, id: u32, s: MStream, n: i64, callback: Callback) {
        if n == 0 {
            if callback != Callback::Data {
                return;
            }
            // Cowboy's check after a DATA frame finds both demands within the windows (known
            // exactly): nothing happens.
            if self.window == self.window_max
                && self.lingering_total == 0
                && self.flow <= self.window
                && s.flow <= s.window
            {
                return;
            }
        }
        self.flow += n;
        let s_flow = s.flow + n;
        let stream_inc = self.stream.increment(s_flow, s.window);
        self.connection_checked();
        self.put_stream(id, MStream { flow: s_flow, window: s.window + stream_inc, ..s });
    }

    /// The most demand this stream can take without Cowboy ever raising its window past its
    /// remaining body. DATA lowers demand and window alike, so demand within the window never
    /// raises it (`free_demand`); beyond it, cow_http2_machine raises the window to demand +
    /// margin as soon as the window is at most the threshold, now or after more DATA.
    fn most_demand(&self, s: &MStream) -> i64 {
        let free = self.free_demand(s);
        // Before the SETTINGS ACK, what cow_http2_machine raises the window to, the ACK raises
        // again.
        let early = s.window - self.machine_window(s);
        match s.expected {
            _ if free == UNBOUNDED || !s.receiving => free,
            None => UNBOUNDED,
            Some(expected) => free.max(expected - self.stream.margin - early - s.flow),
        }
    }

    /// The demand this stream can take without Cowboy raising its window at all, now or later:
    /// within its window, or any once no DATA will lower a window above the threshold.
    fn free_demand(&self, s: &MStream) -> i64 {
        let window = self.machine_window(s);
        if !s.receiving && window > self.stream.threshold {
            UNBOUNDED
        } else {
            (window - s.flow).max(0)
        }
    }

    /// cow_http2_machine's window for the stream: smaller until the SETTINGS ACK for an early
    /// one.
    fn machine_window(&self, s: &MStream) -> i64 {
        if s.early && !self.acked {
            s.window - (self.stream_window - DEFAULT_WINDOW)
        } else {
            s.window
        }
    }

    /// cow_http2_machine checked the connection window against the demand.
    fn connection_checked(&mut self) {
        let Level { margin, threshold, max } = self.conn;
        let demand = self.flow;
        if self.exact() {
            self.window += self.conn.increment(demand, self.window);
            self.window_max = self.window;
            return;
        }
        let raised = if demand > 0 { (demand + margin).min(max) } else { 0 };
        // Its window was at most `window_max`: if that is below the demand, it was raised.
        let certain = demand > self.window_max && self.window_max <= threshold && demand > 0;
        let floor = if certain { raised } else { demand.min(threshold + 1).min(max) };
        let window_max = self.window_max.max(raised);
        if certain && self.lingering_total == 0 {
            self.window = raised;
            self.window_max = raised;
        } else {
            self.window = self.window.max(floor);
            self.window_max = window_max;
        }
    }

    /// Every change of a stream goes through here, which keeps `coverage` without walking them.
    fn put_stream(&mut self, id: u32, s: MStream) {
        let old = self.streams.insert(id, s).map_or(0, |old| old.cover());
        self.coverage += s.cover() - old;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNLIMITED: Level =
        Level { margin: 0, threshold: MAX_WINDOW_SIZE as i64, max: MAX_WINDOW_SIZE as i64 };

    fn options(connection: u32, stream: u32) -> CowboyOptions {
        CowboyOptions {
            initial_connection_window_size: connection,
            initial_stream_window_size: stream,
            connection: UNLIMITED,
            stream: UNLIMITED,
            ..CowboyOptions::default()
        }
    }

    #[test]
    fn cowboy_window_arithmetic() {
        let d = Level::COWBOY_DEFAULT;
        // Demand within the window, or a window above the threshold: no update.
        assert_eq!(d.increment(1_000, 65_535), 0);
        assert_eq!(d.increment(300_000, 200_000), 0);
        // Otherwise up to demand + margin, at most the maximum.
        assert_eq!(d.increment(100_000, 65_535), 100_000 + 65_535 - 65_535);
        assert_eq!(d.increment(MAX_WINDOW_SIZE as i64, 10), MAX_WINDOW_SIZE as i64 - 10);
        // The least demand raising a window by `want`: with a margin, demand + margin - window.
        let n = d.least_demand(0, 1_000, 50_000).unwrap();
        assert!(d.increment(n, 1_000) >= 50_000 && d.increment(n - 1, 1_000) < 50_000);
        assert_eq!(UNLIMITED.least_demand(0, 1_000, 50_000), Some(51_000));
        // Demand already enough: 0; window above the threshold: none.
        assert_eq!(UNLIMITED.least_demand(60_000, 1_000, 50_000), Some(0));
        assert_eq!(d.least_demand(0, 200_000, 50_000), None);
    }

    #[test]
    fn bodies_within_their_windows_need_no_demand() {
        let mut m = CowboyMirror::new(&options(8_388_608, 4_194_304)).unwrap();
        for id in (1..128).step_by(2) {
            assert_eq!(m.open(id, Some(16_384), true, false), Plan::default());
        }
        for id in (1..128).step_by(2) {
            assert_eq!(m.data(id, 16_384, true, false), Plan::default());
        }
        for id in (1..128).step_by(2) {
            assert_eq!(m.read_body(id, Some(8_000_000), false), (false, Plan::default()));
            assert_eq!(m.info_other(id, true), Plan::default());
            assert_eq!(m.terminate(id, false), None);
        }
        let info = m.info();
        assert_eq!(
            (info.demand, info.window, info.window_max, info.streams),
            (0, 8_388_608 - 1_048_576, 8_388_608 - 1_048_576, 0)
        );
    }

    /// A peer that sends all that Cowboy's windows allow (the mirror's, exact with zero margins),
    /// 16 KiB at a time, to a reader that waits: the body arrives in full, with few demands.
    #[test]
    fn a_waiting_reader_never_stalls() {
        for (conn, stream, body) in
            [(65_535, 16_384, 1_000_000), (131_072, 65_535, 3_000_000), (1_048_576, 262_144, 5_000_000)]
        {
            let mut m = CowboyMirror::new(&options(conn, stream)).unwrap();
            assert_eq!(m.open(1, Some(body), true, false), Plan::default());
            let (mut left, mut demands) = (body as i64, 0);
            let mut reads = 0;
            while left > 0 {
                let (waits, plan) = m.read_body(1, Some(65_536), false);
                demands += (plan.demand > 0) as u32;
                reads += 1;
                assert!(waits, "the reader waits");
                loop {
                    let s = m.streams[&1];
                    let room = m.window.min(s.window).min(16_384).min(left);
                    assert!(room > 0, "stalled with {left} bytes to go (conn {conn}, stream {stream})");
                    left -= room;
                    let plan = m.data(1, room as u32, left == 0, false);
                    demands += (plan.demand > 0) as u32;
                    assert_eq!(plan.ask, None);
                    if m.streams[&1].waiting == Waiting::None {
                        break;
                    }
                }
            }
            assert_eq!(m.info().streams, 1);
            // A demand per stream credit at most, one per half stream window (connection credit
            // rides on them).
            let bound = (body as i64 / (stream as i64 / 2) + 2) as u32;
            assert!(demands <= bound, "{demands} demands for {reads} reads (bound {bound})");
            // The reader took every byte.
            assert_eq!(m.scheduler().buffered(), 0);
        }
    }
}
