//! Sending: response heads with the framing the engine chooses, bodies by Content-Length,
//! chunked or close-delimited, trailers, `100 Continue`, responses kept in order, and the
//! flush that hands everything to the caller.

use std::time::Instant;

use super::chunked::is_tchar;
use super::head::{list, trim_ows};
use super::{BodyMode, Connection, Continue, Event, Framing, Input, Resp, SendError, Sent, Version};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl Connection {
    /// Sends the response head (the first call: `:status` first, then fields; a 1xx head does
    /// not end the response) or trailers (a later call, with `end_stream`; written only with
    /// chunked framing, dropped otherwise). The engine adds the framing fields
    /// (`content-length: 0`, `transfer-encoding: chunked`) and `connection`; the application's
    /// `connection: close` is honoured, `transfer-encoding` is refused (the engine chooses).
    pub fn send_headers(
        &mut self,
        id: u64,
        fields: &[(&[u8], &[u8])],
        end_stream: bool,
    ) -> Result<Sent, SendError> {
        let Some(i) = self.sendable(id)? else { return Ok(Sent::StreamClosed) };
        match self.pipeline.get(i).map(|e| e.resp) {
            Some(Resp::Pending) => self.write_head(i, id, fields, end_stream),
            Some(Resp::Body(framing)) => self.write_trailers(i, framing, fields, end_stream),
            _ => Err(SendError::Misuse("the response was already ended")),
        }
    }

    /// Sends response body bytes. Returns the bytes of this response not yet handed to the
    /// caller: at `max_send_queue` or more, wait for [`Event::Writable`]. Bodies of HEAD, 204
    /// and 304 responses are dropped; a body longer than its Content-Length is refused, a
    /// shorter one ends the connection after it.
    pub fn send_data(&mut self, id: u64, data: &[u8], end_stream: bool) -> Result<Sent, SendError> {
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
                    self.end_short(i);
                    return Err(SendError::Misuse(
                        "response body shorter than its content-length: the connection is closed after it",
                    ));
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
    /// waits for it (RFC 9110 §10.1.1) and no final response was sent.
    pub fn read_body(&mut self, id: u64) -> Result<Sent, SendError> {
        let Some(i) = self.sendable(id)? else { return Ok(Sent::StreamClosed) };
        let Some(ex) = self.pipeline.get_mut(i) else { return Ok(Sent::StreamClosed) };
        if ex.expect == Continue::Expected && !ex.body_started && !ex.body_done && ex.resp == Resp::Pending {
            ex.expect = Continue::Sent;
            self.stats.continues_sent += 1;
            self.write(i, CONTINUE);
        }
        Ok(Sent::Queued(0))
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

    fn write_head(
        &mut self,
        i: usize,
        id: u64,
        fields: &[(&[u8], &[u8])],
        end_stream: bool,
    ) -> Result<Sent, SendError> {
        let (status, rest) = check_status(fields)?;
        let Some(ex) = self.pipeline.get(i) else { return Ok(Sent::StreamClosed) };
        let version = ex.version;
        if status < 200 {
            if end_stream {
                return Err(SendError::Misuse("a 1xx response cannot end the response"));
            }
            match status {
                101 => return Err(SendError::Misuse("101 is written by the engine (h2c upgrade)")),
                100 => return self.read_body(id),
                // RFC 9110 15.2: no 1xx to an HTTP/1.0 client.
                _ if version == Version::Http10 => return Ok(Sent::Queued(0)),
                _ => {}
            }
            let mut head = status_line(status);
            for &(name, value) in rest {
                check_field(name, value)?;
                put_field(&mut head, name, value);
            }
            head.extend_from_slice(b"\r\n");
            self.write(i, &head);
            return Ok(Sent::Queued(0));
        }

        let mut content_length: Option<u64> = None;
        let mut app_close = false;
        for &(name, value) in rest {
            check_field(name, value)?;
            if name.eq_ignore_ascii_case(b"content-length") {
                let n = parse_length(value)?;
                if content_length.is_some_and(|m| m != n) {
                    return Err(SendError::Misuse("conflicting content-length fields"));
                }
                content_length = Some(n);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                return Err(SendError::Misuse("transfer-encoding is chosen by the engine"));
            } else if name.eq_ignore_ascii_case(b"connection") {
                app_close |= list(value).any(|o| o.eq_ignore_ascii_case(b"close"));
            }
        }
        let no_body = ex.is_head || status == 204 || status == 304;
        let framing = if no_body {
            Framing::NoBody
        } else if end_stream {
            if content_length.unwrap_or(0) != 0 {
                return Err(SendError::Misuse("a response with a content-length above 0 must have a body"));
            }
            Framing::Length(0)
        } else if let Some(n) = content_length {
            Framing::Length(n)
        } else if version == Version::Http11 {
            Framing::Chunked
        } else {
            Framing::Close
        };
        let last = i + 1 == self.pipeline.len();
        let close = ex.close_after
            || !ex.keep_alive
            || app_close
            || framing == Framing::Close
            || self.draining
            || (last && matches!(self.input, Input::Closed))
            || self.body_would_stall(i);

        let mut head = status_line(status);
        for &(name, value) in rest {
            let skip = name.eq_ignore_ascii_case(b"connection")
                || name.eq_ignore_ascii_case(b"keep-alive")
                || (status == 204 && name.eq_ignore_ascii_case(b"content-length"));
            if !skip {
                put_field(&mut head, name, value);
            }
        }
        match framing {
            Framing::Length(0) if content_length.is_none() => {
                head.extend_from_slice(b"content-length: 0\r\n")
            }
            Framing::Chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            _ => {}
        }
        if close {
            head.extend_from_slice(b"connection: close\r\n");
        } else if version == Version::Http10 {
            head.extend_from_slice(b"connection: keep-alive\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let s = &mut self.stats;
        match framing {
            Framing::Length(_) => s.responses_content_length += 1,
            Framing::Chunked => s.responses_chunked += 1,
            Framing::Close => s.responses_close_delimited += 1,
            Framing::NoBody => s.responses_without_body += 1,
        }
        if let Some(ex) = self.pipeline.get_mut(i) {
            ex.close_after = close;
            ex.resp = Resp::Body(framing);
        }
        if close {
            self.stop_reading_after(i);
        }
        self.write(i, &head);
        if end_stream {
            self.finish(i);
            return Ok(Sent::Queued(0));
        }
        self.note_peaks();
        Ok(Sent::Queued(self.queued_for(i)))
    }

    fn write_trailers(
        &mut self,
        i: usize,
        framing: Framing,
        fields: &[(&[u8], &[u8])],
        end_stream: bool,
    ) -> Result<Sent, SendError> {
        if !end_stream {
            return Err(SendError::Misuse("trailers must end the response"));
        }
        for &(name, value) in fields {
            if name.first() == Some(&b':') {
                return Err(SendError::Misuse("trailers cannot contain pseudo-header fields"));
            }
            check_field(name, value)?;
        }
        match framing {
            Framing::Chunked => {
                let mut t = b"0\r\n".to_vec();
                for &(name, value) in fields {
                    put_field(&mut t, name, value);
                }
                t.extend_from_slice(b"\r\n");
                self.write(i, &t);
            }
            Framing::Length(remaining) if remaining > 0 => {
                self.end_short(i);
                return Err(SendError::Misuse(
                    "response body shorter than its content-length: the connection is closed after it",
                ));
            }
            // Trailers need chunked framing; without it they are dropped (RFC 9110 6.5).
            _ => {}
        }
        self.finish(i);
        Ok(Sent::Queued(0))
    }

    /// A response that ended before its Content-Length: the client can only tell from the
    /// connection closing.
    fn end_short(&mut self, i: usize) {
        if let Some(ex) = self.pipeline.get_mut(i) {
            ex.close_after = true;
        }
        self.stop_reading_after(i);
        self.finish(i);
    }

    /// The connection closes after response `i`: if it is the request being read, reading stops.
    fn stop_reading_after(&mut self, i: usize) {
        let Some(id) = self.pipeline.get(i).map(|e| e.id) else { return };
        if matches!(self.input, Input::Body { id: r, .. } if r == id) {
            self.close_input();
        }
    }

    /// Whether answering request `i` now leaves a body that cannot be read to its end to keep
    /// the connection: the client waits for a `100 Continue` it will not get (RFC 9110
    /// §10.1.1), or more than `max_discard` bytes are still to come.
    fn body_would_stall(&self, i: usize) -> bool {
        let Some(ex) = self.pipeline.get(i) else { return false };
        if ex.body_done {
            return false;
        }
        if ex.expect == Continue::Expected && !ex.body_started {
            return true;
        }
        match &self.input {
            Input::Body { id, decoder: super::BodyDecoder::Length(rest), .. } if *id == ex.id => {
                *rest > self.cfg.max_discard
            }
            _ => false,
        }
    }

    /// The response of exchange `i` is complete: the rest of its request body is thrown away
    /// (bytes handed out and not consumed are released), and if it is the oldest, the next
    /// response may go out.
    fn finish(&mut self, i: usize) {
        let Some(ex) = self.pipeline.get_mut(i) else { return };
        ex.resp = Resp::Done;
        self.stats.responses += 1;
        let id = ex.id;
        let keep_alive = ex.keep_alive && !ex.close_after;
        self.buffered -= std::mem::take(&mut ex.handed);
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
    fn write(&mut self, i: usize, bytes: &[u8]) {
        if i == 0 {
            self.output.extend_from_slice(bytes);
        } else if let Some(ex) = self.pipeline.get_mut(i) {
            ex.queue.extend_from_slice(bytes);
        }
    }

    fn queued_for(&self, i: usize) -> u64 {
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

/// Response fields as the application passes them.
type Fields<'a, 'b> = &'a [(&'b [u8], &'b [u8])];

/// `:status` first and valid (100 to 599), no other pseudo-header field.
fn check_status<'a, 'b>(fields: Fields<'a, 'b>) -> Result<(u16, Fields<'a, 'b>), SendError> {
    let Some((&(b":status", status), rest)) = fields.split_first() else {
        return Err(SendError::Misuse("response headers must start with :status"));
    };
    let code = match status {
        [a @ b'1'..=b'5', b, c] if b.is_ascii_digit() && c.is_ascii_digit() => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(SendError::Misuse(":status must be a 3-digit code from 100 to 599")),
    };
    if rest.iter().any(|(n, _)| n.first() == Some(&b':')) {
        return Err(SendError::Misuse("a response has no pseudo-header field other than :status"));
    }
    Ok((code, rest))
}

/// The application's fields: names are tokens, values have no CR, LF or NUL (response
/// splitting, RFC 9112 11.1).
fn check_field(name: &[u8], value: &[u8]) -> Result<(), SendError> {
    if name.is_empty() || !name.iter().all(|&c| is_tchar(c)) {
        return Err(SendError::Misuse("field name is not a token (RFC 9110 5.1)"));
    }
    if value.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0) {
        return Err(SendError::Misuse("CR, LF or NUL in a field value (RFC 9110 5.5)"));
    }
    Ok(())
}

fn parse_length(value: &[u8]) -> Result<u64, SendError> {
    let v = trim_ows(value);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(SendError::Misuse("content-length is not a decimal number"));
    }
    Ok(v.iter().fold(0u64, |n, &c| n * 10 + u64::from(c - b'0')))
}

fn put_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn status_line(status: u16) -> Vec<u8> {
    let mut line = Vec::with_capacity(256);
    line.extend_from_slice(b"HTTP/1.1 ");
    line.extend_from_slice(status.to_string().as_bytes());
    line.push(b' ');
    line.extend_from_slice(reason(status).as_bytes());
    line.extend_from_slice(b"\r\n");
    line
}

/// The reason phrase (RFC 9110 §15); empty for codes without a standard one (allowed: RFC
/// 9112 §4).
pub(super) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}
