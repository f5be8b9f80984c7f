//! A randomized, mutation-based soak of the engine.
//!
//! Each case draws a server configuration and a valid client byte stream (tests/common_fuzz:
//! requests, uploads with and without content-length, padding, trailers, CONTINUATION-split
//! header blocks that use the HPACK dynamic table and Huffman coding, resets, PING, SETTINGS
//! changes, WINDOW_UPDATE, PRIORITY, GOAWAY, unknown frames), usually mutates it, and feeds it
//! to a [`Connection`] split at random points, with the calls an application makes interleaved
//! (consume, read, read_timeout, discard, send_headers, send_data, send_body, reset_stream,
//! flush, check_timeouts, goaway) on a
//! synthetic clock. After every call the invariants below are checked; a case that panics is
//! reported with its seed and its input is saved.
//!
//! Invariants:
//! - no panic;
//! - bytes buffered for the application ≤ the connection window, and equal to what the
//!   application was handed and has not consumed;
//! - every window within [-2^31, 2^31-1], the connection send window never negative;
//! - open streams ≤ SETTINGS_MAX_CONCURRENT_STREAMS;
//! - every flush parses completely as valid frames; header blocks are contiguous and decode
//!   with an HPACK decoder kept in step; frames respect the peer's SETTINGS_MAX_FRAME_SIZE;
//!   nothing is sent on a stream after we reset it, no DATA or HEADERS after our END_STREAM,
//!   no DATA before the final response HEADERS, no WINDOW_UPDATE on a stream the peer ended;
//! - a shadow of the client (the frames the engine counted as received, decoded again) agrees
//!   with the engine: send windows = initial + credits − DATA sent, the peer's view of our
//!   connection window = initial + credits − DATA received, one SETTINGS ACK per SETTINGS,
//!   one PING ACK per PING;
//! - the stats agree with the output (frames by type, bytes) and peaks ≥ current values;
//! - reads (rule 8 of the scheduler): a read hands over everything reported and not yet handed;
//!   it completes with Fin only once the body ended, with More only once it was handed its
//!   length (or its period expired); no Data after a discard; ReadDone only for a registered read;
//! - send_body never takes more than it was given nor more than `max_send_queue`, and the
//!   connection's queue never grows past `max_connection_send_queue` through it;
//! - for an unmutated stream: no error at all, and every body byte arrives intact.
//!
//! Duration: H2FLOW_FUZZ_SECS (default 30; the client role's soak, tests/fuzz_soak_client.rs,
//! runs 15 more). Seed: H2FLOW_FUZZ_SEED (hex; default fixed, so
//! that `cargo test` is deterministic; `H2FLOW_FUZZ_SEED=random` draws one);
//! H2FLOW_FUZZ_CASE=n replays one case of that seed, and H2FLOW_FUZZ_TRACE=1 prints its
//! configuration, input frames, calls and events. The long run is documented in the README.

mod common_fuzz;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use common_fuzz::{
    body_byte, case_seed, env_secs, env_seed, frame_boundary, generate, mutate, random_config, Output, Rng,
    Shadow, MAX_WINDOW, PREFACE,
};
use h2flow_core::frame::{kind, Head, HEADER_LEN};
use h2flow_core::scheduler::ReadStatus;
use h2flow_core::{fields, Config, Connection, ErrorCode, Event, Payload, SendError, Sent};

/// Two thirds of the 45 s `mix test.all` gives the soaks; tests/fuzz_soak_client.rs has the rest.
const DEFAULT_SECS: f64 = 30.0;
const DEFAULT_SEED: u64 = 0x5eed_4832;

const MIN_WINDOW: i64 = -(1 << 31);

// ---------------------------------------------------------------------------------------------
// The application.

#[derive(Default)]
struct AppStream {
    buffered: u64,
    /// Body bytes handed over so far (where the next payload starts).
    offset: u64,
    /// No reset or stream error was reported and the application did not reset it.
    alive: bool,
    peer_ended: bool,
    app_ended: bool,
    final_sent: bool,
    /// A registered read, and what it was handed so far and needs.
    reading: Option<(u64, u64)>,
    /// The application said it will not read the body.
    discarded: bool,
}

/// Counts over a whole soak, for the report.
#[derive(Default)]
struct Totals {
    cases: u64,
    valid_cases: u64,
    bytes: u64,
    recv_calls: u64,
    api_calls: u64,
    requests: u64,
    body_bytes: u64,
    responses_ended: u64,
    data_sent: u64,
    closed_cases: u64,
    connection_errors: BTreeMap<String, u64>,
    stream_errors: BTreeMap<String, u64>,
    resets_sent: BTreeMap<u32, u64>,
    frames_received: [u64; kind::COUNT + 1],
}

struct Case<'t> {
    conn: Connection,
    cfg: Config,
    now: Instant,
    rng: Rng,
    valid: bool,
    /// Everything fed while the engine was open.
    fed: Vec<u8>,
    shadow: Shadow,
    out: Output,
    app: BTreeMap<u32, AppStream>,
    totals: &'t mut Totals,
    /// H2FLOW_FUZZ_TRACE: print every call and event.
    trace: bool,
}

impl Case<'_> {
    fn check(&mut self) {
        let c = &self.conn;
        let sched = c.scheduler();
        let buffered: u64 = self.app.values().map(|s| s.buffered).sum();
        assert_eq!(c.buffered(), buffered, "engine's buffered bytes vs what the application holds");
        assert!(
            c.buffered() <= sched.connection_window() as u64,
            "buffered {} > connection window {}",
            c.buffered(),
            sched.connection_window()
        );
        assert!((0..=MAX_WINDOW).contains(&c.send_window()), "connection send window {}", c.send_window());
        let remaining = sched.connection_remaining();
        assert!((0..=MAX_WINDOW).contains(&remaining), "peer's connection window {remaining}");
        // The flow-control balance: every byte of the window is the peer's to send, buffered,
        // or credit owed; none is credited twice or lost.
        assert_eq!(
            sched.connection_remaining() + c.buffered() as i64 + sched.connection_pending() as i64,
            sched.connection_window() as i64,
            "connection window balance"
        );
        for &id in self.app.keys() {
            if let Some(w) = c.stream_send_window(id) {
                assert!((MIN_WINDOW..=MAX_WINDOW).contains(&w), "stream {id} send window {w}");
            }
            if let Some(r) = sched.stream_remaining(id) {
                assert!((MIN_WINDOW..=MAX_WINDOW).contains(&r), "stream {id} peer's window {r}");
            }
        }
        assert!(c.open_streams() <= self.cfg.max_concurrent_streams as usize, "open streams over the limit");
        let st = c.stats();
        assert!(st.peak_open_streams >= c.open_streams() as u64);
        assert!(st.streams_opened >= st.peak_open_streams);
        assert!(st.peak_queued_send_bytes >= c.queued());
        assert!(sched.stats().peak_buffered >= c.buffered());
        assert!(sched.tracked_streams() <= self.app.len());
        if !c.is_closed() {
            assert_eq!(st.bytes_received, self.fed.len() as u64);
        }
    }

    /// Checks a flush's output and the accounts that only balance once it is out.
    fn flush(&mut self) {
        let mut buf = Vec::new();
        if self.rng.chance(10) {
            // flush_into appends to what the caller already has.
            buf.extend_from_slice(b"xyz");
            self.conn.flush_into(self.now, &mut buf);
            assert_eq!(&buf[..3], b"xyz");
            buf.drain(..3);
        } else {
            buf = self.conn.flush(self.now);
        }
        self.totals.api_calls += 1;
        self.out.check(&buf, &self.shadow);
        self.shadow.flushed();
        self.events(&[]);
        let c = &self.conn;
        let st = c.stats();
        for k in 0..=kind::COUNT {
            if k != kind::CONTINUATION as usize {
                assert_eq!(st.frames_sent[k], self.out.frames[k], "frames sent of type {k}");
            }
        }
        assert_eq!(st.bytes_sent, self.out.bytes);
        assert_eq!(st.flushes, self.out.flushes);
        assert_eq!(st.data_bytes_sent as i64, self.out.data_total);
        assert!(!c.has_output());
        if c.is_closed() {
            self.out.finished = true;
            return;
        }
        let sh = &self.shadow;
        assert_eq!(self.out.settings_acks, sh.settings_in, "one SETTINGS ACK per SETTINGS (RFC 9113 6.5.3)");
        assert_eq!(self.out.ping_acks, sh.pings_in, "one PING ACK per PING (RFC 9113 6.7)");
        assert_eq!(
            c.send_window(),
            65_535 + sh.conn_credit - self.out.data_total,
            "connection send window vs credits and DATA sent"
        );
        assert_eq!(
            c.scheduler().connection_remaining(),
            self.cfg.window.peer_initial_connection_window as i64 + self.out.conn_credit - sh.data_in,
            "the peer's connection window vs our credits and DATA received"
        );
        for &id in self.app.keys() {
            if let Some(w) = c.stream_send_window(id) {
                let credit = sh.stream_credit.get(&id).copied().unwrap_or(0);
                let sent = self.out.data_sent.get(&id).copied().unwrap_or(0);
                assert_eq!(w, sh.iws + credit - sent, "stream {id} send window vs credits and DATA sent");
            }
        }
    }

    fn recv(&mut self, chunk: &[u8]) {
        let was_closed = self.conn.is_closed();
        if !was_closed {
            self.fed.extend_from_slice(chunk);
        }
        self.totals.recv_calls += 1;
        let r = self.conn.recv(chunk, self.now);
        if self.trace {
            eprintln!("recv {} bytes at {}: {r:?}", chunk.len(), self.fed.len());
        }
        match &r {
            Ok(()) => {}
            Err(e) => {
                assert!(e.is_connection_error(), "recv returned a stream error: {e:?}");
                assert!(self.conn.is_closed(), "a connection error left the engine open");
                assert!(e.message().contains("RFC") || e.message().contains("CVE"), "{e}");
                *self.totals.connection_errors.entry(e.to_string()).or_default() += 1;
                assert!(!self.valid, "a valid stream got {e}");
            }
        }
        assert!(!was_closed || r.is_ok(), "recv after close returned an error");
        let frames: u64 = self.conn.stats().frames_received.iter().sum();
        self.shadow.advance(&self.fed, frames, self.cfg.max_frame_size);
        self.events(chunk);
    }

    fn events(&mut self, input: &[u8]) {
        let events: Vec<Event> =
            if self.rng.chance(50) { self.conn.take_events() } else { self.conn.drain_events().collect() };
        for e in events {
            if self.trace {
                eprintln!("  {e:?}");
            }
            self.event(e, input);
        }
        self.check();
    }

    fn event(&mut self, e: Event, input: &[u8]) {
        let valid = self.valid;
        match e {
            Event::Headers { stream_id: id, fields, end_stream, .. } => {
                assert!(id % 2 == 1 && !self.app.contains_key(&id), "Headers for stream {id} twice");
                assert!(fields::validate_request(&fields).is_ok(), "an invalid request was let through");
                self.totals.requests += 1;
                self.app.insert(id, AppStream { alive: true, peer_ended: end_stream, ..Default::default() });
            }
            Event::Response { .. } => panic!("a server engine reported a response: {e:?}"),
            Event::Data { stream_id: id, data, end_stream } => {
                if let Payload::Input { start, len } = data {
                    assert!(start + len <= input.len(), "payload range outside the input");
                }
                let bytes = data.resolve(input);
                assert_eq!(bytes.len(), data.len());
                let s = self.app.get_mut(&id).expect("Data for an unknown stream");
                assert!(s.alive && !s.peer_ended, "Data on a stream that ended or was reset");
                assert!(!s.discarded, "Data on stream {id} after a discard");
                if valid {
                    for (i, &b) in bytes.iter().enumerate() {
                        assert_eq!(b, body_byte(id, s.offset + i as u64), "body byte {} of {id}", s.offset);
                    }
                }
                match s.reading.as_mut() {
                    // Handed to the registered read as it arrives: consumed.
                    Some((handed, _)) => *handed += bytes.len() as u64,
                    None => s.buffered += bytes.len() as u64,
                }
                s.offset += bytes.len() as u64;
                s.peer_ended = end_stream;
                self.totals.body_bytes += bytes.len() as u64;
            }
            Event::Trailers { stream_id: id, fields } => {
                assert!(fields::validate_trailers(&fields).is_ok());
                let s = self.app.get_mut(&id).expect("Trailers for an unknown stream");
                assert!(s.alive && !s.peer_ended, "Trailers on a stream that ended or was reset");
                s.peer_ended = true;
            }
            Event::StreamReset { stream_id: id, .. } | Event::StreamError { stream_id: id, .. } => {
                if let Event::StreamError { code, message, .. } = &e {
                    assert!(!valid, "a valid stream got a stream error: {e:?}");
                    assert!(message.contains("RFC"), "{message}");
                    *self.totals.stream_errors.entry(format!("{code}: {message}")).or_default() += 1;
                }
                let s = self.app.get_mut(&id).expect("a reset of an unknown stream");
                assert!(s.alive, "stream {id} reset twice");
                s.alive = false;
                s.buffered = 0;
                s.reading = None;
            }
            Event::GoAway { debug, .. } => {
                if let Payload::Input { start, len } = debug {
                    assert!(start + len <= input.len(), "debug data range outside the input");
                }
            }
            Event::SendWindowOpen { stream_id: id } => {
                assert!(self.app.contains_key(&id), "SendWindowOpen for an unknown stream");
            }
            Event::ReadDone { stream_id: id, fin } => {
                let s = self.app.get_mut(&id).expect("ReadDone for an unknown stream");
                let (handed, length) = s.reading.take().expect("ReadDone without a registered read");
                if fin {
                    assert!(s.peer_ended, "ReadDone fin on stream {id} before its body ended");
                } else {
                    assert!(handed >= length, "ReadDone more on stream {id}: handed {handed} < {length}");
                }
            }
            Event::SendTimeout { stream_id: id } => {
                let s = self.app.get_mut(&id).expect("SendTimeout for an unknown stream");
                assert!(s.alive, "SendTimeout on a dead stream {id}");
                assert!(!valid, "a valid stream timed out sending");
                s.alive = false;
                s.buffered = 0;
                s.reading = None;
            }
        }
    }

    /// A random stream among those `f` accepts.
    fn pick(&mut self, f: impl Fn(&AppStream) -> bool) -> Option<u32> {
        let ids: Vec<u32> = self.app.iter().filter(|(_, s)| f(s)).map(|(&id, _)| id).collect();
        (!ids.is_empty()).then(|| self.rng.pick(&ids))
    }

    fn pick_stream(&mut self, alive_only: bool) -> Option<u32> {
        self.pick(|s| !alive_only || s.alive)
    }

    /// One call the application makes.
    fn act(&mut self) {
        self.totals.api_calls += 1;
        match self.rng.below(100) {
            0..=11 => self.consume(),
            12..=21 => self.read(),
            22 => self.read_timeout(),
            23..=24 => self.discard(),
            25..=39 => self.respond_headers(),
            40..=49 => self.respond_data(),
            50..=59 => self.respond_body(),
            60..=64 => self.trailers(),
            65..=67 => self.reset_stream(),
            68..=79 => self.flush(),
            80..=84 => self.misuse(),
            85..=89 => {
                if let Err(e) = self.conn.check_timeouts(self.now) {
                    assert!(self.conn.is_closed());
                    *self.totals.connection_errors.entry(e.to_string()).or_default() += 1;
                    assert!(!self.valid, "a valid stream timed out");
                }
            }
            90 => {
                let code = self.rng.pick(&[ErrorCode::NO_ERROR, ErrorCode::ENHANCE_YOUR_CALM]);
                let debug = vec![b'd'; self.rng.pick(&[0, 3, 20_000])];
                self.conn.goaway(code, &debug);
            }
            _ => self.advance_clock(),
        }
        self.events(&[]);
    }

    fn advance_clock(&mut self) {
        let ms = if self.valid { self.rng.below(5) } else { self.rng.pick(&[0, 1, 10, 100, 1_000, 11_000]) };
        self.now += Duration::from_millis(ms);
    }

    fn consume(&mut self) {
        let Some(id) = self.pick(|s| s.buffered > 0).or_else(|| self.pick_stream(false)) else { return };
        let s = &self.app[&id];
        let n = if self.rng.chance(50) { s.buffered } else { self.rng.below(s.buffered + 1) };
        if self.trace {
            eprintln!("consume({id}, {n})");
        }
        self.conn
            .consume(id, n)
            .unwrap_or_else(|e| panic!("consume({id}, {n}) of what was handed over: {e}"));
        self.app.get_mut(&id).expect("stream").buffered -= n;
    }

    /// A read of a random length: it takes everything reported and not yet handed over.
    fn read(&mut self) {
        let Some(id) = self.pick(|s| s.reading.is_none() && !s.discarded) else { return };
        let length = self.rng.pick(&[0, 1, 100, 16_384, 100_000, 8_000_000]);
        let r = self.conn.read(id, length);
        if self.trace {
            eprintln!("read({id}, {length}): {r:?}");
        }
        let s = self.app.get_mut(&id).expect("stream");
        let handed = std::mem::take(&mut s.buffered);
        match r {
            Some(ReadStatus::Fin) => assert!(s.peer_ended, "read of {id} ended before its body"),
            Some(ReadStatus::More) => {
                assert!(handed >= length, "read of {id}: More with {handed} < {length}")
            }
            Some(ReadStatus::Wait) => {
                assert!(
                    !s.peer_ended && handed < length.max(1),
                    "read of {id} waits with {handed} of {length}"
                );
                s.reading = Some((handed, length));
            }
            // A stream both sides ended may be forgotten (closed_stream_memory).
            None => assert!(
                !s.alive || self.conn.is_closed() || (s.app_ended && s.peer_ended),
                "read of live stream {id} refused"
            ),
        }
    }

    fn read_timeout(&mut self) {
        let Some(id) = self.pick(|s| s.reading.is_some()) else { return };
        assert!(self.conn.read_timeout(id), "read_timeout({id}) found no read");
        self.app.get_mut(&id).expect("stream").reading = None;
    }

    fn discard(&mut self) {
        let Some(id) = self.pick(|s| !s.discarded) else { return };
        if self.trace {
            eprintln!("discard({id})");
        }
        self.conn.discard(id);
        let s = self.app.get_mut(&id).expect("stream");
        s.discarded = true;
        s.buffered = 0;
        s.reading = None;
    }

    fn respond_body(&mut self) {
        let Some(id) = self.pick(|s| s.alive && s.final_sent && !s.app_ended) else { return };
        let n = self.rng.pick(&[0, 1, 100, 16_384, 70_000, 300_000]);
        let end = self.rng.chance(35);
        let queued_before = self.conn.queued();
        let r = self.conn.send_body(id, &vec![7; n], end);
        if self.trace {
            eprintln!("send_body({id}, {n}, {end}): {r:?}");
        }
        match r {
            Ok(Sent::Accepted { taken, blocked }) => {
                assert!(self.legit(id) || self.conn.is_closed(), "send_body accepted on a dead stream");
                assert!(taken <= n && taken as u64 <= self.cfg.max_send_queue as u64, "took {taken} of {n}");
                let limit = self.cfg.max_connection_send_queue as u64;
                assert!(
                    self.conn.queued() <= queued_before.max(limit),
                    "send_body grew the connection queue past its limit"
                );
                assert!(blocked || taken == n || taken as u64 == self.cfg.max_send_queue as u64);
                if taken == n && end {
                    self.app.get_mut(&id).expect("stream").app_ended = true;
                }
            }
            Ok(Sent::StreamClosed) => assert!(!self.legit(id), "send_body refused on live stream {id}"),
            other => panic!("send_body({id}): {other:?}"),
        }
    }

    /// Whether a send on this stream is one the engine must accept.
    fn legit(&self, id: u32) -> bool {
        self.app[&id].alive && !self.app[&id].app_ended && !self.conn.is_closed()
    }

    fn expect_sent(&self, id: u32, r: Result<Sent, SendError>, what: &str) -> bool {
        if self.trace {
            eprintln!("{what}({id}): {r:?}");
        }
        if self.legit(id) {
            match r {
                Ok(Sent::Queued(_)) => true,
                other => panic!("{what} on live stream {id}: {other:?}"),
            }
        } else {
            matches!(r, Ok(Sent::Queued(_)))
        }
    }

    fn respond_headers(&mut self) {
        let Some(id) = self.pick(|s| s.alive && !s.final_sent && !s.app_ended) else { return };
        let status: &[u8] = self.rng.pick(&[b"100", b"103", b"200", b"200", b"204", b"404", b"500"]);
        let big = vec![b'v'; self.rng.pick(&[1, 1, 5000, 40_000])];
        let mut fields: Vec<(&[u8], &[u8])> = vec![(b":status", status)];
        if self.rng.chance(50) {
            fields.push((b"content-type", b"text/plain"));
        }
        if self.rng.chance(20) {
            fields.push((b"set-cookie", b"id=1"));
        }
        if self.rng.chance(10) {
            fields.push((b"x-big", &big));
        }
        let informational = status[0] == b'1';
        let end = !informational && self.rng.chance(30);
        let r = self.conn.send_headers(id, &fields, end);
        if self.expect_sent(id, r, "send_headers") {
            let s = self.app.get_mut(&id).expect("stream");
            s.final_sent |= !informational;
            s.app_ended |= end;
        }
    }

    fn respond_data(&mut self) {
        let Some(id) = self.pick(|s| s.alive && s.final_sent && !s.app_ended) else { return };
        let n = self.rng.pick(&[0, 1, 100, 16_384, 16_385, 70_000, 300_000]);
        let end = self.rng.chance(35);
        let r = self.conn.send_data(id, &vec![7; n], end);
        if self.expect_sent(id, r, "send_data") {
            self.app.get_mut(&id).expect("stream").app_ended |= end;
        }
    }

    fn trailers(&mut self) {
        let Some(id) = self.pick(|s| s.alive && s.final_sent && !s.app_ended) else { return };
        let r = self.conn.send_headers(id, &[(b"x-trailer", b"1")], true);
        if self.expect_sent(id, r, "trailers") {
            self.app.get_mut(&id).expect("stream").app_ended = true;
        }
    }

    fn reset_stream(&mut self) {
        let Some(id) = self.pick_stream(false) else { return };
        let code = self.rng.pick(&[ErrorCode::NO_ERROR, ErrorCode::CANCEL, ErrorCode(0xdead)]);
        let live = self.legit(id) || (self.app[&id].alive && !self.conn.is_closed());
        let r = self.conn.reset_stream(id, code);
        if self.trace {
            eprintln!("reset_stream({id}): {r:?}");
        }
        match r {
            Ok(Sent::Queued(_)) => {
                let s = self.app.get_mut(&id).expect("stream");
                s.alive = false;
                s.buffered = 0;
                s.reading = None;
            }
            Ok(Sent::StreamClosed) => {
                // Gone already: only a stream both sides ended, one whose body the application
                // discarded and whose response ended (RST_STREAM NO_ERROR), or a dead one.
                let s = &self.app[&id];
                assert!(
                    !live || (s.app_ended && (s.peer_ended || s.discarded)),
                    "reset of live stream {id} refused"
                );
                // What it had not consumed is released all the same.
                let s = self.app.get_mut(&id).expect("stream");
                s.alive = false;
                s.buffered = 0;
                s.reading = None;
            }
            Ok(other) => panic!("reset_stream({id}): {other:?}"),
            Err(e) => panic!("reset_stream({id}) of a stream the peer opened: {e}"),
        }
    }

    /// Calls a buggy application makes: refused, and nothing is written.
    fn misuse(&mut self) {
        let before = self.conn.stats().frames_sent;
        let closed = self.conn.is_closed();
        let r = match self.rng.below(7) {
            0 => self.conn.send_data(self.rng.pick(&[0, 2, 0x7fff_fffe]), b"x", false),
            1 => {
                // Above every stream the client opened: one that never existed.
                let above = self.shadow.opened.iter().max().map_or(1, |&id| id + 2);
                if above > MAX_WINDOW as u32 {
                    return;
                }
                self.conn.send_data(above, b"x", false)
            }
            2 => match self.pick(|s| s.alive && !s.final_sent && !s.app_ended) {
                Some(id) => {
                    let bad: (&[u8], &[u8]) = self.rng.pick(&[
                        (b"Bad", b"x"),
                        (b":path", b"/"),
                        (b"connection", b"close"),
                        (b"a b", b"x"),
                        (b"x-v", b"a\r\nb"),
                    ]);
                    self.conn.send_headers(id, &[(b":status", b"200"), bad], false)
                }
                None => return,
            },
            5 => match self.pick(|s| s.alive && !s.final_sent && !s.app_ended) {
                Some(id) => {
                    let status: &[u8] = self.rng.pick(&[b"100", b"20", b"600", b"abc"]);
                    self.conn.send_headers(id, &[(b":status", status)], status == b"100")
                }
                None => return,
            },
            6 => match self.pick(|s| s.alive && s.final_sent && !s.app_ended) {
                // Trailers must end the stream and carry no pseudo-header fields.
                Some(id) if self.rng.chance(50) => self.conn.send_headers(id, &[(b"x-t", b"1")], false),
                Some(id) => self.conn.send_headers(id, &[(b":status", b"200")], true),
                None => return,
            },
            3 => match self.pick_stream(true) {
                Some(id) if !self.app[&id].final_sent && !self.app[&id].app_ended => {
                    self.conn.send_data(id, b"early", false)
                }
                _ => return,
            },
            _ => {
                let Some(id) = self.pick_stream(true) else { return };
                if self.app[&id].buffered == 0 {
                    return;
                }
                let n = self.app[&id].buffered + 1;
                assert!(self.conn.consume(id, n).is_err(), "consumed more than was handed over");
                return;
            }
        };
        assert!(closed || r.is_err(), "misuse accepted: {r:?}");
        assert!(!matches!(r, Ok(Sent::Queued(_))), "misuse accepted: {r:?}");
        assert_eq!(self.conn.stats().frames_sent, before, "misuse wrote frames");
    }

    /// Feeds the input split at random points, the application acting in between; then the
    /// application answers and drains everything.
    fn run(&mut self, input: &[u8]) {
        self.flush();
        let mut pos = 0;
        while pos < input.len() {
            let left = (input.len() - pos) as u64;
            let n = match self.rng.below(6) {
                0 => 1,
                1 => self.rng.range(1, 9),
                2 => self.rng.range(1, 100),
                3 => self.rng.range(1, 5000),
                4 => frame_boundary(&input[pos..]).unwrap_or(left as usize) as u64,
                _ => left,
            }
            .clamp(1, left) as usize;
            self.recv(&input[pos..pos + n]);
            pos += n;
            for _ in 0..self.rng.below(7) {
                self.act();
            }
        }
        // Wrap-up: every live stream is answered and every byte consumed.
        let ids: Vec<u32> = self.app.keys().copied().collect();
        for id in ids {
            if self.legit(id) {
                if !self.app[&id].final_sent {
                    let r = self.conn.send_headers(id, &[(b":status", b"200")], false);
                    self.expect_sent(id, r, "send_headers");
                    self.app.get_mut(&id).expect("stream").final_sent = true;
                }
                let r = self.conn.send_data(id, b"bye", true);
                self.expect_sent(id, r, "send_data");
                self.app.get_mut(&id).expect("stream").app_ended = true;
            }
            let n = self.app[&id].buffered;
            self.conn.consume(id, n).unwrap_or_else(|e| panic!("final consume of {id}: {e}"));
            self.app.get_mut(&id).expect("stream").buffered = 0;
            self.check();
        }
        self.flush();
        assert_eq!(self.conn.buffered(), 0, "bytes left buffered after the application consumed all");
        if self.valid {
            assert!(!self.conn.is_closed(), "a valid stream closed the connection");
        }
        self.totals.closed_cases += self.conn.is_closed() as u64;
        self.totals.responses_ended += self.out.streams.values().filter(|s| s.ended).count() as u64;
        self.totals.data_sent += self.out.data_total as u64;
        for (&code, &n) in &self.out.resets {
            *self.totals.resets_sent.entry(code).or_default() += n;
        }
        for (t, n) in self.totals.frames_received.iter_mut().zip(self.conn.stats().frames_received) {
            *t += n;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The soak.

/// Builds case `index`: its configuration, its input, and the rng the application uses.
fn make_case(seed: u64, index: u64) -> (Config, Vec<u8>, bool, Rng) {
    let mut rng = Rng::new(case_seed(seed, index));
    let valid = rng.chance(15);
    let cfg = random_config(&mut rng, valid);
    let scenario = generate(&mut rng, &cfg, !valid);
    let input = if valid {
        scenario.bytes()
    } else {
        let other = generate(&mut rng, &cfg, true);
        mutate(&mut rng, &scenario.frames, &other.frames)
    };
    (cfg, input, valid, rng)
}

fn run_case(cfg: Config, input: &[u8], valid: bool, rng: Rng, totals: &mut Totals) {
    if std::env::var("H2FLOW_FUZZ_TRACE").is_ok() {
        trace_input(&cfg, input);
    }
    let now = Instant::now();
    let conn = Connection::new(cfg.clone(), now).expect("random_config makes valid configurations");
    let mut case = Case {
        conn,
        cfg,
        now,
        rng,
        valid,
        fed: Vec::new(),
        shadow: Shadow::new(),
        out: Output::new(),
        app: BTreeMap::new(),
        totals,
        trace: std::env::var("H2FLOW_FUZZ_TRACE").is_ok(),
    };
    case.check();
    case.run(input);
}

#[test]
fn soak() {
    let seed = env_seed(DEFAULT_SEED);
    let secs = env_secs(DEFAULT_SECS);
    let only: Option<u64> = std::env::var("H2FLOW_FUZZ_CASE").ok().and_then(|s| s.parse().ok());
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut totals = Totals::default();
    let mut index = only.unwrap_or(0);
    loop {
        let made = catch_unwind(|| make_case(seed, index));
        let (cfg, input, valid, rng) = made.unwrap_or_else(|_| {
            panic!("generating case {index} failed; replay with H2FLOW_FUZZ_SEED={seed:x} H2FLOW_FUZZ_CASE={index}")
        });
        totals.cases += 1;
        totals.valid_cases += valid as u64;
        totals.bytes += input.len() as u64;
        let result = catch_unwind(AssertUnwindSafe(|| run_case(cfg, &input, valid, rng, &mut totals)));
        if result.is_err() {
            let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("fuzz_soak-{seed:x}-{index}.bin"));
            let saved = std::fs::write(&path, &input).map(|()| path.display().to_string());
            panic!(
                "case {index} failed (valid: {valid}); replay with H2FLOW_FUZZ_SEED={seed:x} \
                 H2FLOW_FUZZ_CASE={index}; input ({} bytes) saved: {saved:?}",
                input.len()
            );
        }
        index += 1;
        if only.is_some() || Instant::now() >= deadline {
            break;
        }
    }
    report(seed, secs, &totals);
    assert!(totals.cases > 0);
}

fn report(seed: u64, secs: f64, t: &Totals) {
    println!(
        "fuzz_soak: seed {seed:x}, {secs} s: {} inputs ({} unmutated), {} MB fed in {} recv calls, \
         {} application calls; {} requests, {} body bytes delivered, {} responses ended \
         with {} body bytes sent; {} connections ended by an error",
        t.cases,
        t.valid_cases,
        t.bytes / 1_000_000,
        t.recv_calls,
        t.api_calls,
        t.requests,
        t.body_bytes,
        t.responses_ended,
        t.data_sent,
        t.closed_cases
    );
    let names: Vec<String> =
        (0..=kind::COUNT).map(|k| format!("{}={}", kind::name(k as u8), t.frames_received[k])).collect();
    println!("  frames received: {}", names.join(" "));
    let resets: Vec<String> = t
        .resets_sent
        .iter()
        .map(|(&c, n)| format!("{}={n}", ErrorCode(c).name().unwrap_or("other")))
        .collect();
    println!("  RST_STREAM sent: {}", resets.join(" "));
    for (what, map) in [("connection errors", &t.connection_errors), ("stream errors", &t.stream_errors)] {
        println!("  {what} ({} distinct):", map.len());
        let mut errors: Vec<_> = map.iter().collect();
        errors.sort_by(|a, b| b.1.cmp(a.1));
        for (e, n) in errors {
            println!("    {n:>8}  {e}");
        }
    }
}

/// Prints a case's configuration and input frames (H2FLOW_FUZZ_TRACE=1), to debug a failure.
fn trace_input(cfg: &Config, input: &[u8]) {
    eprintln!("{cfg:?}");
    let mut pos = PREFACE.len().min(input.len());
    while let Some(head) = Head::parse(&input[pos..]) {
        let end = (pos + HEADER_LEN + head.length as usize).min(input.len());
        let payload = &input[pos + HEADER_LEN..end];
        let shown = &payload[..payload.len().min(24)];
        eprintln!("@{pos} {head:?} {shown:02x?}");
        pos = end;
    }
}
