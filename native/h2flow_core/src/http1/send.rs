//! Sending: response heads with the framing the engine chooses, bodies by Content-Length,
//! chunked or close-delimited, trailers, `100 Continue`, responses kept in order, and the
//! flush that hands everything to the caller.

use std::time::Instant;

use super::{BodyMode, Connection, Continue, Event, Framing, Input, Read, ReadStatus, Resp, SendError, Sent};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl Connection {
    /// Sends the response head (the first call: `:status` first, then fields; a 1xx head does
    /// not end the response) or trailers (a later call, with `end_stream`; written only with
    /// chunked framing, dropped otherwise). The engine adds the framing fields
    /// (`content-length: 0`, `transfer-encoding: chunked`) and `connection`; the application's
    /// `connection: close` is honoured, `transfer-encoding` is refused (the engine chooses).
    ///
    /// Misuse raises no bytes on the wire; once the response head was written, it also ends
    /// the exchange like [`Connection::abort`] (the response cannot be completed correctly).
    pub fn send_headers(
        &mut self,
        id: u64,
        fields: &[(&[u8], &[u8])],
        end_stream: bool,
    ) -> Result<Sent, SendError> {
        let Some(i) = self.sendable(id)? else { return Ok(Sent::StreamClosed) };
        let r = match self.pipeline.get(i).map(|e| e.resp) {
            Some(Resp::Pending) => self.write_head(i, id, fields, end_stream),
            Some(Resp::Body(framing)) => self.write_trailers(i, framing, fields, end_stream),
            _ => Err(SendError::Misuse("the response was already ended")),
        };
        self.abort_on_misuse(id, r)
    }

    /// Sends response body bytes with bounded memory, as HTTP/2's `send_body`: takes at most
    /// what the request's send queue has room for (`max_send_queue` less what is not yet handed
    /// to the caller) and returns [`Sent::Accepted`]; send the rest (and the end of the
    /// response, which applies only once everything was taken) right away unless `blocked`,
    /// in which case wait for [`Event::Writable`].
    pub fn send_body(&mut self, id: u64, data: &[u8], end_stream: bool) -> Result<Sent, SendError> {
        let Some(i) = self.sendable(id)? else { return Ok(Sent::StreamClosed) };
        let room = self.cfg.max_send_queue.saturating_sub(self.queued_for(i));
        let taken = data.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let end = end_stream && taken == data.len();
        // ok: taken <= data.len().
        let piece = &data[..taken];
        if taken > 0 || end {
            match self.send_data(id, piece, end)? {
                Sent::StreamClosed => return Ok(Sent::StreamClosed),
                _ if end => return Ok(Sent::Accepted { taken, blocked: false }),
                _ => {}
            }
        }
        let blocked = match self.index(id) {
            Some(i) if self.queued_for(i) >= self.cfg.max_send_queue => {
                if let Some(ex) = self.pipeline.get_mut(i) {
                    ex.notify = true;
                }
                true
            }
            _ => false,
        };
        Ok(Sent::Accepted { taken, blocked })
    }

    /// The application reads the request body, up to `length` bytes, as over HTTP/2 (the
    /// scheduler's rule 8): every byte reported and not yet handed over is handed over now,
    /// and those that arrive while the read is registered as they arrive. Returns
    /// [`ReadStatus::Fin`] (the body ended: the read has everything), [`ReadStatus::More`]
    /// (`length` bytes were handed over) or [`ReadStatus::Wait`] (an [`Event::ReadDone`] will
    /// tell); `None` when the request is gone (cancelled, or answered: a body not read by then
    /// is discarded; or the application discarded it). The first read writes `100 Continue` if the client waits for it.
    pub fn read(&mut self, id: u64, length: u64) -> Option<ReadStatus> {
        let i = self.index(id)?;
        if self.pipeline.get(i).is_some_and(|e| e.cancelled || e.discarded || e.resp == Resp::Done) {
            return None;
        }
        self.continue_if_expected(i);
        let ex = self.pipeline.get_mut(i)?;
        let n = std::mem::take(&mut ex.handed);
        self.buffered -= n;
        if ex.body_done {
            ex.read = None;
            return Some(ReadStatus::Fin);
        }
        if n >= length {
            ex.read = None;
            return Some(ReadStatus::More);
        }
        ex.read = Some(Read { length, handed: n });
        Some(ReadStatus::Wait)
    }

    /// The period of the request's registered read expired: it completes with what it was
    /// handed so far. `false` when no read was registered (it had completed already).
    pub fn read_timeout(&mut self, id: u64) -> bool {
        self.index(id).and_then(|i| self.pipeline.get_mut(i)).and_then(|e| e.read.take()).is_some()
    }

    /// The application will not read the rest of the request body (its handler is done):
    /// what is held is released, and what still arrives is dropped without being reported.
    pub fn discard(&mut self, id: u64) {
        let Some(ex) = self.index(id).and_then(|i| self.pipeline.get_mut(i)) else { return };
        ex.discarded = true;
        ex.read = None;
        self.buffered -= std::mem::take(&mut ex.handed);
    }

    /// Sends response body bytes, all of them. Returns the bytes of this response not yet
    /// handed to the caller: at `max_send_queue` or more, wait for [`Event::Writable`]. Bodies
    /// of HEAD, 204 and 304 responses are dropped; a body longer than its Content-Length is
    /// refused (and ends the exchange, see [`Connection::send_headers`]), a shorter one ends the
    /// connection after it (the client can only tell from the close).
    pub fn send_data(&mut self, id: u64, data: &[u8], end_stream: bool) -> Result<Sent, SendError> {
        let r = self.send_data_inner(id, data, end_stream);
        self.abort_on_misuse(id, r)
    }

    fn send_data_inner(&mut self, id: u64, data: &[u8], end_stream: bool) -> Result<Sent, SendError> {
        let Some(i) = self.sendable(id)? else { return Ok(Sent::StreamClosed) };
        let framing = match self.pipeline.get(i).map(|e| e.resp) {
            Some(Resp::Body(framing)) => framing,
            Some(Resp::Pending) => {
                return Err(SendError::Misuse("response headers must be sent before the body"))
            }
            _ => return Err(SendError::Misuse("the response was already ended")),
        };
        match framing {
            Framing::NoBody => {}
            Framing::Length(remaining) => {
                let n = data.len() as u64;
                if n > remaining {
                    return Err(SendError::Misuse("response body longer than its content-length"));
                }
                self.write(i, data);
                self.set_resp(i, Resp::Body(Framing::Length(remaining - n)));
                if end_stream && remaining > n {
                    self.stats.body_bytes_sent += n;
                    self.end_short(i);
                    return Ok(Sent::Queued(0));
                }
            }
            Framing::Chunked => {
                if !data.is_empty() {
                    self.write(i, format!("{:x}\r\n", data.len()).as_bytes());
                    self.write(i, data);
                    self.write(i, b"\r\n");
                }
                if end_stream {
                    self.write(i, b"0\r\n\r\n");
                }
            }
            Framing::Close => self.write(i, data),
        }
        if framing != Framing::NoBody {
            self.stats.body_bytes_sent += data.len() as u64;
        }
        if end_stream {
            self.finish(i);
            return Ok(Sent::Queued(0));
        }
        let queued = self.queued_for(i);
        if queued >= self.cfg.max_send_queue {
            if let Some(ex) = self.pipeline.get_mut(i) {
                ex.notify = true;
            }
        }
        self.note_peaks();
        Ok(Sent::Queued(queued))
    }

    /// The application starts reading the request body: writes `100 Continue` if the client
    /// waits for it (RFC 9110 §10.1.1) and no final response was sent. [`Connection::read`]
    /// does this itself.
    pub fn read_body(&mut self, id: u64) -> Result<Sent, SendError> {
        let Some(i) = self.sendable(id)? else { return Ok(Sent::StreamClosed) };
        self.continue_if_expected(i);
        Ok(Sent::Queued(0))
    }

    fn continue_if_expected(&mut self, i: usize) {
        let Some(ex) = self.pipeline.get_mut(i) else { return };
        if ex.expect == Continue::Expected && !ex.body_started && !ex.body_done && ex.resp == Resp::Pending {
            ex.expect = Continue::Sent;
            self.stats.continues_sent += 1;
            self.write(i, CONTINUE);
        }
    }

    /// A misuse after the response head was written leaves a response that cannot be
    /// completed correctly: the exchange ends as if aborted.
    fn abort_on_misuse(&mut self, id: u64, r: Result<Sent, SendError>) -> Result<Sent, SendError> {
        if r.is_err()
            && self.index(id).and_then(|i| self.pipeline.get(i)).is_some_and(|e| e.resp != Resp::Pending)
        {
            self.abort(id);
        }
        r
    }

    /// The application consumed `n` body bytes of request `id`. A request that is gone is a
    /// no-op; more than was handed out is a caller bug.
    pub fn consume(&mut self, id: u64, n: u64) -> Result<(), SendError> {
        let Some(ex) = self.index(id).and_then(|i| self.pipeline.get_mut(i)) else { return Ok(()) };
        if n > ex.handed {
            return Err(SendError::Misuse("consumed more bytes than were received"));
        }
        ex.handed -= n;
        self.buffered -= n;
        Ok(())
    }

    /// The application cannot complete the response (its handler crashed): the connection
    /// closes after what was written, so the client sees the response cut short (or none at
    /// all), and requests after it are cancelled.
    pub fn abort(&mut self, id: u64) {
        let Some(i) = self.index(id) else { return };
        let reading = matches!(self.input, Input::Body { id: r, .. } if r == id);
        let Some(ex) = self.pipeline.get_mut(i) else { return };
        if ex.resp == Resp::Done {
            return;
        }
        ex.resp = Resp::Done;
        ex.close_after = true;
        ex.cancelled = true;
        self.buffered -= std::mem::take(&mut ex.handed);
        self.cancelled_from = self.cancelled_from.min(id);
        if reading {
            self.close_input();
        }
        if i == 0 {
            self.activate_front();
        }
    }

    /// Everything to write now, in one buffer. Input held back is processed first if it can
    /// be; take the events afterwards (new requests, and `Writable` for the response whose
    /// bytes this flush hands out).
    pub fn flush(&mut self, now: Instant) -> Vec<u8> {
        let mut out = Vec::new();
        self.flush_into(now, &mut out);
        out
    }

    /// Like [`Connection::flush`], appending to `dst`.
    pub fn flush_into(&mut self, now: Instant, dst: &mut Vec<u8>) {
        // A refusal is answered by the engine itself; recv already returned it to the caller
        // when it came from recv.
        let _ = self.poll(now);
        let idle = self.pipeline.is_empty()
            && matches!(self.input, Input::Head)
            && self.head_started.is_none()
            && !self.head_bytes_seen
            && self.held.is_empty();
        if idle && self.idle_since.is_none() {
            self.idle_since = Some(now);
        }
        self.note_peaks();
        if !self.output.is_empty() {
            self.stats.bytes_sent += self.output.len() as u64;
            if dst.is_empty() {
                std::mem::swap(dst, &mut self.output);
            } else {
                dst.append(&mut self.output);
            }
        }
        if let Some(front) = self.pipeline.front_mut() {
            if front.notify {
                front.notify = false;
                self.events.push(Event::Writable { id: front.id });
            }
        }
    }

    /// The position of a request the application may still answer; `None` (counted) if it is
    /// gone, misuse if it never existed.
    fn sendable(&mut self, id: u64) -> Result<Option<usize>, SendError> {
        if id == 0 || id >= self.next_id {
            return Err(SendError::Misuse("no such request"));
        }
        match self.index(id) {
            Some(i) if self.pipeline.get(i).is_some_and(|e| !e.cancelled) => Ok(Some(i)),
            None if id < self.cancelled_from => Err(SendError::Misuse("the response was already ended")),
            _ => {
                self.stats.writes_to_closed += 1;
                Ok(None)
            }
        }
    }

    /// A response that ended before its Content-Length: the client can only tell from the
    /// connection closing.
    pub(super) fn end_short(&mut self, i: usize) {
        if let Some(ex) = self.pipeline.get_mut(i) {
            ex.close_after = true;
        }
        self.stop_reading_after(i);
        self.finish(i);
    }

    /// The connection closes after response `i`: if it is the request being read, reading stops.
    pub(super) fn stop_reading_after(&mut self, i: usize) {
        let Some(id) = self.pipeline.get(i).map(|e| e.id) else { return };
        if matches!(self.input, Input::Body { id: r, .. } if r == id) {
            self.close_input();
        }
    }

    /// The response of exchange `i` is complete: the rest of its request body is thrown away
    /// (bytes handed out and not consumed are released), and if it is the oldest, the next
    /// response may go out.
    pub(super) fn finish(&mut self, i: usize) {
        let Some(ex) = self.pipeline.get_mut(i) else { return };
        ex.resp = Resp::Done;
        self.stats.responses += 1;
        let id = ex.id;
        let keep_alive = ex.keep_alive && !ex.close_after;
        self.buffered -= std::mem::take(&mut ex.handed);
        // A read still waiting gets what it has: the rest of the body is not delivered.
        if ex.read.take().is_some() {
            self.events.push(Event::ReadDone { id, fin: false });
        }
        if let Input::Body { id: r, mode, .. } = &mut self.input {
            if *r == id && matches!(mode, BodyMode::Deliver) {
                *mode = BodyMode::Discard { budget: self.cfg.max_discard, keep_alive };
            }
        }
        if i == 0 {
            self.activate_front();
        }
    }

    /// Writes what waits at the front of the pipeline, removing completed exchanges; after one
    /// that closes the connection, the rest are cancelled.
    pub(super) fn activate_front(&mut self) {
        while let Some(front) = self.pipeline.front_mut() {
            if !front.queue.is_empty() {
                let mut q = std::mem::take(&mut front.queue);
                self.output.append(&mut q);
            }
            if front.resp != Resp::Done {
                break;
            }
            let Some(ex) = self.pipeline.pop_front() else { break };
            self.buffered -= ex.handed;
            if ex.close_after {
                self.close_input();
                for rest in self.pipeline.drain(..) {
                    self.buffered -= rest.handed;
                    if !rest.synthetic {
                        self.cancelled_from = self.cancelled_from.min(rest.id);
                    }
                    if !rest.synthetic && !rest.cancelled {
                        self.stats.cancelled += 1;
                        self.events.push(Event::Cancelled { id: rest.id });
                    }
                }
                break;
            }
        }
    }

    /// Appends response bytes for exchange `i`: to the output if it is the oldest, else to its
    /// queue.
    pub(super) fn write(&mut self, i: usize, bytes: &[u8]) {
        if i == 0 {
            self.output.extend_from_slice(bytes);
        } else if let Some(ex) = self.pipeline.get_mut(i) {
            ex.queue.extend_from_slice(bytes);
        }
    }

    pub(super) fn queued_for(&self, i: usize) -> u64 {
        if i == 0 {
            self.output.len() as u64
        } else {
            self.pipeline.get(i).map_or(0, |e| e.queue.len() as u64)
        }
    }

    fn set_resp(&mut self, i: usize, resp: Resp) {
        if let Some(ex) = self.pipeline.get_mut(i) {
            ex.resp = resp;
        }
    }
}
