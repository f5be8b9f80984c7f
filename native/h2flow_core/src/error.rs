//! HTTP/2 error codes (RFC 9113 §7) and the two scopes an error can have (§5.4).
//!
//! Peer misbehaviour is data, not a panic: every check in the codec and the engine returns an
//! [`Error`] that names the code, the scope and the RFC section that was violated. The engine
//! turns a [`Error::Connection`] into a GOAWAY and an [`Error::Stream`] into a RST_STREAM.

use std::borrow::Cow;
use std::fmt;

/// An HTTP/2 error code (RFC 9113 §7). Unknown codes are kept as they are (§7: "Unknown or
/// unsupported error codes MUST NOT trigger any special behavior").
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    pub const NO_ERROR: ErrorCode = ErrorCode(0x0);
    pub const PROTOCOL_ERROR: ErrorCode = ErrorCode(0x1);
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(0x2);
    pub const FLOW_CONTROL_ERROR: ErrorCode = ErrorCode(0x3);
    pub const SETTINGS_TIMEOUT: ErrorCode = ErrorCode(0x4);
    pub const STREAM_CLOSED: ErrorCode = ErrorCode(0x5);
    pub const FRAME_SIZE_ERROR: ErrorCode = ErrorCode(0x6);
    pub const REFUSED_STREAM: ErrorCode = ErrorCode(0x7);
    pub const CANCEL: ErrorCode = ErrorCode(0x8);
    pub const COMPRESSION_ERROR: ErrorCode = ErrorCode(0x9);
    pub const CONNECT_ERROR: ErrorCode = ErrorCode(0xa);
    pub const ENHANCE_YOUR_CALM: ErrorCode = ErrorCode(0xb);
    pub const INADEQUATE_SECURITY: ErrorCode = ErrorCode(0xc);
    pub const HTTP_1_1_REQUIRED: ErrorCode = ErrorCode(0xd);

    /// Every code RFC 9113 defines, with its snake_case name (the Elixir atom).
    pub const ALL: [(ErrorCode, &'static str); 14] = [
        (Self::NO_ERROR, "no_error"),
        (Self::PROTOCOL_ERROR, "protocol_error"),
        (Self::INTERNAL_ERROR, "internal_error"),
        (Self::FLOW_CONTROL_ERROR, "flow_control_error"),
        (Self::SETTINGS_TIMEOUT, "settings_timeout"),
        (Self::STREAM_CLOSED, "stream_closed"),
        (Self::FRAME_SIZE_ERROR, "frame_size_error"),
        (Self::REFUSED_STREAM, "refused_stream"),
        (Self::CANCEL, "cancel"),
        (Self::COMPRESSION_ERROR, "compression_error"),
        (Self::CONNECT_ERROR, "connect_error"),
        (Self::ENHANCE_YOUR_CALM, "enhance_your_calm"),
        (Self::INADEQUATE_SECURITY, "inadequate_security"),
        (Self::HTTP_1_1_REQUIRED, "http_1_1_required"),
    ];

    /// The snake_case name of a known code, `None` for an unknown one.
    pub fn name(self) -> Option<&'static str> {
        Self::ALL.get(self.0 as usize).map(|&(_, name)| name)
    }

    /// The code for a snake_case name.
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|&(c, _)| c)
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(&name.to_ascii_uppercase()),
            None => write!(f, "ErrorCode({:#x})", self.0),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A message that explains an error, citing the RFC section; usually a static string.
pub type Message = Cow<'static, str>;

/// An error detected while processing peer input, with its scope (RFC 9113 §5.4).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The whole connection is unusable: answer with GOAWAY and close (§5.4.1).
    #[error("connection error {code}: {message}")]
    Connection { code: ErrorCode, message: Message },
    /// Only one stream is affected: answer with RST_STREAM (§5.4.2).
    #[error("stream error on stream {stream_id} {code}: {message}")]
    Stream { stream_id: u32, code: ErrorCode, message: Message },
}

impl Error {
    pub fn connection(code: ErrorCode, message: impl Into<Message>) -> Error {
        Error::Connection { code, message: message.into() }
    }

    pub fn stream(stream_id: u32, code: ErrorCode, message: impl Into<Message>) -> Error {
        Error::Stream { stream_id, code, message: message.into() }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Connection { code, .. } | Error::Stream { code, .. } => *code,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Error::Connection { message, .. } | Error::Stream { message, .. } => message,
        }
    }

    pub fn is_connection_error(&self) -> bool {
        matches!(self, Error::Connection { .. })
    }
}

/// A connection error, as a shorthand in checks: `return Err(conn(PROTOCOL_ERROR, "..."))`.
pub(crate) fn conn(code: ErrorCode, message: &'static str) -> Error {
    Error::connection(code, message)
}

/// A stream error, as a shorthand in checks.
pub(crate) fn stream(stream_id: u32, code: ErrorCode, message: &'static str) -> Error {
    Error::stream(stream_id, code, message)
}
