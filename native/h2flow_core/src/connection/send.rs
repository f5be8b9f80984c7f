//! Sending: response headers, DATA cut to the peer's frame size and windows, released
//! round-robin across streams as windows open, trailers after the last byte, and resets.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::{Connection, Event};
use crate::error::{Error, ErrorCode};
use crate::fields;
use crate::flow::Window;
use crate::frame::{self, Frame, RstStream};
use crate::hpack::HeaderList;
use crate::stream::{Closed, State};

/// The outcome of a send the engine accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Accepted; this many bytes of the stream wait for flow-control window.
    Queued(u64),
    /// [`Connection::send_body`]: `taken` bytes of the body were accepted (framed, or queued for window); the rest of it,
    /// and the END_STREAM, are the caller's to send again. `blocked`: the stream's queue or the
    /// connection's is at its limit; wait for [`Event::SendWindowOpen`] before sending more.
    Accepted { taken: usize, blocked: bool },
    /// The stream is gone (reset by the peer, or the connection is closing): nothing was sent.
    /// A normal outcome, counted in `writes_to_closed_streams`.
    StreamClosed,
}

/// Caller misuse: a bug in the application, not the peer's doing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Misuse(&'static str),
}

/// The send half of a stream.
#[derive(Debug)]
pub(crate) struct SendState {
    pub window: Window,
    /// Response HEADERS (final status) were sent.
    pub headers_sent: bool,
    queue: VecDeque<Bytes>,
    pub queued: u64,
    /// END_STREAM goes out after the queue drains (with trailers, if any).
    end_queued: bool,
    trailers: Option<HeaderList>,
    in_ready: bool,
    /// Blocked on its own window with data queued (counted once per stall).
    stalled: bool,
    /// The caller was told the queue is full: tell it when it is not.
    notify: bool,
    /// Since when the queue has waited without any of it going out (send stalls).
    waiting_since: Option<Instant>,
}

impl SendState {
    pub fn new(initial_window: u32) -> SendState {
        SendState {
            window: Window::new(initial_window),
            headers_sent: false,
            queue: VecDeque::new(),
            queued: 0,
            end_queued: false,
            trailers: None,
            in_ready: false,
            stalled: false,
            notify: false,
            waiting_since: None,
        }
    }

    /// Since when queued bytes wait without any of them going out, if they do.
    pub fn stalled_since(&self) -> Option<Instant> {
        self.waiting_since.filter(|_| self.queued > 0)
    }

    /// Something is waiting to go out: bytes, or the END_STREAM after them.
    fn has_work(&self) -> bool {
        self.queued > 0 || self.end_queued
    }

    /// Bytes are queued and the stream's own window is exhausted: a stall, counted once until
    /// a WINDOW_UPDATE makes the stream ready again.
    fn check_stall(&mut self, stats: &mut crate::stats::Stats) {
        if self.queued > 0 && self.window.available() == 0 && !self.stalled {
            self.stalled = true;
            stats.stream_stalls += 1;
        }
    }
}

impl Connection {
    /// Sends response HEADERS (the first call, with `:status` first) or trailers (a later call;
    /// requires `end_stream`, no pseudo-header fields). Trailers wait behind queued DATA.
    pub fn send_headers(
        &mut self,
        id: u32,
        fields: &[(&[u8], &[u8])],
        end_stream: bool,
    ) -> Result<Sent, SendError> {
        if !self.sendable(id)? {
            return Ok(Sent::StreamClosed);
        }
        let Some(s) = self.streams.get_mut(&id) else { return Ok(Sent::StreamClosed) };
        if s.send.end_queued {
            return Err(SendError::Misuse("the stream was already ended"));
        }
        if !s.send.headers_sent {
            let informational = check_response(fields)?;
            if informational && end_stream {
                return Err(SendError::Misuse("a 1xx response cannot end the stream"));
            }
            s.send.headers_sent = !informational;
            self.write_header_block(id, fields.iter().copied(), end_stream);
            if end_stream {
                self.local_ended(id);
            }
            return Ok(Sent::Queued(0));
        }
        if !end_stream {
            return Err(SendError::Misuse("trailers must end the stream"));
        }
        for &(name, value) in fields {
            if name.first() == Some(&b':') {
                return Err(SendError::Misuse("trailers cannot contain pseudo-header fields"));
            }
            fields::validate_response_field(name, value).map_err(SendError::Misuse)?;
        }
        if s.send.queued == 0 {
            self.write_header_block(id, fields.iter().copied(), true);
            self.local_ended(id);
            return Ok(Sent::Queued(0));
        }
        let mut list = HeaderList::new();
        for &(name, value) in fields {
            list.push(name, value);
        }
        s.send.trailers = Some(list);
        s.send.end_queued = true;
        Ok(Sent::Queued(s.send.queued))
    }

    /// Sends response bytes the way an application with bounded memory does: takes at most
    /// `max_send_queue` of `data`, and no more than the windows let out now plus what the
    /// stream's queue and the connection's (`max_connection_send_queue`) have room for. Returns
    /// how many bytes were taken (`end_stream` applies once all of `data` was) and whether the
    /// caller must wait for [`Event::SendWindowOpen`] before sending more.
    pub fn send_body(&mut self, id: u32, data: &[u8], end_stream: bool) -> Result<Sent, SendError> {
        let stream_limit = self.cfg.max_send_queue as u64;
        let conn_limit = self.cfg.max_connection_send_queue as u64;
        let Some(s) = self.streams.get(&id).filter(|_| !self.is_closed()) else {
            // Gone, or misuse: send_data says which.
            return self.send_data(id, data, end_stream);
        };
        let direct = if s.send.queued == 0 {
            s.send.window.available().min(self.send_window.available()) as u64
        } else {
            0
        };
        let room =
            stream_limit.saturating_sub(s.send.queued).min(conn_limit.saturating_sub(self.queued_total));
        let wanted = (data.len() as u64).min(stream_limit);
        let take = wanted.min(direct + room) as usize;
        let fin = end_stream && take == data.len();
        // ok: take <= data.len().
        match self.send_data(id, &data[..take], fin)? {
            Sent::Queued(_) => {}
            other => return Ok(other),
        }
        let conn_full = self.queued_total >= conn_limit;
        let blocked = take < wanted as usize || conn_full || {
            self.streams.get(&id).is_some_and(|s| s.send.queued >= stream_limit)
        };
        if blocked {
            if let Some(s) = self.streams.get_mut(&id) {
                s.send.notify = true;
            }
            // Told to wait, possibly with nothing of its own queued: only the connection's queue
            // draining (or a stream leaving it) can wake it.
            self.senders_waiting = true;
        }
        Ok(Sent::Accepted { taken: take, blocked })
    }

    /// Sends response body bytes. What the windows allow is framed at once; the rest is
    /// queued (copied) and released as the peer opens windows. Returns the bytes still queued
    /// for the stream: at `max_send_queue` or above, the caller should wait for
    /// [`Event::SendWindowOpen`].
    pub fn send_data(&mut self, id: u32, data: &[u8], end_stream: bool) -> Result<Sent, SendError> {
        if !self.sendable(id)? {
            return Ok(Sent::StreamClosed);
        }
        let max_frame = self.peer.max_frame_size as usize;
        let now = self.now;
        let Some(s) = self.streams.get_mut(&id) else { return Ok(Sent::StreamClosed) };
        if !s.send.headers_sent {
            return Err(SendError::Misuse("response headers must be sent before the body"));
        }
        if s.send.end_queued {
            return Err(SendError::Misuse("the stream was already ended"));
        }
        let mut rest = data;
        if s.send.queued == 0 {
            // Nothing queued ahead: frame what the windows allow straight from the input.
            let mut written = false;
            loop {
                let n = rest.len().min(max_frame).min(s.send.window.available() as usize);
                let n = n.min(self.send_window.available() as usize);
                // An empty DATA frame can carry END_STREAM, but it is flow-controlled too: none
                // while the stream window is negative (RFC 9113 6.9.2); pump sends it later.
                let empty_end = rest.is_empty() && end_stream && !written && s.send.window.get() >= 0;
                if n == 0 && !empty_end {
                    break;
                }
                s.send.window.spend(n as u32);
                self.send_window.spend(n as u32);
                let (chunk, tail) = rest.split_at(n);
                rest = tail;
                written = true;
                if n > 0 {
                    self.last_data_sent = now;
                }
                let end = end_stream && rest.is_empty();
                write_data(&mut self.output, &mut self.stats, id, chunk, end);
                if rest.is_empty() {
                    break;
                }
            }
            if rest.is_empty() && (written || !end_stream) {
                if end_stream {
                    self.local_ended(id);
                }
                return Ok(Sent::Queued(0));
            }
        }
        if !rest.is_empty() {
            s.send.queue.push_back(Bytes::copy_from_slice(rest));
            if s.send.queued == 0 {
                s.send.waiting_since = Some(now);
            }
        }
        s.send.queued += rest.len() as u64;
        s.send.end_queued = end_stream;
        s.send.check_stall(&mut self.stats);
        let queued = s.send.queued;
        if queued >= self.cfg.max_send_queue as u64 {
            s.send.notify = true;
            self.senders_waiting = true;
        }
        self.queued_total += rest.len() as u64;
        self.stats.peak_queued_send_bytes = self.stats.peak_queued_send_bytes.max(self.queued_total);
        self.make_ready(id);
        Ok(Sent::Queued(queued))
    }

    /// Resets a stream on the application's behalf (e.g. CANCEL, or NO_ERROR after a complete
    /// response when the request body is not wanted, §8.1). A stream that is already gone has
    /// nothing to write, but what the application had not consumed of it (both sides ended it,
    /// and the application gives up on the rest: a client's cancel) is released, as for a
    /// stream reset while open.
    pub fn reset_stream(&mut self, id: u32, code: ErrorCode) -> Result<Sent, SendError> {
        if self.streams.contains_key(&id) && !self.is_closed() {
            self.reset(id, code);
            return Ok(Sent::Queued(0));
        }
        if id == 0 || id > self.last_client_id || id.is_multiple_of(2) {
            return Err(SendError::Misuse("no such stream"));
        }
        self.scheduler.close_stream(id);
        Ok(Sent::StreamClosed)
    }

    /// Whether we may send on stream `id`: `false` if it is gone (counted), misuse if it never
    /// existed or we already ended it.
    fn sendable(&mut self, id: u32) -> Result<bool, SendError> {
        if id == 0 || id > self.last_client_id || id.is_multiple_of(2) {
            return Err(SendError::Misuse("no such stream"));
        }
        match self.streams.get(&id) {
            Some(s) if !self.is_closed() => {
                if s.state.we_may_send() {
                    Ok(true)
                } else {
                    Err(SendError::Misuse("the stream was already ended"))
                }
            }
            _ => {
                if !self.is_closed() && self.closed.get(id) == Some(Closed::EndStream) {
                    // Both sides ended it, so the application already sent its END_STREAM.
                    return Err(SendError::Misuse("the stream was already ended"));
                }
                self.stats.writes_to_closed_streams += 1;
                Ok(false)
            }
        }
    }

    pub(super) fn write_header_block<'a>(
        &mut self,
        id: u32,
        fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        end_stream: bool,
    ) {
        let mut block = Vec::new();
        self.encoder.encode(fields, &mut block);
        self.stats.count_sent(frame::kind::HEADERS);
        frame::encode_header_block(id, &block, end_stream, self.peer.max_frame_size, &mut self.output);
    }

    /// We sent END_STREAM.
    fn local_ended(&mut self, id: u32) {
        let Some(s) = self.streams.get_mut(&id) else { return };
        // END_STREAM went out: nothing is left to send, so a window that opens later (a
        // WINDOW_UPDATE, a larger SETTINGS_INITIAL_WINDOW_SIZE) must not make the stream ready
        // again, or it would send a second END_STREAM.
        s.send.end_queued = false;
        match s.state {
            State::Open if self.scheduler.is_discarded(id) => {
                // The application will not read the body still coming: RST_STREAM NO_ERROR
                // after the complete response (RFC 9113 8.1).
                self.reset(id, ErrorCode::NO_ERROR);
            }
            State::Open => s.state = State::HalfClosedLocal,
            State::HalfClosedRemote => self.finish_stream(id),
            State::HalfClosedLocal => {}
        }
    }

    /// Both sides ended the stream. The scheduler keeps what the application has not yet consumed.
    pub(super) fn finish_stream(&mut self, id: u32) {
        if let Some(s) = self.streams.remove(&id) {
            self.queued_total -= s.send.queued;
        }
        self.closed.insert(id, Closed::EndStream);
        self.wake_senders();
    }

    /// Writes RST_STREAM and closes the stream; if it was open, its buffered request bytes are
    /// released.
    pub(super) fn reset(&mut self, id: u32, code: ErrorCode) {
        self.write_frame(Frame::RstStream(RstStream { stream_id: id, error_code: code }));
        self.stats.streams_reset_by_us += 1;
        self.close_stream(id, Closed::ResetByUs);
    }

    pub(super) fn close_stream(&mut self, id: u32, how: Closed) {
        if let Some(s) = self.streams.remove(&id) {
            self.queued_total -= s.send.queued;
            // What it had queued leaves the connection's queue: others may send again.
            self.senders_waiting |= s.send.queued > 0;
            // The application is told (StreamReset, StreamError) or reset it itself: what it
            // has not consumed is released. A stream both sides had ended keeps its bytes until
            // the application consumes them, even if a late frame makes us reset it: releasing
            // them would credit the peer for bytes still held (the memory bound).
            self.scheduler.close_stream(id);
        }
        self.closed.insert(id, how);
        self.wake_senders();
    }

    /// Puts a stream with work and window in the round-robin list.
    pub(super) fn make_ready(&mut self, id: u32) {
        if let Some(s) = self.streams.get_mut(&id) {
            if s.send.has_work() && !s.send.in_ready && (s.send.window.available() > 0 || s.send.queued == 0)
            {
                s.send.in_ready = true;
                s.send.stalled = false;
                self.ready.push_back(id);
            }
        }
    }

    /// Applies the peer's SETTINGS_INITIAL_WINDOW_SIZE to every stream (§6.9.2).
    pub(super) fn set_peer_initial_window(&mut self, value: u32) -> Result<(), Error> {
        let delta = value as i64 - self.peer.initial_window_size as i64;
        self.peer.initial_window_size = value;
        let mut opened = Vec::new();
        for (&id, s) in self.streams.iter_mut() {
            s.send.window.adjust(delta).map_err(|_| {
                Error::connection(
                    ErrorCode::FLOW_CONTROL_ERROR,
                    "SETTINGS_INITIAL_WINDOW_SIZE change pushes a stream window above 2^31-1 (RFC 9113 6.9.2)",
                )
            })?;
            if delta > 0 {
                opened.push(id);
            }
        }
        for id in opened {
            self.make_ready(id);
        }
        Ok(())
    }

    /// Releases queued DATA, one frame per stream per turn, while windows allow.
    pub(super) fn pump(&mut self) {
        let max_frame = self.peer.max_frame_size;
        while let Some(id) = self.ready.pop_front() {
            let conn_available = self.send_window.available();
            let Some(s) = self.streams.get_mut(&id) else { continue };
            s.send.in_ready = false;
            let mut ended_by_data = false;
            if s.send.queued > 0 {
                let n = (s.send.queued.min(max_frame as u64) as u32)
                    .min(s.send.window.available())
                    .min(conn_available);
                if n == 0 {
                    if conn_available == 0 {
                        // The connection window is the limit: everyone waits, in order. One
                        // stall until the peer opens the connection window again.
                        s.send.in_ready = true;
                        self.ready.push_front(id);
                        if !self.conn_stalled {
                            self.conn_stalled = true;
                            self.stats.connection_stalls += 1;
                        }
                        break;
                    }
                    s.send.check_stall(&mut self.stats);
                    continue;
                }
                let chunk = take_front(&mut s.send.queue, n as usize);
                s.send.queued -= n as u64;
                s.send.window.spend(n);
                s.send.waiting_since = Some(self.now);
                let done = s.send.queued == 0;
                let end = done && s.send.end_queued && s.send.trailers.is_none();
                s.send.check_stall(&mut self.stats);
                self.send_window.spend(n);
                self.queued_total -= n as u64;
                self.last_data_sent = self.now;
                write_data(&mut self.output, &mut self.stats, id, &chunk, end);
                ended_by_data = end;
                if !done {
                    self.make_ready(id);
                    continue;
                }
            }
            // The queue is empty: what ends the stream goes out now. END_STREAM rode on the last
            // DATA frame, or goes on trailers, or on an empty DATA frame that had to wait for the
            // stream window to stop being negative (RFC 9113 6.9.2; a WINDOW_UPDATE or SETTINGS
            // that opens the window makes the stream ready again).
            let Some(s) = self.streams.get_mut(&id) else { continue };
            if s.send.end_queued {
                if let Some(trailers) = s.send.trailers.take() {
                    self.write_header_block(id, trailers.iter(), true);
                } else if !ended_by_data {
                    if s.send.window.get() < 0 {
                        continue;
                    }
                    write_data(&mut self.output, &mut self.stats, id, &[], true);
                }
                self.local_ended(id);
            }
        }
        self.wake_senders();
    }
}

impl Connection {
    /// Tells the senders that were told to wait ([`Sent::Accepted`] `blocked`) that they may
    /// send again, once their stream's queue and the connection's have drained to half their
    /// limits (half, so that a sender is not woken for every frame that leaves). Called after
    /// anything that empties queues: frames going out, streams closing.
    pub(super) fn wake_senders(&mut self) {
        let conn_low = self.cfg.max_connection_send_queue as u64 / 2;
        if !self.senders_waiting || self.queued_total > conn_low {
            return;
        }
        let stream_low = self.cfg.max_send_queue as u64 / 2;
        let mut still_waiting = false;
        for (&id, s) in self.streams.iter_mut() {
            if !s.send.notify {
                continue;
            }
            if s.send.queued <= stream_low {
                s.send.notify = false;
                self.events.push(Event::SendWindowOpen { stream_id: id });
            } else {
                still_waiting = true;
            }
        }
        self.senders_waiting = still_waiting;
    }
}

fn write_data(
    output: &mut Vec<u8>,
    stats: &mut crate::stats::Stats,
    id: u32,
    chunk: &[u8],
    end_stream: bool,
) {
    stats.count_sent(frame::kind::DATA);
    stats.data_bytes_sent += chunk.len() as u64;
    frame::encode_data_head(id, chunk.len() as u32, end_stream, false, output);
    output.extend_from_slice(chunk);
}

/// Checks the first HEADERS of a response: `:status` first and valid, no other pseudo-header
/// fields, valid names and values. Returns whether it is an informational (1xx) response.
fn check_response(fields: &[(&[u8], &[u8])]) -> Result<bool, SendError> {
    let Some(&(b":status", status)) = fields.first() else {
        return Err(SendError::Misuse("response headers must start with :status"));
    };
    let code = match status {
        [a @ b'1'..=b'5', b, c] if b.is_ascii_digit() && c.is_ascii_digit() => (a - b'0') as u16 * 100,
        _ => return Err(SendError::Misuse(":status must be a 3-digit code from 100 to 599")),
    };
    // ok: fields.first() matched above, so fields is not empty.
    for &(name, value) in &fields[1..] {
        if name.first() == Some(&b':') {
            return Err(SendError::Misuse("a response has no pseudo-header field other than :status"));
        }
        fields::validate_response_field(name, value).map_err(SendError::Misuse)?;
    }
    Ok(code == 100)
}

/// Takes `n` bytes from the front of a queue of chunks, without copying when one chunk has them.
fn take_front(queue: &mut VecDeque<Bytes>, n: usize) -> Bytes {
    if let Some(front) = queue.front_mut() {
        if front.len() > n {
            return front.split_to(n);
        }
        if front.len() == n {
            return queue.pop_front().unwrap_or_default();
        }
    }
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let Some(front) = queue.front_mut() else { break };
        let take = (n - out.len()).min(front.len());
        out.extend_from_slice(&front.split_to(take));
        if front.is_empty() {
            queue.pop_front();
        }
    }
    Bytes::from(out)
}
