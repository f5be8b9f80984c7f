//! Why a request was refused: one kind per check, each with the status it is answered with and
//! a message citing the RFC section. The engine writes the answer itself and closes the
//! connection after it (RFC 9112 §11.2: a message whose framing is in doubt must not be
//! followed by another on the same connection).

use std::fmt;

/// The check a request failed. Counted per kind in [`super::Stats::rejected`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// The request line is not `method SP request-target SP HTTP-version` (RFC 9112 §3).
    BadRequestLine,
    /// The request-target is not one of the four forms, or not allowed with the method.
    BadTarget,
    /// A version other than HTTP/1.0 and HTTP/1.1: 505 (RFC 9110 §15.6.6).
    VersionNotSupported,
    /// The request line is longer than `max_request_line`: 414 (RFC 9112 §3).
    RequestLineTooLong,
    /// More field lines than `max_headers`: 431 (RFC 6585 §5).
    TooManyHeaders,
    /// A header or trailer section longer than `max_header_section`: 431.
    HeaderSectionTooLarge,
    /// A field name or value with characters RFC 9110 §5.1/§5.5 does not allow.
    InvalidField,
    /// A field line folded over several lines (RFC 9112 §5.2).
    ObsFold,
    /// Whitespace between a field name and its colon (RFC 9112 §5.1).
    WhitespaceBeforeColon,
    /// A CR not followed by LF (RFC 9112 §2.2).
    BareCr,
    /// An LF not preceded by CR (RFC 9112 §2.2).
    BareLf,
    /// An HTTP/1.1 request without a Host field (RFC 9112 §3.2).
    MissingHost,
    /// Several Host fields, or an invalid one (RFC 9112 §3.2).
    InvalidHost,
    /// Both Content-Length and Transfer-Encoding (RFC 9112 §6.3).
    ContentLengthWithTransferEncoding,
    /// Several Content-Length values that differ (RFC 9110 §8.6).
    ConflictingContentLength,
    /// A Content-Length that is not a decimal number (RFC 9110 §8.6).
    InvalidContentLength,
    /// Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1).
    TransferEncodingInHttp10,
    /// A Transfer-Encoding whose final coding is not chunked, or chunked twice (RFC 9112 §6.3).
    ChunkedNotLast,
    /// A transfer coding other than chunked: 501 (RFC 9112 §6.1).
    UnsupportedTransferCoding,
    /// A chunk size, chunk extension or chunk delimiter that breaks RFC 9112 §7.1.
    InvalidChunk,
    /// The request head did not arrive within `header_timeout`: 408 (RFC 9110 §15.5.9).
    HeaderTimeout,
}

impl Reject {
    /// Every kind, in the order of the counters.
    pub const ALL: [Reject; 21] = [
        Reject::BadRequestLine,
        Reject::BadTarget,
        Reject::VersionNotSupported,
        Reject::RequestLineTooLong,
        Reject::TooManyHeaders,
        Reject::HeaderSectionTooLarge,
        Reject::InvalidField,
        Reject::ObsFold,
        Reject::WhitespaceBeforeColon,
        Reject::BareCr,
        Reject::BareLf,
        Reject::MissingHost,
        Reject::InvalidHost,
        Reject::ContentLengthWithTransferEncoding,
        Reject::ConflictingContentLength,
        Reject::InvalidContentLength,
        Reject::TransferEncodingInHttp10,
        Reject::ChunkedNotLast,
        Reject::UnsupportedTransferCoding,
        Reject::InvalidChunk,
        Reject::HeaderTimeout,
    ];

    pub const COUNT: usize = Self::ALL.len();

    /// The status code the request is answered with.
    pub fn status(self) -> u16 {
        match self {
            Reject::VersionNotSupported => 505,
            Reject::RequestLineTooLong => 414,
            Reject::TooManyHeaders | Reject::HeaderSectionTooLarge => 431,
            Reject::UnsupportedTransferCoding => 501,
            Reject::HeaderTimeout => 408,
            _ => 400,
        }
    }

    /// The snake_case name (the Elixir atom).
    pub fn name(self) -> &'static str {
        match self {
            Reject::BadRequestLine => "bad_request_line",
            Reject::BadTarget => "bad_target",
            Reject::VersionNotSupported => "version_not_supported",
            Reject::RequestLineTooLong => "request_line_too_long",
            Reject::TooManyHeaders => "too_many_headers",
            Reject::HeaderSectionTooLarge => "header_section_too_large",
            Reject::InvalidField => "invalid_field",
            Reject::ObsFold => "obs_fold",
            Reject::WhitespaceBeforeColon => "whitespace_before_colon",
            Reject::BareCr => "bare_cr",
            Reject::BareLf => "bare_lf",
            Reject::MissingHost => "missing_host",
            Reject::InvalidHost => "invalid_host",
            Reject::ContentLengthWithTransferEncoding => "content_length_with_transfer_encoding",
            Reject::ConflictingContentLength => "conflicting_content_length",
            Reject::InvalidContentLength => "invalid_content_length",
            Reject::TransferEncodingInHttp10 => "transfer_encoding_in_http10",
            Reject::ChunkedNotLast => "chunked_not_last",
            Reject::UnsupportedTransferCoding => "unsupported_transfer_coding",
            Reject::InvalidChunk => "invalid_chunk",
            Reject::HeaderTimeout => "header_timeout",
        }
    }

    /// Position in [`Reject::ALL`] (and in the counters).
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|&k| k == self).unwrap_or(0)
    }
}

/// A request the engine refused: the kind, and a message citing the RFC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Rejected {
    pub kind: Reject,
    pub message: &'static str,
}

impl Rejected {
    pub(crate) const fn new(kind: Reject, message: &'static str) -> Rejected {
        Rejected { kind, message }
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.status(), self.message)
    }
}

/// Shorthand for checks: `return Err(reject(Reject::BareLf, "..."))`.
pub(crate) const fn reject(kind: Reject, message: &'static str) -> Rejected {
    Rejected::new(kind, message)
}
