//! The sans-IO HTTP/1.x server connection (RFC 9112), beside the HTTP/2 one and with the same
//! shape: bytes in, events and bytes out.
//!
//! The caller feeds what it read with [`Connection::recv`] and takes the [`Event`]s; the
//! application answers each request with [`Connection::send_headers`] and
//! [`Connection::send_body`] (the same calls as HTTP/2: `:status` first, `end_stream`, at most
//! what the send queue has room for), and reads a body the way it does over HTTP/2
//! ([`Connection::read`]: it registers a read of up to `length` bytes, the engine hands it every
//! byte held and what arrives while it waits, and reports [`Event::ReadDone`] when the body has
//! ended or `length` bytes were handed over; the first read writes `100 Continue` if the client
//! waits for it). Applications that do not register reads say how much they consumed
//! ([`Connection::consume`]). The caller writes what [`Connection::flush`] returns, one buffer
//! per burst of work, and takes the events again (a flush can resume parsing input held back,
//! and reports senders that may go on).
//!
//! Requests are numbered from 1 in arrival order. Pipelined requests are parsed and announced
//! as they arrive, up to `max_pipelined` unanswered ones, and answered in order: a response is
//! written as soon as every earlier one is complete, and queued in the engine until then.
//!
//! Back-pressure, both ways:
//! - request bodies are reported as they arrive (ranges of the `recv` input, no copy); bytes no
//!   read asked for are held, and [`Connection::wants_input`] turns false while they reach
//!   `max_body_buffer`, or while `max_pipelined` requests wait for their responses: the caller
//!   then stops reading the socket and TCP's window stops the client. Bytes a read asked for
//!   are the application's (as over HTTP/2). Input the engine holds back is at most one read
//!   plus a partial head (`max_header_section`);
//! - [`Connection::send_body`] takes at most what the request's send queue (`max_send_queue`)
//!   has room for and says when it is full; the application then waits for
//!   [`Event::Writable`], which comes once a flush has handed the bytes to the caller (whose
//!   socket write blocks while the client does not read).
//!
//! The engine chooses the response framing: Content-Length when the application gives one,
//! chunked for an HTTP/1.1 response without one, and for HTTP/1.0 the end of the connection.
//! It keeps the connection (RFC 9112 §9.3) unless the request or the application said `close`,
//! an HTTP/1.0 request did not ask for keep-alive, or the rest of an unread request body cannot
//! be discarded (`max_discard`; or the client waits for a `100 Continue` that was never sent,
//! RFC 9110 §10.1.1).
//!
//! A request that breaks the protocol is refused with the status of its [`Reject`] kind and a
//! message citing the RFC, after the responses before it, and the connection closes: see
//! [`error`]. A request that asks for h2c is answered `101 Switching Protocols` and handed over
//! as [`Event::Upgrade`]: see [`upgrade`].

mod chunked;
mod config;
mod detect;
pub mod error;
mod head;
mod recv;
mod response;
mod send;
mod stats;
mod target;
pub mod upgrade;

use std::collections::VecDeque;
use std::time::Instant;

use crate::hpack::HeaderList;

// A send's outcome is the HTTP/2 engine's: `Queued` (bytes not yet handed to the socket; at
// `max_send_queue` or more, wait for [`Event::Writable`]), `Accepted` (`send_body` took the first
// `taken` bytes), `StreamClosed` (the request is gone, counted in `writes_to_closed`).
pub use crate::connection::{Payload, SendError, Sent};
pub use crate::scheduler::ReadStatus;
pub use config::Config;
pub use detect::{detect, Detected};
pub use error::{Reject, Rejected};
pub use stats::Stats;
pub use upgrade::Upgrade;

/// The request's HTTP version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// What the peer did, for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A request: its fields, as HTTP/2 has them (`:method`, `:scheme`, `:authority` when known,
    /// `:path`), then every field line with its name lowercased; `content_length` as framed
    /// (`None` for a chunked body). `end_stream`: it has no body.
    Request { id: u64, version: Version, fields: HeaderList, content_length: Option<u64>, end_stream: bool },
    /// Request body bytes. An empty payload with `end_stream` marks the end of the body.
    Data { id: u64, data: Payload, end_stream: bool },
    /// The request's registered read ([`Connection::read`]) completed: the body ended (`fin`),
    /// or the read was handed its length. Follows the data events that completed it.
    ReadDone { id: u64, fin: bool },
    /// The body ended with these trailer fields (names lowercased).
    Trailers { id: u64, fields: HeaderList },
    /// The request's unwritten response bytes were handed to the caller: its sender may go on.
    Writable { id: u64 },
    /// The connection closes before this request is answered (an earlier response closed it,
    /// or its own body broke the protocol): stop its handler; sends return `StreamClosed`.
    Cancelled { id: u64 },
    /// `101 Switching Protocols` is queued: flush it, then continue with the HTTP/2 engine
    /// ([`crate::Connection::from_upgrade`]), feeding it `rest` and every later read. This
    /// engine is done: it ignores further input.
    Upgrade(Box<Upgrade>),
}

/// How the request body is decoded.
#[derive(Debug)]
enum BodyDecoder {
    Length(u64),
    Chunked(Box<chunked::Decoder>),
}

/// What becomes of request body bytes.
#[derive(Debug)]
enum BodyMode {
    /// Handed to the application.
    Deliver,
    /// Thrown away (the response is complete); `budget` bytes more at most, then the
    /// connection closes; `keep_alive`: the next request may follow.
    Discard { budget: u64, keep_alive: bool },
    /// Kept for the HTTP/2 engine (h2c upgrade).
    Collect(Box<PendingUpgrade>),
}

#[derive(Debug)]
struct PendingUpgrade {
    settings: Vec<(u16, u32)>,
    fields: HeaderList,
    body: Vec<u8>,
}

/// Where the next input bytes go.
#[derive(Debug)]
enum Input {
    /// A request head (or the empty lines before one).
    Head,
    Body {
        id: u64,
        decoder: BodyDecoder,
        mode: BodyMode,
    },
    /// Nothing more is read: the connection closes once the pipeline is answered.
    Closed,
    /// The connection switched to HTTP/2.
    Upgraded,
}

/// `Expect: 100-continue` (RFC 9110 §10.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Continue {
    No,
    /// The client waits for it; written when the application first reads the body.
    Expected,
    Sent,
}

/// How the response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// Content-Length; the bytes still to send.
    Length(u64),
    Chunked,
    /// HTTP/1.0 without Content-Length: the end of the connection ends the body.
    Close,
    /// HEAD, 204, 304: no body whatever the application sends.
    NoBody,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resp {
    /// No final response head yet.
    Pending,
    Body(Framing),
    Done,
}

/// A read registered by the application ([`Connection::read`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Read {
    length: u64,
    handed: u64,
}

/// A request and its response, from its head until its response is complete.
#[derive(Debug)]
struct Exchange {
    id: u64,
    version: Version,
    is_head: bool,
    /// The request allows the connection to persist.
    keep_alive: bool,
    expect: Continue,
    body_done: bool,
    body_started: bool,
    /// Body bytes reported and not yet consumed or handed to a read.
    handed: u64,
    /// A registered read: its length and what it was handed so far.
    read: Option<Read>,
    /// The application will not read the rest of the body: it is dropped as it arrives.
    discarded: bool,
    resp: Resp,
    /// Response bytes waiting for every earlier response to complete.
    queue: Vec<u8>,
    /// The sender was told to wait: send `Writable` when its bytes are handed out.
    notify: bool,
    /// The connection closes after this response.
    close_after: bool,
    /// The application may not send any more (told by `Cancelled`, or it aborted).
    cancelled: bool,
    /// An answer the engine wrote itself (a refused request): no application behind it.
    synthetic: bool,
}

/// A server-side HTTP/1.x connection.
pub struct Connection {
    cfg: Config,
    input: Input,
    scan: head::Scan,
    /// A partial request head carried over from earlier `recv` calls.
    head_buf: Vec<u8>,
    /// A CR among the empty lines before a request line ended the last input.
    leading_cr: bool,
    /// Input not processed because the engine was blocked (pipeline full).
    held: Vec<u8>,
    pipeline: VecDeque<Exchange>,
    next_id: u64,
    /// Requests from this id on were cancelled (a cancellation stops reading, so they are
    /// always the last ones); earlier ones that are gone were answered.
    cancelled_from: u64,
    /// Body bytes handed out and not consumed, over all requests.
    buffered: u64,
    /// When the current head started (the connection's start for the first one).
    head_started: Option<Instant>,
    /// A byte of the current head (empty lines included) arrived.
    head_bytes_seen: bool,
    idle_since: Option<Instant>,
    /// A graceful shutdown was asked for.
    draining: bool,
    /// An h2c upgrade whose request is complete, waiting for the rest of the input.
    upgrade_ready: Option<Box<PendingUpgrade>>,
    events: Vec<Event>,
    output: Vec<u8>,
    stats: Stats,
}

impl Connection {
    /// A new connection, waiting for its first request (within `header_timeout` of `now`).
    pub fn new(cfg: Config, now: Instant) -> Result<Connection, &'static str> {
        cfg.validate()?;
        Ok(Connection {
            cfg,
            input: Input::Head,
            scan: head::Scan::request(),
            head_buf: Vec::new(),
            leading_cr: false,
            held: Vec::new(),
            pipeline: VecDeque::new(),
            next_id: 1,
            cancelled_from: u64::MAX,
            buffered: 0,
            head_started: Some(now),
            head_bytes_seen: false,
            idle_since: None,
            draining: false,
            upgrade_ready: None,
            events: Vec::new(),
            output: Vec::new(),
            stats: Stats::default(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The events produced since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Drains the events produced since the last call, keeping the buffer's allocation.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// Whether the engine wants more socket input now. False while the application holds
    /// `max_body_buffer` unconsumed body bytes, while `max_pipelined` requests wait for their
    /// responses, while input is held back, and once the connection reads no more.
    pub fn wants_input(&self) -> bool {
        if !self.held.is_empty() {
            return false;
        }
        // A head may be followed by its body in the same read: the body bound applies to heads too.
        let room = self.buffered < self.cfg.max_body_buffer;
        match &self.input {
            Input::Head => room && !self.pipeline_full(),
            Input::Body { mode: BodyMode::Deliver, .. } => room,
            Input::Body { .. } => true,
            Input::Closed | Input::Upgraded => false,
        }
    }

    /// Input was held back and can be processed now: [`Connection::flush`] (or
    /// [`Connection::poll`]) will.
    pub fn has_pending_input(&self) -> bool {
        !self.held.is_empty() && !self.blocked()
    }

    /// Nothing more will be read or written: close the socket once the last flush is written.
    pub fn is_done(&self) -> bool {
        matches!(self.input, Input::Closed | Input::Upgraded)
            && self.pipeline.is_empty()
            && self.output.is_empty()
    }

    /// The connection reads no more requests (it closes once the pipeline is answered).
    pub fn is_closing(&self) -> bool {
        matches!(self.input, Input::Closed | Input::Upgraded)
    }

    /// Whether output is waiting for a flush.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// Requests announced and not yet answered completely.
    pub fn pipelined(&self) -> usize {
        self.pipeline.iter().filter(|e| !e.synthetic).count()
    }

    /// Body bytes handed out and not consumed.
    pub fn buffered(&self) -> u64 {
        self.buffered
    }

    /// Response bytes not yet handed to the caller: the unflushed output and the responses
    /// waiting for earlier ones.
    pub fn queued(&self) -> u64 {
        self.output.len() as u64 + self.pipeline.iter().map(|e| e.queue.len() as u64).sum::<u64>()
    }

    /// Input held back by the engine (partial head included).
    pub fn held_input(&self) -> usize {
        self.held.len() + self.head_buf.len()
    }

    /// When [`Connection::check_timeouts`] has something to do next, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        if !matches!(self.input, Input::Head) {
            return None;
        }
        let header = self.head_started.map(|t| t + self.cfg.header_timeout);
        let idle = self.idle_since.map(|t| t + self.cfg.keepalive_timeout);
        match (header, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The header timeout (slowloris) and the keep-alive timeout. A head that started and did
    /// not complete in time is answered 408 and the connection closes (the error is
    /// returned); a connection on which nothing arrived closes silently.
    pub fn check_timeouts(&mut self, now: Instant) -> Result<(), Rejected> {
        if !matches!(self.input, Input::Head) {
            return Ok(());
        }
        if let Some(t) = self.head_started {
            if now.saturating_duration_since(t) > self.cfg.header_timeout {
                if self.head_bytes_seen {
                    let r = Rejected::new(
                        Reject::HeaderTimeout,
                        "the request head did not arrive in time (RFC 9110 15.5.9)",
                    );
                    self.refuse(r);
                    return Err(r);
                }
                self.stats.idle_timeouts += 1;
                self.close_input();
                return Ok(());
            }
        }
        if let Some(t) = self.idle_since {
            if now.saturating_duration_since(t) > self.cfg.keepalive_timeout {
                self.stats.idle_timeouts += 1;
                self.close_input();
            }
        }
        Ok(())
    }

    /// Starts a graceful shutdown: no new request is read; those already announced are
    /// answered (the last one with `Connection: close`), then the connection is done.
    pub fn shutdown(&mut self) {
        self.draining = true;
        if matches!(self.input, Input::Head) {
            self.close_input();
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn pipeline_full(&self) -> bool {
        self.pipeline.len() >= self.cfg.max_pipelined
    }

    /// Input cannot be processed now: a new head would exceed the pipeline limit.
    fn blocked(&self) -> bool {
        matches!(self.input, Input::Head) && self.pipeline_full()
    }

    fn index(&self, id: u64) -> Option<usize> {
        self.pipeline.iter().position(|e| e.id == id && !e.synthetic)
    }

    /// Stops reading: what is held or partial is dropped.
    fn close_input(&mut self) {
        if !matches!(self.input, Input::Upgraded) {
            self.input = Input::Closed;
        }
        self.held = Vec::new();
        self.head_buf = Vec::new();
        self.idle_since = None;
        self.head_started = None;
    }

    /// Ready for the next request head.
    fn enter_head(&mut self) {
        if self.draining {
            self.close_input();
            return;
        }
        self.input = Input::Head;
        self.scan = head::Scan::request();
        self.head_buf.clear();
        self.leading_cr = false;
        self.head_started = None;
        self.head_bytes_seen = false;
    }

    fn note_peaks(&mut self) {
        let queued = self.queued();
        let s = &mut self.stats;
        s.peak_queued = s.peak_queued.max(queued);
        s.peak_buffered = s.peak_buffered.max(self.buffered);
        s.peak_pipelined = s.peak_pipelined.max(self.pipeline.len() as u64);
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("http1::Connection")
            .field("input", &self.input)
            .field("pipelined", &self.pipeline.len())
            .field("buffered", &self.buffered)
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}
