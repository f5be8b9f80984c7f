//! Receiving: request heads (split anywhere across reads), request bodies by Content-Length
//! or chunked, input held back while the pipeline is full, and refusals.

use std::time::Instant;

use super::chunked::{self, Piece};
use super::error::{reject, Reject, Rejected};
use super::head::{self, BodyKind, H2c};
use super::{
    BodyDecoder, BodyMode, Connection, Continue, Event, Exchange, Input, Payload, PendingUpgrade, Resp,
    Upgrade,
};
use crate::hpack::HeaderList;

/// Body pieces smaller than this are copied (and merged with the previous piece) rather than
/// handed out as ranges of the input: many tiny chunks become one event.
const SMALL_PIECE: usize = 1024;
/// ... up to this size per merged event.
const MERGED_PIECE: usize = 64 * 1024;

impl Connection {
    /// Feeds received bytes. Events accumulate until [`Connection::take_events`];
    /// `Payload::Input` ranges refer to this call's `input`, so take the events before the next
    /// `recv`.
    ///
    /// A refused request is answered by the engine (after the responses before it) and the
    /// connection reads no more; the refusal is returned. Input after the connection stopped
    /// reading is ignored.
    pub fn recv(&mut self, input: &[u8], now: Instant) -> Result<(), Rejected> {
        self.stats.bytes_received += input.len() as u64;
        if matches!(self.input, Input::Closed | Input::Upgraded) {
            return Ok(());
        }
        if !input.is_empty() {
            self.idle_since = None;
        }
        let result = if self.held.is_empty() {
            match self.process(input, true, now) {
                Ok(used) => {
                    if let Some(rest) = input.get(used..).filter(|r| !r.is_empty()) {
                        if !matches!(self.input, Input::Closed | Input::Upgraded) {
                            self.held.extend_from_slice(rest);
                        }
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else {
            self.held.extend_from_slice(input);
            self.process_held(now)
        };
        self.note_peaks();
        result
    }

    /// Processes input held back while the engine was blocked, if it no longer is
    /// ([`Connection::flush`] does this too).
    pub fn poll(&mut self, now: Instant) -> Result<(), Rejected> {
        if self.has_pending_input() {
            let r = self.process_held(now);
            self.note_peaks();
            return r;
        }
        Ok(())
    }

    fn process_held(&mut self, now: Instant) -> Result<(), Rejected> {
        let mut held = std::mem::take(&mut self.held);
        let used = self.process(&held, false, now)?;
        if used < held.len() && !matches!(self.input, Input::Closed | Input::Upgraded) {
            held.drain(..used);
            self.held = held;
        }
        Ok(())
    }

    /// Processes `buf` until it is used up or the engine blocks; returns the bytes used. With
    /// `zero_copy`, `buf` is the `recv` input and body payloads are ranges of it.
    fn process(&mut self, buf: &[u8], zero_copy: bool, now: Instant) -> Result<usize, Rejected> {
        match self.process_inner(buf, zero_copy, now) {
            Ok(used) => Ok(used),
            Err(r) => {
                self.refuse(r);
                Err(r)
            }
        }
    }

    fn process_inner(&mut self, buf: &[u8], zero_copy: bool, now: Instant) -> Result<usize, Rejected> {
        let mut pos = 0;
        loop {
            if let Some(pending) = self.upgrade_ready.take() {
                let rest = match buf.get(pos..) {
                    Some(r) if zero_copy => Payload::Input { start: pos, len: r.len() },
                    Some(r) => Payload::Owned(r.to_vec()),
                    None => Payload::Owned(Vec::new()),
                };
                self.complete_upgrade(*pending, rest);
                return Ok(buf.len());
            }
            match self.input {
                Input::Closed | Input::Upgraded => return Ok(buf.len()),
                Input::Head => {
                    if pos == buf.len() || self.pipeline_full() {
                        return Ok(pos);
                    }
                    pos = self.head(buf, pos, now)?;
                    if matches!(self.input, Input::Head) && self.upgrade_ready.is_none() && pos == buf.len() {
                        return Ok(pos);
                    }
                }
                Input::Body { .. } => {
                    pos = self.body(buf, pos, zero_copy)?;
                    if matches!(self.input, Input::Body { .. }) {
                        return Ok(pos);
                    }
                }
            }
        }
    }

    /// Reads (part of) a request head from `buf[pos..]`; returns the new position.
    fn head(&mut self, buf: &[u8], mut pos: usize, now: Instant) -> Result<usize, Rejected> {
        self.head_started.get_or_insert(now);
        self.head_bytes_seen = true;
        if self.scan.len() == 0 {
            // Empty lines before the request line are skipped (RFC 9112 2.2).
            if self.leading_cr {
                if buf.get(pos) != Some(&b'\n') {
                    return Err(reject(Reject::BareCr, "CR not followed by LF (RFC 9112 2.2)"));
                }
                self.leading_cr = false;
                pos += 1;
            }
            while buf.get(pos..pos + 2) == Some(b"\r\n") {
                pos += 2;
            }
            if pos + 1 == buf.len() && buf.get(pos) == Some(&b'\r') {
                self.leading_cr = true;
                return Ok(buf.len());
            }
            if pos == buf.len() {
                return Ok(pos);
            }
        }
        // ok: pos < buf.len() here (checked above, or the scan had started and pos is the
        // caller's, which is < buf.len()).
        let rest = &buf[pos..];
        let Some(n) = self.scan.feed(rest, &self.cfg)? else {
            self.head_buf.extend_from_slice(rest);
            return Ok(buf.len());
        };
        // ok: the scan used n <= rest.len() bytes.
        let parsed = if self.head_buf.is_empty() {
            head::parse_request(&rest[..n], &self.cfg)
        } else {
            self.head_buf.extend_from_slice(&rest[..n]);
            head::parse_request(&self.head_buf, &self.cfg)
        };
        self.head_buf.clear();
        self.scan = head::Scan::request();
        self.head_started = None;
        self.head_bytes_seen = false;
        self.start_request(parsed?);
        Ok(pos + n)
    }

    fn start_request(&mut self, parsed: head::Parsed) {
        let id = self.next_id;
        self.next_id += 1;
        self.stats.requests += 1;
        match parsed.h2c {
            H2c::Accepted { settings, fields } if self.pipeline.is_empty() => {
                let pending = Box::new(PendingUpgrade { settings, fields, body: Vec::new() });
                match parsed.body {
                    BodyKind::Length(n) => {
                        if parsed.expect_continue {
                            self.output.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                            self.stats.continues_sent += 1;
                        }
                        let mode = BodyMode::Collect(pending);
                        self.input = Input::Body { id, decoder: BodyDecoder::Length(n), mode };
                    }
                    // check_h2c declines chunked bodies.
                    BodyKind::None | BodyKind::Chunked => self.upgrade_ready = Some(pending),
                }
                return;
            }
            H2c::Accepted { .. } | H2c::Declined => self.stats.upgrades_declined += 1,
            H2c::NotAsked => {}
        }
        let end_stream = parsed.body == BodyKind::None;
        self.pipeline.push_back(Exchange {
            id,
            version: parsed.version,
            is_head: parsed.is_head,
            keep_alive: parsed.keep_alive,
            expect: if parsed.expect_continue { Continue::Expected } else { Continue::No },
            body_done: end_stream,
            body_started: false,
            handed: 0,
            read: None,
            discarded: false,
            resp: Resp::Pending,
            queue: Vec::new(),
            notify: false,
            close_after: false,
            cancelled: false,
            synthetic: false,
        });
        self.events.push(Event::Request {
            id,
            version: parsed.version,
            fields: parsed.fields,
            content_length: parsed.content_length,
            end_stream,
        });
        match parsed.body {
            BodyKind::None if parsed.keep_alive => self.enter_head(),
            // RFC 9112 9.6: after a request with "close", no further request is processed.
            BodyKind::None => self.close_input(),
            BodyKind::Length(n) => {
                self.input = Input::Body { id, decoder: BodyDecoder::Length(n), mode: BodyMode::Deliver }
            }
            BodyKind::Chunked => {
                let decoder = BodyDecoder::Chunked(Box::new(chunked::Decoder::new()));
                self.input = Input::Body { id, decoder, mode: BodyMode::Deliver };
            }
        }
    }

    /// Reads request body bytes from `buf[pos..]`; returns the new position.
    fn body(&mut self, buf: &[u8], mut pos: usize, zero_copy: bool) -> Result<usize, Rejected> {
        while pos < buf.len() {
            let Input::Body { id, decoder, .. } = &mut self.input else { return Ok(pos) };
            let id = *id;
            // ok: pos <= buf.len() in the loop.
            let rest = &buf[pos..];
            let (used, piece) = match decoder {
                BodyDecoder::Length(remaining) => {
                    let n = (*remaining).min(rest.len() as u64);
                    *remaining -= n;
                    let end = *remaining == 0;
                    self.piece(id, buf, pos, n as usize, zero_copy, end);
                    if end {
                        self.body_ended(id, None, true);
                    }
                    (n as usize, None)
                }
                BodyDecoder::Chunked(d) => d.next(rest, &self.cfg)?,
            };
            let found = piece.is_some();
            match piece {
                Some(Piece::Data { start, len }) => self.piece(id, buf, pos + start, len, zero_copy, false),
                Some(Piece::End(trailers)) => self.body_ended(id, trailers, false),
                None => {}
            }
            pos += used;
            if used == 0 && !found {
                break;
            }
        }
        Ok(pos)
    }

    /// Body bytes `buf[start..start + len]` of request `id`.
    fn piece(&mut self, id: u64, buf: &[u8], start: usize, len: usize, zero_copy: bool, end: bool) {
        let Some(bytes) = buf.get(start..start + len) else { return };
        let Input::Body { mode, .. } = &mut self.input else { return };
        match mode {
            BodyMode::Deliver => {}
            BodyMode::Discard { budget, .. } => {
                self.stats.body_bytes_discarded += len as u64;
                if len as u64 > *budget {
                    self.close_input();
                } else {
                    *budget -= len as u64;
                }
                return;
            }
            BodyMode::Collect(pending) => {
                pending.body.extend_from_slice(bytes);
                return;
            }
        }
        if len == 0 && !end {
            return;
        }
        let Some(i) = self.index(id) else { return };
        let was_below = self.buffered < self.cfg.max_body_buffer;
        let Some(ex) = self.pipeline.get_mut(i) else { return };
        if ex.discarded {
            self.stats.body_bytes_discarded += len as u64;
            return;
        }
        ex.body_started |= len > 0;
        self.stats.body_bytes_received += len as u64;
        // Bytes for a registered read are its own; others are held until one asks for them.
        let mut completed = false;
        match ex.read.as_mut() {
            Some(read) => {
                read.handed += len as u64;
                // The end of the body completes the read with Fin (body_ended).
                if !end && read.handed >= read.length {
                    ex.read = None;
                    completed = true;
                }
            }
            None => {
                ex.handed += len as u64;
                self.buffered += len as u64;
                if was_below && self.buffered >= self.cfg.max_body_buffer {
                    self.stats.input_pauses += 1;
                }
            }
        }
        self.data_event(id, buf, start, len, zero_copy, end);
        if completed {
            self.events.push(Event::ReadDone { id, fin: false });
        }
    }

    /// Reports body bytes `buf[start..start + len]`: a range of the input when large enough,
    /// else a copy merged with the previous piece of the same request.
    fn data_event(&mut self, id: u64, buf: &[u8], start: usize, len: usize, zero_copy: bool, end: bool) {
        let Some(bytes) = buf.get(start..start + len) else { return };
        if zero_copy && len >= SMALL_PIECE {
            self.events.push(Event::Data { id, data: Payload::Input { start, len }, end_stream: end });
            return;
        }
        if let Some(Event::Data { id: last, data: Payload::Owned(v), end_stream }) = self.events.last_mut() {
            if *last == id && !*end_stream && v.len() < MERGED_PIECE {
                v.extend_from_slice(bytes);
                *end_stream = end;
                return;
            }
        }
        self.events.push(Event::Data { id, data: Payload::Owned(bytes.to_vec()), end_stream: end });
    }

    /// The request body ended (with trailers, or with the last data piece when `signalled`).
    fn body_ended(&mut self, id: u64, trailers: Option<HeaderList>, signalled: bool) {
        let mode = match std::mem::replace(&mut self.input, Input::Closed) {
            Input::Body { mode, .. } => mode,
            other => {
                self.input = other;
                return;
            }
        };
        match mode {
            BodyMode::Deliver => {
                let mut keep_alive = false;
                let mut reading = false;
                let mut discarded = false;
                if let Some(ex) = self.index(id).and_then(|i| self.pipeline.get_mut(i)) {
                    ex.body_done = true;
                    keep_alive = ex.keep_alive && !ex.close_after;
                    reading = ex.read.take().is_some();
                    discarded = ex.discarded;
                }
                match trailers {
                    _ if discarded => {}
                    Some(fields) => self.events.push(Event::Trailers { id, fields }),
                    None if !signalled => self.end_data(id),
                    None => {}
                }
                if reading {
                    self.events.push(Event::ReadDone { id, fin: true });
                }
                if keep_alive {
                    self.enter_head();
                } else {
                    self.close_input();
                }
            }
            BodyMode::Discard { keep_alive, .. } => {
                if keep_alive {
                    self.enter_head();
                } else {
                    self.close_input();
                }
            }
            BodyMode::Collect(pending) => self.upgrade_ready = Some(pending),
        }
    }

    /// Marks the end of a body that ended without trailers: on the last data event if it is
    /// this request's, else with an empty one.
    fn end_data(&mut self, id: u64) {
        if let Some(Event::Data { id: last, end_stream, .. }) = self.events.last_mut() {
            if *last == id {
                *end_stream = true;
                return;
            }
        }
        self.events.push(Event::Data { id, data: Payload::Owned(Vec::new()), end_stream: true });
    }

    fn complete_upgrade(&mut self, pending: PendingUpgrade, rest: Payload) {
        self.output.extend_from_slice(
            b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n",
        );
        self.stats.upgrades += 1;
        let PendingUpgrade { settings, fields, body } = pending;
        self.events.push(Event::Upgrade(Box::new(Upgrade { settings, fields, body, rest })));
        self.close_input();
        self.input = Input::Upgraded;
    }

    /// A request broke the protocol: answer it (after the responses before it) and stop
    /// reading.
    pub(super) fn refuse(&mut self, r: Rejected) {
        self.stats.count_rejected(r.kind);
        let answer = refusal(r);
        let reading = match &self.input {
            Input::Body { id, mode: BodyMode::Deliver, .. } => Some(*id),
            // The response is complete and the rest of the body was being thrown away.
            Input::Body { mode: BodyMode::Discard { .. }, .. } => {
                self.close_input();
                return;
            }
            _ => None,
        };
        self.close_input();
        self.upgrade_ready = None;
        if let Some(i) = reading.and_then(|id| self.index(id)) {
            let Some(ex) = self.pipeline.get_mut(i) else { return };
            if !ex.cancelled {
                self.events.push(Event::Cancelled { id: ex.id });
            }
            if ex.resp == Resp::Pending {
                ex.queue = answer;
            }
            ex.resp = Resp::Done;
            ex.close_after = true;
            ex.cancelled = true;
            self.cancelled_from = self.cancelled_from.min(ex.id);
            self.buffered -= std::mem::take(&mut ex.handed);
        } else {
            self.pipeline.push_back(Exchange {
                id: 0,
                version: super::Version::Http11,
                is_head: false,
                keep_alive: false,
                expect: Continue::No,
                body_done: true,
                body_started: false,
                handed: 0,
                read: None,
                discarded: false,
                resp: Resp::Done,
                queue: answer,
                notify: false,
                close_after: true,
                cancelled: true,
                synthetic: true,
            });
        }
        self.activate_front();
    }
}

/// The answer to a refused request: its status, and the message as text.
fn refusal(r: Rejected) -> Vec<u8> {
    let status = r.kind.status();
    format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}\n",
        super::response::reason(status),
        r.message.len() + 1,
        r.message
    )
    .into_bytes()
}
