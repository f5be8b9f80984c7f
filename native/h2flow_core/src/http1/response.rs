//! Writing response heads and trailers: the framing the engine chooses (Content-Length,
//! chunked, close-delimited, none), whether the connection persists (RFC 9112 §9.3), the status
//! line with its reason phrase, and the application's fields, checked so that nothing it passes
//! can split a response (RFC 9112 §11.1).

use super::head::{list, trim_ows};
use super::{Connection, Continue, Framing, Input, Resp, SendError, Sent, Version};
use crate::fields::is_tchar;

impl Connection {
    /// The response head of exchange `i` (or a 1xx head before it), with the framing and the
    /// persistence the engine decides.
    pub(super) fn write_head(
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

    pub(super) fn write_trailers(
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
                // The body is shorter than its content-length: the close tells the client.
                self.end_short(i);
                return Ok(Sent::Queued(0));
            }
            // Trailers need chunked framing; without it they are dropped (RFC 9110 6.5).
            _ => {}
        }
        self.finish(i);
        Ok(Sent::Queued(0))
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
}

/// Response fields as the application passes them.
type Fields<'a, 'b> = &'a [(&'b [u8], &'b [u8])];

/// `:status` first and valid (100 to 599), no other pseudo-header field.
pub(super) fn check_status<'a, 'b>(fields: Fields<'a, 'b>) -> Result<(u16, Fields<'a, 'b>), SendError> {
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
pub(super) fn check_field(name: &[u8], value: &[u8]) -> Result<(), SendError> {
    if name.is_empty() || !name.iter().all(|&c| is_tchar(c)) {
        return Err(SendError::Misuse("field name is not a token (RFC 9110 5.1)"));
    }
    if value.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0) {
        return Err(SendError::Misuse("CR, LF or NUL in a field value (RFC 9110 5.5)"));
    }
    Ok(())
}

pub(super) fn parse_length(value: &[u8]) -> Result<u64, SendError> {
    let v = trim_ows(value);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(SendError::Misuse("content-length is not a decimal number"));
    }
    Ok(v.iter().fold(0u64, |n, &c| n * 10 + u64::from(c - b'0')))
}

pub(super) fn put_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

pub(super) fn status_line(status: u16) -> Vec<u8> {
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
