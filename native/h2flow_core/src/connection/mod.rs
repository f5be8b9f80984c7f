//! The sans-IO connection: bytes in, events and bytes out, in the server role
//! ([`Connection::new`]) or the client role ([`Connection::new_client`]).
//!
//! The caller (the Elixir connection process, through the NIF) feeds received bytes with
//! [`Connection::recv`], takes the [`Event`]s it produced, registers the application's reads of
//! request bodies ([`Connection::read`]: the engine decides what a reader gets and credits it at
//! hand-off, see [`crate::scheduler`]), passes on what it wants to send
//! ([`Connection::send_headers`], [`Connection::send_data`]), and finally calls
//! [`Connection::flush`] once per burst of work to get everything to write in one buffer:
//! response frames, acknowledgements and the coalesced WINDOW_UPDATE frames decided by the
//! [`Scheduler`].
//!
//! The two roles share everything but what RFC 9113 makes them differ in (see `client.rs`):
//! the preface's direction, who opens streams, request vs response validation, PUSH_PROMISE
//! (refused either way: servers never get one, clients say SETTINGS_ENABLE_PUSH 0) and the
//! peer's concurrency limit, which a client honours by not opening streams beyond it. Codec,
//! HPACK, windows, the scheduler's crediting of what the application consumed, and the send
//! side are the same code.
//!
//! Peer misbehaviour never panics: a connection error queues GOAWAY and is returned from `recv`
//! (the caller writes what `flush` returns and closes); a stream error queues RST_STREAM, reports
//! [`Event::StreamError`] for a stream the application knows, and processing goes on.

mod client;
mod recv;
mod send;
mod upgrade;

use std::collections::VecDeque;
use std::time::Instant;

use crate::config::Config;
use crate::error::{Error, ErrorCode};
use crate::fields::{RequestInfo, ResponseInfo};
use crate::flow::{TokenBucket, Window};
use crate::frame::{self, setting, DEFAULT_MAX_FRAME_SIZE};
use crate::hpack::{Decoder, Encoder, HeaderList};
use crate::scheduler::{ReadStatus, Scheduler, DEFAULT_WINDOW};
use crate::stats::Stats;
use crate::stream::{ClosedStreams, State};
use crate::IdMap;

pub use client::Request;
pub use send::{SendError, Sent};

/// Which end of the connection the engine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Accepts streams the peer opens (requests) and answers them.
    Server,
    /// Opens streams (requests, [`Connection::send_request`]) and receives their responses.
    Client,
}

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Where the bytes of a DATA payload are: a range of the input passed to the `recv` call that
/// produced the event (no copy), or an owned copy when the frame straddled two `recv` calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    Input { start: usize, len: usize },
    Owned(Vec<u8>),
}

impl Payload {
    pub fn len(&self) -> usize {
        match self {
            Payload::Input { len, .. } => *len,
            Payload::Owned(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, given the input of the `recv` call that produced this payload.
    pub fn resolve<'a>(&'a self, input: &'a [u8]) -> &'a [u8] {
        match self {
            Payload::Input { start, len } => input.get(*start..start + len).unwrap_or(&[]),
            Payload::Owned(v) => v,
        }
    }
}

/// What the peer did, for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new request: its validated header fields (pseudo-headers first) and what validation
    /// found in them; [`crate::fields::RequestHead::new`] gives the application's view.
    Headers { stream_id: u32, fields: HeaderList, info: RequestInfo, end_stream: bool },
    /// Client role: a response to a request we sent, informational (`info.status` 1xx, more may
    /// follow) or final; its validated header fields, `:status` first.
    Response { stream_id: u32, fields: HeaderList, info: ResponseInfo, end_stream: bool },
    /// Request body bytes for the stream's application (none are reported for a stream whose
    /// application will not read, see [`Connection::discard`]). `end_stream`: the body ended.
    /// Whether they are the application's to keep or still count against the windows is the
    /// engine's business: [`Event::ReadDone`] tells when a registered read is complete.
    Data { stream_id: u32, data: Payload, end_stream: bool },
    /// The registered read of this stream is complete: the body ended (`fin`), or the read was
    /// handed its length.
    ReadDone { stream_id: u32, fin: bool },
    /// Trailer fields; the body ended with them.
    Trailers { stream_id: u32, fields: HeaderList },
    /// The peer reset the stream.
    StreamReset { stream_id: u32, code: ErrorCode },
    /// The peer broke the protocol on this stream; we reset it.
    StreamError { stream_id: u32, code: ErrorCode, message: String },
    /// The peer is going away; streams up to `last_stream_id` may complete.
    GoAway { last_stream_id: u32, code: ErrorCode, debug: Payload },
    /// The stream may take more response bytes: its queue (and the connection's) fell below
    /// their limits after a send reported `blocked`.
    SendWindowOpen { stream_id: u32 },
    /// The stream had response bytes queued and the peer let none of them go for
    /// `send_stall_timeout`: we reset it (CANCEL).
    SendTimeout { stream_id: u32 },
}

/// Per-stream state that is not receive flow control (that lives in the scheduler).
#[derive(Debug)]
pub(crate) struct Stream {
    pub state: State,
    /// Declared content-length of what the peer sends, and DATA bytes received so far (§8.1.1).
    pub content_length: Option<u64>,
    pub received: u64,
    /// The application was told about this stream (Headers event).
    pub announced: bool,
    /// The request said `expect: 100-continue` and no response has gone out yet: the first
    /// read sends `100 Continue` (RFC 9110 10.1.1), as Cowboy's `read_body` does.
    pub expect_continue: bool,
    /// The peer's head arrived: its request (server role, always) or its final response
    /// (client role); DATA before it is malformed (§8.1).
    pub peer_head: bool,
    /// Client role: the request was HEAD, so its response has no content (RFC 9110 9.3.2).
    pub head_request: bool,
    pub send: send::SendState,
}

/// A header block being assembled from HEADERS + CONTINUATION frames.
#[derive(Debug)]
struct HeaderBlock {
    stream_id: u32,
    end_stream: bool,
    self_dependent: bool,
    frames: u32,
    buf: Vec<u8>,
}

/// The peer's SETTINGS that matter to us.
#[derive(Clone, Copy, Debug)]
struct PeerSettings {
    initial_window_size: u32,
    max_frame_size: u32,
    /// SETTINGS_MAX_CONCURRENT_STREAMS: the streams we may open (client role).
    max_concurrent_streams: u32,
    /// Its first SETTINGS arrived.
    seen: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Matching the client preface; the number of its bytes seen so far.
    Preface(usize),
    /// The preface arrived; the next frame must be SETTINGS (§3.4).
    FirstSettings,
    Open,
    /// A connection error happened; GOAWAY is queued, input is ignored.
    Closed,
}

/// An HTTP/2 connection, server or client side.
pub struct Connection {
    cfg: Config,
    role: Role,
    phase: Phase,
    /// A partial frame carried over from the previous `recv`.
    partial: Vec<u8>,
    block: Option<HeaderBlock>,
    decoder: Decoder,
    encoder: Encoder,
    streams: IdMap<Stream>,
    closed: ClosedStreams,
    /// Highest client stream id seen (opened, refused or rejected), or, in the client role,
    /// opened by us: client streams are the odd ones in both roles (§5.1.1).
    last_client_id: u32,
    /// Highest stream id we accepted (for a GOAWAY that lets accepted streams finish).
    last_accepted_id: u32,
    peer: PeerSettings,
    send_window: Window,
    /// Data waits for the connection send window (a stall, counted once until it opens).
    conn_stalled: bool,
    /// Streams with something to send, in round-robin order.
    ready: VecDeque<u32>,
    queued_total: u64,
    scheduler: Scheduler,
    /// When each SETTINGS we sent and the peer has not acknowledged was sent.
    settings_unacked: VecDeque<Instant>,
    /// Our first SETTINGS (the concurrency limit) was acknowledged.
    settings_acked: bool,
    refused_before_ack: u32,
    queued_acks: u32,
    probe_payload: Option<[u8; 8]>,
    probes: u64,
    goaway_sent: Option<u32>,
    goaway_received: Option<u32>,
    peer_resets: TokenBucket,
    empty_frames: TokenBucket,
    refused_streams: TokenBucket,
    local_resets: TokenBucket,
    events: Vec<Event>,
    output: Vec<u8>,
    stats: Stats,
    /// A sender was told to wait: [`Connection::wake_senders`] tells it when it may go on.
    senders_waiting: bool,
    /// Our preface is still to be written (by the first flush), with the credit that opens
    /// the connection window.
    preface_due: bool,
    initial_credit: Option<u32>,
    /// The time of the last call that told it (send-side stall accounting).
    now: Instant,
    /// When a DATA frame last went out (or the connection started).
    last_data_sent: Instant,
}

impl Connection {
    /// A new connection; its server preface (SETTINGS, then the WINDOW_UPDATE that opens the
    /// connection window) goes out with the first [`Connection::flush`] (and is counted then: a
    /// connection closed before it flushes has sent nothing).
    pub fn new(cfg: Config, now: Instant) -> Result<Connection, &'static str> {
        Connection::with_role(cfg, now, Role::Server)
    }

    /// A new client connection: its preface (the connection preface, SETTINGS with
    /// SETTINGS_ENABLE_PUSH 0, the WINDOW_UPDATE that opens the connection window) goes out
    /// with the first [`Connection::flush`]; requests go out with [`Connection::send_request`].
    /// `cfg.max_concurrent_streams` bounds the streams it opens at once, besides the server's
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub fn new_client(cfg: Config, now: Instant) -> Result<Connection, &'static str> {
        Connection::with_role(cfg, now, Role::Client)
    }

    fn with_role(cfg: Config, now: Instant, role: Role) -> Result<Connection, &'static str> {
        cfg.validate()?;
        let mut window_cfg = cfg.window.clone();
        window_cfg.max_frame_size = cfg.max_frame_size;
        let mut conn = Connection {
            role,
            // A server first reads the client's preface; a client, the server's SETTINGS (§3.4).
            phase: if role == Role::Server { Phase::Preface(0) } else { Phase::FirstSettings },
            partial: Vec::new(),
            block: None,
            decoder: Decoder::new(cfg.header_table_size, cfg.max_header_list_size),
            encoder: Encoder::new(),
            streams: IdMap::default(),
            closed: ClosedStreams::new(cfg.closed_stream_memory.max(4 * cfg.max_concurrent_streams) as usize),
            last_client_id: 0,
            last_accepted_id: 0,
            peer: PeerSettings {
                initial_window_size: DEFAULT_WINDOW,
                max_frame_size: DEFAULT_MAX_FRAME_SIZE,
                max_concurrent_streams: client::ASSUMED_MAX_CONCURRENT_STREAMS,
                seen: false,
            },
            send_window: Window::new(DEFAULT_WINDOW),
            conn_stalled: false,
            ready: VecDeque::new(),
            queued_total: 0,
            scheduler: Scheduler::new(window_cfg),
            settings_unacked: VecDeque::new(),
            settings_acked: false,
            refused_before_ack: 0,
            queued_acks: 0,
            probe_payload: None,
            probes: 0,
            goaway_sent: None,
            goaway_received: None,
            peer_resets: bucket(cfg.peer_resets),
            empty_frames: bucket(cfg.empty_frames),
            refused_streams: bucket(cfg.refused_streams),
            local_resets: bucket(cfg.local_resets),
            events: Vec::new(),
            output: Vec::with_capacity(4096),
            stats: Stats::default(),
            senders_waiting: false,
            preface_due: true,
            initial_credit: None,
            now,
            last_data_sent: now,
            cfg,
        };
        // A client may use the window we are about to give it before it reads our preface; it
        // is counted as sent with the first flush.
        conn.initial_credit = conn.scheduler.grant_initial_credit();
        Ok(conn)
    }

    fn write_preface(&mut self, now: Instant) {
        let c = &self.cfg;
        let mut params = match self.role {
            Role::Server => vec![(setting::MAX_CONCURRENT_STREAMS, c.max_concurrent_streams)],
            Role::Client => {
                self.output.extend_from_slice(PREFACE);
                vec![(setting::ENABLE_PUSH, 0)]
            }
        };
        params.push((setting::MAX_HEADER_LIST_SIZE, c.max_header_list_size));
        if c.window.initial_stream_window != DEFAULT_WINDOW {
            params.push((setting::INITIAL_WINDOW_SIZE, c.window.initial_stream_window));
        }
        if c.max_frame_size != DEFAULT_MAX_FRAME_SIZE {
            params.push((setting::MAX_FRAME_SIZE, c.max_frame_size));
        }
        if c.header_table_size != 4096 {
            params.push((setting::HEADER_TABLE_SIZE, c.header_table_size));
        }
        self.write_settings(&params, now);
        if let Some(credit) = self.initial_credit.take() {
            self.write_window_update(0, credit);
            self.scheduler.initial_credit_sent(credit);
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Feeds received bytes. Events accumulate until [`Connection::take_events`]; `Payload::Input`
    /// ranges refer to this call's `input`, so take the events before the next `recv`.
    ///
    /// On a connection error the GOAWAY is queued for the next flush and the error is returned;
    /// later input is ignored.
    pub fn recv(&mut self, input: &[u8], now: Instant) -> Result<(), Error> {
        if self.phase == Phase::Closed {
            return Ok(());
        }
        self.stats.bytes_received += input.len() as u64;
        self.now = now;
        let result = self.recv_inner(input, now);
        match result {
            Ok(()) => {
                self.pump();
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The events produced since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Drains the events produced since the last call, keeping the buffer's allocation.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// The application consumed `n` body bytes of a stream: they become credit for the peer.
    /// Consuming on a stream that is gone is a no-op; more than was received is a caller bug.
    /// Applications that register reads ([`Connection::read`]) never need it.
    pub fn consume(&mut self, stream_id: u32, n: u64) -> Result<(), SendError> {
        self.scheduler
            .consume(stream_id, n)
            .map_err(|_| SendError::Misuse("consumed more bytes than were received"))
    }

    /// The application reads the body of a stream, up to `length` bytes (see
    /// [`crate::scheduler`], rule 8): the bytes reported in [`Event::Data`] and not yet handed
    /// over are handed over now. Returns whether that completes the read; if it returns
    /// [`ReadStatus::Wait`], an [`Event::ReadDone`] tells when it completes; [`ReadStatus::Fin`]
    /// for a request whose body ended (or that had none). `None` when the stream is gone: reset,
    /// or ended both ways so long ago that it was forgotten (`closed_stream_memory`).
    pub fn read(&mut self, stream_id: u32, length: u64) -> Option<ReadStatus> {
        if let Some(s) = self.streams.get_mut(&stream_id).filter(|s| s.expect_continue) {
            s.expect_continue = false;
            if !s.send.headers_sent && s.state.we_may_send() && s.state.peer_may_send() {
                self.write_header_block(stream_id, [(&b":status"[..], &b"100"[..])], false);
            }
        }
        if let Some(status) = self.scheduler.read(stream_id, length) {
            return Some(status);
        }
        // The scheduler forgets a stream once its body ended and was all handed over.
        let ended = match self.streams.get(&stream_id) {
            Some(s) => !s.state.peer_may_send(),
            None => self.closed.get(stream_id) == Some(crate::stream::Closed::EndStream),
        };
        ended.then_some(ReadStatus::Fin)
    }

    /// The period of the stream's registered read expired: it completes with what it was
    /// handed so far. `false` when no read was registered (it had completed already).
    pub fn read_timeout(&mut self, stream_id: u32) -> bool {
        self.scheduler.read_timeout(stream_id)
    }

    /// The application will not read the rest of this stream's body (its handler is done):
    /// what is buffered and what still arrives is credited at once, and no more [`Event::Data`]
    /// is reported. Once our response has ended, a body still coming is not wanted: RST_STREAM
    /// NO_ERROR (RFC 9113 8.1).
    pub fn discard(&mut self, stream_id: u32) {
        self.scheduler.discard(stream_id);
        if self.streams.get(&stream_id).is_some_and(|s| s.state == State::HalfClosedLocal)
            && !self.is_closed()
        {
            self.reset(stream_id, ErrorCode::NO_ERROR);
        }
    }

    /// Everything to write now, in one buffer: queued frames, acknowledgements, and the
    /// WINDOW_UPDATE credits that are due (at most one for the connection and one per stream).
    pub fn flush(&mut self, now: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        self.flush_into(now, &mut out);
        out
    }

    /// Like [`Connection::flush`], appending to `dst`.
    pub fn flush_into(&mut self, now: Instant, dst: &mut Vec<u8>) {
        self.now = now;
        if self.preface_due {
            // Ahead of anything else this flush writes: the SETTINGS frame must come first.
            self.preface_due = false;
            let queued = std::mem::take(&mut self.output);
            self.write_preface(now);
            self.output.extend_from_slice(&queued);
        }
        if self.phase != Phase::Closed {
            self.pump();
            let mut credits = Vec::new();
            self.scheduler.flush(|id, credit| credits.push((id, credit)));
            for (id, credit) in credits {
                self.write_window_update(id, credit);
            }
            if self.phase == Phase::Open && self.scheduler.wants_probe(now) {
                self.send_probe(now);
            }
        }
        self.queued_acks = 0;
        if !self.output.is_empty() {
            self.stats.flushes += 1;
            self.stats.bytes_sent += self.output.len() as u64;
            if dst.is_empty() {
                std::mem::swap(dst, &mut self.output);
            } else {
                dst.append(&mut self.output);
            }
        }
    }

    /// Whether output is waiting for a flush.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// Starts a graceful shutdown: GOAWAY with the last stream id we saw, so streams already
    /// opened complete and new ones are ignored (§6.8). A client opens no stream after it.
    pub fn goaway(&mut self, code: ErrorCode, debug: &[u8]) {
        if self.phase == Phase::Closed {
            return;
        }
        self.send_goaway(self.last_peer_stream(), code, debug);
    }

    /// The last stream the peer opened that we processed, for our GOAWAY: a client's peer
    /// opens none (no push).
    fn last_peer_stream(&self) -> u32 {
        match self.role {
            Role::Server => self.last_client_id,
            Role::Client => 0,
        }
    }

    fn send_goaway(&mut self, last_stream_id: u32, code: ErrorCode, debug: &[u8]) {
        let last = self.goaway_sent.map_or(last_stream_id, |prev| prev.min(last_stream_id));
        self.goaway_sent = Some(last);
        // The frame must fit the peer's SETTINGS_MAX_FRAME_SIZE (RFC 9113 4.2) whatever debug
        // data the application passes; 8 octets are the last stream id and the code.
        let debug = debug.get(..self.peer.max_frame_size as usize - 8).unwrap_or(debug);
        self.write_frame(frame::Frame::GoAway(frame::GoAway {
            last_stream_id: last,
            error_code: code,
            debug_data: debug,
        }));
    }

    /// A connection error: GOAWAY with the error and its message, and stop processing.
    fn fail(&mut self, e: Error) -> Error {
        if self.phase != Phase::Closed {
            let last = self.last_peer_stream();
            self.stats.count_connection_error(e.code());
            self.send_goaway(last, e.code(), e.message().as_bytes());
            self.phase = Phase::Closed;
        }
        e
    }

    /// The timeouts the engine keeps, checked on the caller's clock:
    ///
    /// - SETTINGS_TIMEOUT (§6.5.3): our SETTINGS unacknowledged for longer than
    ///   `settings_timeout` is a connection error (GOAWAY queued, error returned);
    /// - send stalls: a stream whose queued response bytes the peer let none of go for
    ///   `send_stall_timeout` is reset (CANCEL, [`Event::SendTimeout`]); if no DATA at all went
    ///   out on the connection for that long either, the peer keeps every stream stalled and the
    ///   connection ends (GOAWAY NO_ERROR queued, error returned).
    pub fn check_timeouts(&mut self, now: Instant) -> Result<(), Error> {
        self.now = now;
        if self.phase == Phase::Closed {
            return Ok(());
        }
        if let Some(&sent) = self.settings_unacked.front() {
            if now.saturating_duration_since(sent) > self.cfg.settings_timeout {
                let e = Error::connection(
                    ErrorCode::SETTINGS_TIMEOUT,
                    "SETTINGS not acknowledged in time (RFC 9113 6.5.3)",
                );
                return Err(self.fail(e));
            }
        }
        let limit = self.cfg.send_stall_timeout;
        let mut stalled: Vec<u32> = self
            .streams
            .iter()
            .filter(|(_, s)| s.send.stalled_since().is_some_and(|t| now.saturating_duration_since(t) > limit))
            .map(|(&id, _)| id)
            .collect();
        stalled.sort_unstable();
        if stalled.is_empty() {
            return Ok(());
        }
        for &id in &stalled {
            self.stats.send_timeouts += 1;
            self.reset(id, ErrorCode::CANCEL);
            self.events.push(Event::SendTimeout { stream_id: id });
        }
        if now.saturating_duration_since(self.last_data_sent) > limit {
            let e = Error::connection(
                ErrorCode::NO_ERROR,
                "the peer opened no flow-control window for send_stall_timeout",
            );
            return Err(self.fail(e));
        }
        Ok(())
    }

    /// When the oldest unacknowledged SETTINGS was sent.
    pub fn settings_unacked_since(&self) -> Option<Instant> {
        self.settings_unacked.front().copied()
    }

    /// A GOAWAY was sent (graceful or not) or received, and no stream is open: the caller may
    /// close the connection once it has written the last flush.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Closed
            || ((self.goaway_sent.is_some() || self.goaway_received.is_some()) && self.streams.is_empty())
    }

    /// A connection error occurred; only the final flush remains to be written.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Streams open or half-closed (§5.1.2 counts these against the limit).
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Bytes received and not yet consumed by the application.
    pub fn buffered(&self) -> u64 {
        self.scheduler.buffered()
    }

    /// Response bytes queued, waiting for flow-control window.
    pub fn queued(&self) -> u64 {
        self.queued_total
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// The connection send window (what we may still send).
    pub fn send_window(&self) -> i64 {
        self.send_window.get()
    }

    /// A stream's send window, if the stream is open.
    pub fn stream_send_window(&self, id: u32) -> Option<i64> {
        self.streams.get(&id).map(|s| s.send.window.get())
    }

    /// A stream's state, if it is open or half-closed.
    pub fn stream_state(&self, id: u32) -> Option<State> {
        self.streams.get(&id).map(|s| s.state)
    }

    /// The peer's SETTINGS_MAX_FRAME_SIZE.
    pub fn peer_max_frame_size(&self) -> u32 {
        self.peer.max_frame_size
    }

    fn write_frame(&mut self, f: frame::Frame<'_>) {
        self.stats.count_sent(f.kind());
        f.encode(&mut self.output);
    }

    fn write_window_update(&mut self, stream_id: u32, increment: u32) {
        self.write_frame(frame::Frame::WindowUpdate(frame::WindowUpdate { stream_id, increment }));
    }

    fn write_settings(&mut self, params: &[(u16, u32)], now: Instant) {
        self.stats.count_sent(frame::kind::SETTINGS);
        frame::Settings::encode_params(params, &mut self.output);
        self.settings_unacked.push_back(now);
    }

    fn send_probe(&mut self, now: Instant) {
        self.probes += 1;
        let mut data = *b"h2flow\0\0";
        // ok: an 8-byte array.
        data[6..].copy_from_slice(&(self.probes as u16).to_be_bytes());
        self.probe_payload = Some(data);
        self.stats.pings_sent += 1;
        self.write_frame(frame::Frame::Ping(frame::Ping { ack: false, data }));
        self.scheduler.ping_sent(now);
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("phase", &self.phase)
            .field("open_streams", &self.streams.len())
            .field("last_client_id", &self.last_client_id)
            .field("send_window", &self.send_window)
            .field("buffered", &self.scheduler.buffered())
            .finish_non_exhaustive()
    }
}

fn bucket(rate: crate::config::Rate) -> TokenBucket {
    TokenBucket::new(rate.burst, rate.per_second)
}
