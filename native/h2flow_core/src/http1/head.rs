//! Request heads: where a head ends, with the line-level checks httparse does not make (bare
//! CR and LF, obs-fold, whitespace before the colon, the length limits), then httparse for the
//! request line and the field lines, then the fields that decide how the message is framed
//! and routed (RFC 9112 §3, §5, §6).

use super::error::{reject, Reject, Rejected};
use super::{target, upgrade, Config, Version};
use crate::hpack::HeaderList;

/// Finds the end of a header (or trailer) section fed in pieces, checking every line as it
/// goes. Only the bytes of the section are fed; leading empty lines before a request line are
/// skipped by the caller (RFC 9112 §2.2).
#[derive(Clone, Debug)]
pub(super) struct Scan {
    len: usize,
    prev: u8,
    line_start: usize,
    colon_seen: bool,
    /// The first line is a request line, not a field line.
    request: bool,
    /// Lines completed so far.
    lines: usize,
}

impl Scan {
    pub fn request() -> Scan {
        Scan { len: 0, prev: 0, line_start: 0, colon_seen: false, request: true, lines: 0 }
    }

    pub fn trailers() -> Scan {
        Scan { request: false, ..Scan::request() }
    }

    /// Bytes of the section seen so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Feeds the next bytes; returns how many of them complete the section, once it is complete.
    pub fn feed(&mut self, bytes: &[u8], cfg: &Config) -> Result<Option<usize>, Rejected> {
        for (i, &b) in bytes.iter().enumerate() {
            let pos = self.len;
            self.len += 1;
            let in_request_line = self.request && self.lines == 0;
            if self.prev == b'\r' && b != b'\n' {
                return Err(reject(Reject::BareCr, "CR not followed by LF (RFC 9112 2.2)"));
            }
            match b {
                b'\n' => {
                    if self.prev != b'\r' {
                        return Err(reject(Reject::BareLf, "LF not preceded by CR (RFC 9112 2.2)"));
                    }
                    // The CR is at pos - 1, within this line.
                    let line_len = pos.saturating_sub(1 + self.line_start);
                    if in_request_line && line_len > cfg.max_request_line {
                        return Err(REQUEST_LINE_TOO_LONG);
                    }
                    if line_len == 0 {
                        if in_request_line {
                            return Err(reject(Reject::BadRequestLine, "empty request line (RFC 9112 3)"));
                        }
                        self.prev = b;
                        return Ok(Some(i + 1));
                    }
                    self.lines += 1;
                    self.line_start = pos + 1;
                    self.colon_seen = false;
                }
                b' ' | b'\t' if pos == self.line_start && !in_request_line => {
                    let first_field_line = self.lines == usize::from(self.request);
                    return Err(if first_field_line && self.request {
                        reject(
                            Reject::ObsFold,
                            "whitespace between the request line and the first field line (RFC 9112 2.2)",
                        )
                    } else {
                        reject(
                            Reject::ObsFold,
                            "obsolete line folding (obs-fold) in a field line (RFC 9112 5.2)",
                        )
                    });
                }
                b':' if !self.colon_seen && !in_request_line => {
                    if self.prev == b' ' || self.prev == b'\t' {
                        return Err(reject(
                            Reject::WhitespaceBeforeColon,
                            "whitespace between a field name and the colon (RFC 9112 5.1)",
                        ));
                    }
                    self.colon_seen = true;
                }
                _ => {}
            }
            self.prev = b;
            if in_request_line && self.len - self.line_start > cfg.max_request_line + 2 {
                return Err(REQUEST_LINE_TOO_LONG);
            }
            if self.len > cfg.max_header_section {
                return Err(if self.request {
                    reject(Reject::HeaderSectionTooLarge, "header section larger than the limit (RFC 6585 5)")
                } else {
                    reject(
                        Reject::HeaderSectionTooLarge,
                        "trailer section larger than the limit (RFC 6585 5)",
                    )
                });
            }
        }
        Ok(None)
    }
}

const REQUEST_LINE_TOO_LONG: Rejected =
    reject(Reject::RequestLineTooLong, "request line longer than the limit (RFC 9112 3)");

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// What becomes of an `Upgrade: h2c` request.
#[derive(Debug)]
pub(super) enum H2c {
    NotAsked,
    /// Asked for, but not valid or not allowed here: the request is served over HTTP/1.1.
    Declined,
    Accepted {
        settings: Vec<(u16, u32)>,
        fields: HeaderList,
    },
}

/// A parsed and checked request head.
#[derive(Debug)]
pub(super) struct Parsed {
    pub version: Version,
    pub is_head: bool,
    /// `:method`, `:scheme`, `:authority`, `:path` (as HTTP/2 has them), then every field line
    /// with its name lowercased.
    pub fields: HeaderList,
    pub body: BodyKind,
    /// The Content-Length, when the body is framed by one.
    pub content_length: Option<u64>,
    /// The request allows the connection to persist (RFC 9112 §9.3).
    pub keep_alive: bool,
    pub expect_continue: bool,
    pub h2c: H2c,
}

/// Parses a complete head (from the request line to the empty line, both included).
pub(super) fn parse_request(head: &[u8], cfg: &Config) -> Result<Parsed, Rejected> {
    let mut slots = vec![httparse::EMPTY_HEADER; cfg.max_headers];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(reject(Reject::BadRequestLine, "incomplete request head (RFC 9112 2.1)"));
        }
        Err(e) => return Err(parse_error(e, head)),
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(reject(Reject::BadRequestLine, "incomplete request line (RFC 9112 3)"));
    };
    let version = if minor == 0 { Version::Http10 } else { Version::Http11 };

    let mut host: Option<&[u8]> = None;
    let mut hosts = 0;
    let mut content_length: Option<u64> = None;
    let mut te_seen = false;
    let mut codings: Vec<&[u8]> = Vec::new();
    let mut conn = ConnectionOptions::default();
    let mut expect_continue = false;
    let mut upgrade_h2c = false;
    let mut settings_fields = 0;
    let mut settings_value: &[u8] = b"";
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            host = Some(value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            content_length = Some(merge_content_length(content_length, value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_seen = true;
            codings.extend(list(value));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in list(value) {
                conn.add(option);
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade_h2c |= list(value).any(|p| p.eq_ignore_ascii_case(b"h2c"));
        } else if name.eq_ignore_ascii_case(b"http2-settings") {
            settings_fields += 1;
            settings_value = value;
        }
    }

    if hosts > 1 {
        return Err(reject(Reject::InvalidHost, "more than one Host field (RFC 9112 3.2)"));
    }
    if version == Version::Http11 && hosts == 0 {
        return Err(reject(Reject::MissingHost, "HTTP/1.1 request without a Host field (RFC 9112 3.2)"));
    }
    if host.is_some_and(|h| !h.iter().all(|&c| target::is_host_char(c))) {
        return Err(reject(Reject::InvalidHost, "invalid Host field value (RFC 9112 3.2, RFC 3986 3.2.2)"));
    }

    let body = body_kind(version, te_seen, &codings, content_length)?;

    let mut fields = HeaderList::new();
    target::push_pseudo_headers(&mut fields, method, target, host, cfg)?;
    let mut lower = Vec::new();
    for h in req.headers.iter() {
        lower.clear();
        lower.extend(h.name.bytes().map(|c| c.to_ascii_lowercase()));
        fields.push(&lower, h.value);
    }

    let keep_alive = match version {
        Version::Http11 => !conn.close,
        Version::Http10 => conn.keep_alive && !conn.close,
    };
    // RFC 9110 10.1.1: an HTTP/1.0 request's 100-continue expectation is ignored.
    let expect_continue = expect_continue && version == Version::Http11 && body != BodyKind::None;
    let h2c = if !upgrade_h2c {
        H2c::NotAsked
    } else {
        upgrade::check_h2c(&fields, &conn.names, version, body, settings_fields, settings_value, cfg)
    };
    let content_length = if body == BodyKind::Chunked { None } else { content_length };
    Ok(Parsed {
        version,
        is_head: method == "HEAD",
        fields,
        body,
        content_length,
        keep_alive,
        expect_continue,
        h2c,
    })
}

/// The options of the Connection fields (RFC 9110 §7.6.1).
#[derive(Debug, Default)]
pub(super) struct ConnectionOptions<'a> {
    pub close: bool,
    pub keep_alive: bool,
    /// Every option, for dropping the fields they name when converting to HTTP/2.
    pub names: Vec<&'a [u8]>,
}

impl<'a> ConnectionOptions<'a> {
    fn add(&mut self, option: &'a [u8]) {
        self.close |= option.eq_ignore_ascii_case(b"close");
        self.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
        self.names.push(option);
    }
}

/// The elements of a comma-separated list field value, trimmed, empty ones skipped
/// (RFC 9110 §5.6.1).
pub(super) fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&c| c == b',').map(trim_ows).filter(|e| !e.is_empty())
}

pub(super) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Maps an httparse error to the check it failed.
fn parse_error(e: httparse::Error, head: &[u8]) -> Rejected {
    match e {
        httparse::Error::HeaderName => reject(Reject::InvalidField, "invalid field name (RFC 9110 5.1)"),
        httparse::Error::HeaderValue => {
            reject(Reject::InvalidField, "invalid character in a field value (RFC 9110 5.5)")
        }
        httparse::Error::TooManyHeaders => {
            reject(Reject::TooManyHeaders, "more field lines than the limit (RFC 6585 5)")
        }
        httparse::Error::Version if looks_like_other_version(head) => reject(
            Reject::VersionNotSupported,
            "only HTTP/1.0 and HTTP/1.1 are served over this connection (RFC 9110 6.2)",
        ),
        _ => reject(
            Reject::BadRequestLine,
            "the request line is not method SP request-target SP HTTP-version (RFC 9112 3)",
        ),
    }
}

/// A well-formed request line with a version other than 1.0 and 1.1 (`HTTP/2.0`, `HTTP/1.2`):
/// 505 rather than 400.
fn looks_like_other_version(head: &[u8]) -> bool {
    let line = head.split(|&c| c == b'\r').next().unwrap_or(&[]);
    let mut parts = line.split(|&c| c == b' ');
    let (Some(_), Some(_), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
        if major.is_ascii_digit() && minor.is_ascii_digit())
}

/// The framing of the request body (RFC 9112 §6.1, §6.3).
fn body_kind(
    version: Version,
    te_seen: bool,
    codings: &[&[u8]],
    content_length: Option<u64>,
) -> Result<BodyKind, Rejected> {
    if !te_seen {
        return Ok(match content_length {
            None | Some(0) => BodyKind::None,
            Some(n) => BodyKind::Length(n),
        });
    }
    if version == Version::Http10 {
        return Err(reject(
            Reject::TransferEncodingInHttp10,
            "Transfer-Encoding in an HTTP/1.0 request: its framing is faulty (RFC 9112 6.1)",
        ));
    }
    if content_length.is_some() {
        return Err(reject(
            Reject::ContentLengthWithTransferEncoding,
            "both Content-Length and Transfer-Encoding (RFC 9112 6.3; request smuggling, 11.2)",
        ));
    }
    let chunked = |c: &&[u8]| c.eq_ignore_ascii_case(b"chunked");
    match codings.split_last() {
        Some((last, rest)) if chunked(last) => {
            if rest.iter().any(chunked) {
                return Err(reject(Reject::ChunkedNotLast, "chunked applied more than once (RFC 9112 7)"));
            }
            if !rest.is_empty() {
                return Err(reject(
                    Reject::UnsupportedTransferCoding,
                    "transfer codings other than chunked are not implemented (RFC 9112 6.1)",
                ));
            }
            Ok(BodyKind::Chunked)
        }
        _ => Err(reject(
            Reject::ChunkedNotLast,
            "Transfer-Encoding whose final coding is not chunked (RFC 9112 6.3)",
        )),
    }
}

/// Parses a Content-Length field value and checks it against earlier ones: repeated identical
/// values, as several fields or as a list, are one value (RFC 9110 §8.6).
fn merge_content_length(earlier: Option<u64>, value: &[u8]) -> Result<u64, Rejected> {
    const INVALID: Rejected =
        reject(Reject::InvalidContentLength, "Content-Length is not a decimal number (RFC 9110 8.6)");
    let mut merged = earlier;
    let mut elements = 0;
    for element in value.split(|&c| c == b',').map(trim_ows) {
        elements += 1;
        if element.is_empty() || element.len() > 19 || !element.iter().all(u8::is_ascii_digit) {
            return Err(INVALID);
        }
        let n = element.iter().fold(0u64, |n, &c| n * 10 + u64::from(c - b'0'));
        match merged {
            Some(m) if m != n => {
                return Err(reject(
                    Reject::ConflictingContentLength,
                    "Content-Length values that differ (RFC 9110 8.6; request smuggling, RFC 9112 11.2)",
                ));
            }
            _ => merged = Some(n),
        }
    }
    match merged {
        Some(n) if elements > 0 => Ok(n),
        _ => Err(INVALID),
    }
}
