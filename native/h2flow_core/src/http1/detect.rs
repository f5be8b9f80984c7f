//! Protocol selection on a cleartext connection: the first bytes are either the HTTP/2
//! connection preface (prior knowledge, RFC 9113 §3.3) or an HTTP/1.x request line.
//!
//! Anything else is [`Detected::Unknown`] and belongs to the HTTP/2 engine, which answers it
//! with GOAWAY PROTOCOL_ERROR (RFC 9113 §3.4): a client that meant HTTP/2 and got the preface
//! wrong (`INVALID CONNECTION PREFACE\r\n\r\n`) must not get an HTTP/1.1 400. A request line
//! is recognised only as `method SP request-target SP "HTTP/1." DIGIT CRLF` (RFC 9112 §3),
//! after optional empty lines (§2.2).

use crate::connection::PREFACE;
use crate::fields::is_tchar;

/// What the first bytes of a connection are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    /// The HTTP/2 connection preface, complete.
    Http2,
    /// An HTTP/1.x request line, complete; or one longer than `max_request_line` that is
    /// well-formed so far (the HTTP/1.1 engine answers it with 414).
    Http1,
    /// Consistent with both so far (or with one of them): read more.
    NeedMore,
    /// Neither: hand the bytes to the HTTP/2 engine.
    Unknown,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Method,
    TargetStart,
    Target,
    Version(usize),
    Lf,
}

const VERSION: &[u8] = b"HTTP/1.";

/// Classifies the first bytes received on a cleartext connection. `max_request_line` bounds
/// how long a request line may look well-formed before it is classified as HTTP/1.
pub fn detect(bytes: &[u8], max_request_line: usize) -> Detected {
    let n = bytes.len().min(PREFACE.len());
    // ok: n <= both lengths.
    if bytes[..n] == PREFACE[..n] {
        return if n == PREFACE.len() { Detected::Http2 } else { Detected::NeedMore };
    }
    let mut line = bytes;
    while let [b'\r', b'\n', rest @ ..] = line {
        line = rest;
    }
    if line == b"\r" {
        return Detected::NeedMore;
    }
    let mut part = Part::Method;
    for (i, &c) in line.iter().enumerate() {
        part = match (part, c) {
            (Part::Method, b' ') if i > 0 => Part::TargetStart,
            (Part::Method, _) if is_tchar(c) => Part::Method,
            (Part::TargetStart | Part::Target, _) if c > 0x20 && c != 0x7f => Part::Target,
            (Part::Target, b' ') => Part::Version(0),
            // VERSION has 7 bytes: index 7 is the minor version digit.
            (Part::Version(7), _) if c.is_ascii_digit() => Part::Version(8),
            (Part::Version(8), b'\r') => Part::Lf,
            (Part::Version(k), _) if VERSION.get(k) == Some(&c) => Part::Version(k + 1),
            (Part::Lf, b'\n') => return Detected::Http1,
            _ => return Detected::Unknown,
        };
    }
    match part {
        Part::TargetStart | Part::Target | Part::Version(_) | Part::Lf if line.len() > max_request_line => {
            Detected::Http1
        }
        _ if line.len() > max_request_line || bytes.len() - line.len() > max_request_line => {
            Detected::Unknown
        }
        _ => Detected::NeedMore,
    }
}
