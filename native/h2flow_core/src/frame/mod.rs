//! The HTTP/2 frame codec (RFC 9113 §4 and §6).
//!
//! Decoding borrows: every payload in a [`Frame`] is a slice of the input buffer, so the NIF can
//! hand DATA payloads to Elixir as sub-binaries instead of copies. [`decode`] reads at most one
//! frame and never past it; it returns `Ok(None)` until the whole frame is in the buffer, and it
//! rejects a frame longer than the negotiated SETTINGS_MAX_FRAME_SIZE from its 9-byte header
//! alone, before any payload is buffered.
//!
//! Errors follow §5.4: `Error::Connection` when the frame breaks the connection (GOAWAY), and
//! `Error::Stream` when only its stream is affected (RST_STREAM); a stream error is returned only
//! once the whole frame is available, so the caller can skip [`frame_len`] bytes and go on.
//! Checks that need connection state (stream states, CONTINUATION sequencing, window sums) live
//! in the engine, not here.

mod data;
mod goaway;
mod headers;
mod ping;
mod priority;
mod rst_stream;
mod settings;
mod unknown;
mod window_update;

pub use data::{encode_head as encode_data_head, Data};
pub use goaway::GoAway;
pub use headers::{encode_header_block, Continuation, Headers, PushPromise};
pub use ping::Ping;
pub use priority::{Priority, PriorityFrame};
pub use rst_stream::RstStream;
pub use settings::{setting, Settings};
pub use unknown::Unknown;
pub use window_update::WindowUpdate;

use crate::error::{conn, Error, ErrorCode};

/// Length of the frame header (§4.1).
pub const HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE until the peer says otherwise (§6.5.2).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 1 << 14;
/// The largest value SETTINGS_MAX_FRAME_SIZE may take (§6.5.2).
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// The largest flow-control window and WINDOW_UPDATE increment (§6.9).
pub const MAX_WINDOW_SIZE: u32 = (1 << 31) - 1;
/// The largest stream identifier (§5.1.1).
pub const MAX_STREAM_ID: u32 = (1 << 31) - 1;

/// Frame type codes (§6, §11.2).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
    /// Number of frame types RFC 9113 defines; types from this one up are extensions.
    pub const COUNT: usize = 10;

    /// The name of a defined frame type, for counters and messages.
    pub fn name(kind: u8) -> &'static str {
        match kind {
            DATA => "data",
            HEADERS => "headers",
            PRIORITY => "priority",
            RST_STREAM => "rst_stream",
            SETTINGS => "settings",
            PUSH_PROMISE => "push_promise",
            PING => "ping",
            GOAWAY => "goaway",
            WINDOW_UPDATE => "window_update",
            CONTINUATION => "continuation",
            _ => "unknown",
        }
    }
}

/// Flag bits (§6). The same bit has different names in different frame types.
pub mod flags {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// The 9-byte frame header (§4.1), with the reserved bit of the stream identifier dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub length: u32,
    pub kind: u8,
    pub flags: u8,
    pub stream_id: u32,
}

impl Head {
    /// Parses the header at the start of `buf`, if 9 bytes are there.
    pub fn parse(buf: &[u8]) -> Option<Head> {
        let h: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Head {
            length: u32::from_be_bytes([0, h[0], h[1], h[2]]),
            kind: h[3],
            flags: h[4],
            // §4.1: the reserved bit "MUST be ignored when receiving".
            stream_id: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & MAX_STREAM_ID,
        })
    }

    /// Appends the header; the reserved bit is always sent as 0.
    pub fn encode(&self, dst: &mut Vec<u8>) {
        debug_assert!(self.length <= MAX_MAX_FRAME_SIZE);
        let len = self.length.to_be_bytes();
        dst.extend_from_slice(&[len[1], len[2], len[3], self.kind, self.flags]);
        dst.extend_from_slice(&(self.stream_id & MAX_STREAM_ID).to_be_bytes());
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A decoded frame. Payloads borrow from the buffer that was decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Data(Data<'a>),
    Headers(Headers<'a>),
    Priority(PriorityFrame),
    RstStream(RstStream),
    Settings(Settings<'a>),
    PushPromise(PushPromise<'a>),
    Ping(Ping),
    GoAway(GoAway<'a>),
    WindowUpdate(WindowUpdate),
    Continuation(Continuation<'a>),
    /// A frame of a type this codec does not know; §4.1 and §5.5 say to ignore it.
    Unknown(Unknown<'a>),
}

impl<'a> Frame<'a> {
    /// The stream this frame belongs to (0 for connection frames).
    pub fn stream_id(&self) -> u32 {
        match self {
            Frame::Data(f) => f.stream_id,
            Frame::Headers(f) => f.stream_id,
            Frame::Priority(f) => f.stream_id,
            Frame::RstStream(f) => f.stream_id,
            Frame::PushPromise(f) => f.stream_id,
            Frame::WindowUpdate(f) => f.stream_id,
            Frame::Continuation(f) => f.stream_id,
            Frame::Unknown(f) => f.stream_id,
            Frame::Settings(_) | Frame::Ping(_) | Frame::GoAway(_) => 0,
        }
    }

    /// The frame type code.
    pub fn kind(&self) -> u8 {
        match self {
            Frame::Data(_) => kind::DATA,
            Frame::Headers(_) => kind::HEADERS,
            Frame::Priority(_) => kind::PRIORITY,
            Frame::RstStream(_) => kind::RST_STREAM,
            Frame::Settings(_) => kind::SETTINGS,
            Frame::PushPromise(_) => kind::PUSH_PROMISE,
            Frame::Ping(_) => kind::PING,
            Frame::GoAway(_) => kind::GOAWAY,
            Frame::WindowUpdate(_) => kind::WINDOW_UPDATE,
            Frame::Continuation(_) => kind::CONTINUATION,
            Frame::Unknown(f) => f.kind,
        }
    }

    /// Appends the encoded frame to `dst`. Header blocks are written as they are, in one frame:
    /// use [`encode_header_block`] to split a block at the peer's max frame size.
    ///
    /// # Panics
    /// If a payload is longer than 2^24-1 bytes, which no decoded frame can be.
    pub fn encode(&self, dst: &mut Vec<u8>) {
        match self {
            Frame::Data(f) => f.encode(dst),
            Frame::Headers(f) => f.encode(dst),
            Frame::Priority(f) => f.encode(dst),
            Frame::RstStream(f) => f.encode(dst),
            Frame::Settings(f) => f.encode(dst),
            Frame::PushPromise(f) => f.encode(dst),
            Frame::Ping(f) => f.encode(dst),
            Frame::GoAway(f) => f.encode(dst),
            Frame::WindowUpdate(f) => f.encode(dst),
            Frame::Continuation(f) => f.encode(dst),
            Frame::Unknown(f) => f.encode(dst),
        }
    }
}

/// The total length (header + payload) of the frame at the start of `buf`, once its header is
/// there. After a stream error from [`decode`], skip this many bytes.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    Head::parse(buf).map(|h| HEADER_LEN + h.length as usize)
}

/// Decodes the frame at the start of `buf`.
///
/// Returns `Ok(None)` while the frame is incomplete, `Ok(Some((frame, len)))` once it is whole
/// (`len` bytes were read), or an error. `max_frame_size` is the SETTINGS_MAX_FRAME_SIZE we
/// advertised; a longer frame is a connection FRAME_SIZE_ERROR (§4.2) detected from the header.
pub fn decode(buf: &[u8], max_frame_size: u32) -> Result<Option<(Frame<'_>, usize)>, Error> {
    let Some(head) = Head::parse(buf) else { return Ok(None) };
    if head.length > max_frame_size {
        return Err(conn(
            ErrorCode::FRAME_SIZE_ERROR,
            "frame exceeds SETTINGS_MAX_FRAME_SIZE (RFC 9113 4.2)",
        ));
    }
    let len = HEADER_LEN + head.length as usize;
    let Some(payload) = buf.get(HEADER_LEN..len) else { return Ok(None) };
    let frame = decode_payload(head, payload)?;
    Ok(Some((frame, len)))
}

/// Decodes a frame whose header was parsed and whose payload is complete.
pub fn decode_payload(head: Head, payload: &[u8]) -> Result<Frame<'_>, Error> {
    debug_assert_eq!(payload.len(), head.length as usize);
    Ok(match head.kind {
        kind::DATA => Frame::Data(Data::decode(head, payload)?),
        kind::HEADERS => Frame::Headers(Headers::decode(head, payload)?),
        kind::PRIORITY => Frame::Priority(PriorityFrame::decode(head, payload)?),
        kind::RST_STREAM => Frame::RstStream(RstStream::decode(head, payload)?),
        kind::SETTINGS => Frame::Settings(Settings::decode(head, payload)?),
        kind::PUSH_PROMISE => Frame::PushPromise(PushPromise::decode(head, payload)?),
        kind::PING => Frame::Ping(Ping::decode(head, payload)?),
        kind::GOAWAY => Frame::GoAway(GoAway::decode(head, payload)?),
        kind::WINDOW_UPDATE => Frame::WindowUpdate(WindowUpdate::decode(head, payload)?),
        kind::CONTINUATION => Frame::Continuation(Continuation::decode(head, payload)?),
        _ => Frame::Unknown(Unknown::decode(head, payload)),
    })
}

/// The two ways a padded frame can be malformed, each message citing its frame's section.
struct PaddingErrors {
    /// Too short for the pad-length octet and the fixed fields (§4.2: FRAME_SIZE_ERROR).
    too_short: &'static str,
    /// Padding as long as the room after the fixed fields or longer (§6.1, §6.2, §6.6:
    /// PROTOCOL_ERROR).
    too_much_padding: &'static str,
}

/// Strips padding (§6.1): returns the unpadded content and the pad-length field, if any.
/// `fixed` is the length of fields between the pad length and the content (5 for HEADERS with
/// PRIORITY, 4 for PUSH_PROMISE). Both errors are connection errors: DATA counts against the
/// connection window, and a frame carrying a field block alters the HPACK state (§4.2).
fn strip_padding<'a>(
    head: &Head,
    payload: &'a [u8],
    fixed: usize,
    errors: &PaddingErrors,
) -> Result<(&'a [u8], Option<u8>), Error> {
    if !head.has(flags::PADDED) {
        return match payload.len() >= fixed {
            true => Ok((payload, None)),
            false => Err(conn(ErrorCode::FRAME_SIZE_ERROR, errors.too_short)),
        };
    }
    let Some((&pad, rest)) = payload.split_first() else {
        return Err(conn(ErrorCode::FRAME_SIZE_ERROR, errors.too_short));
    };
    // §6.1: "If the length of the padding is the length of the frame payload or greater, the
    // recipient MUST treat this as a connection error of type PROTOCOL_ERROR." The payload
    // includes the pad-length octet, so `pad` may be at most `payload.len() - 1 - fixed`.
    let Some(room) = rest.len().checked_sub(fixed) else {
        return Err(conn(ErrorCode::FRAME_SIZE_ERROR, errors.too_short));
    };
    match room.checked_sub(pad as usize) {
        // ok: fixed + fragment_len <= fixed + room == rest.len().
        Some(fragment_len) => Ok((&rest[..fixed + fragment_len], Some(pad))),
        None => Err(conn(ErrorCode::PROTOCOL_ERROR, errors.too_much_padding)),
    }
}

/// Appends the pad-length octet when padded; returns the number of padding octets to add.
fn write_pad_len(pad_len: Option<u8>, dst: &mut Vec<u8>) -> usize {
    match pad_len {
        Some(p) => {
            dst.push(p);
            p as usize
        }
        None => 0,
    }
}

fn write_padding(n: usize, dst: &mut Vec<u8>) {
    dst.resize(dst.len() + n, 0);
}

fn padded_len(pad_len: Option<u8>) -> usize {
    pad_len.map_or(0, |p| 1 + p as usize)
}

fn length_u32(len: usize) -> u32 {
    // ok: never reached from peer input. The engine encodes only its own frames: header blocks
    // and DATA are cut at the peer's max frame size, GOAWAY debug data is truncated to it, and
    // a decoded frame re-encoded is never longer than 2^24-1.
    assert!(len <= MAX_MAX_FRAME_SIZE as usize, "frame payload longer than 2^24-1");
    len as u32
}

/// Reads a 32-bit big-endian field. Every caller has checked the payload length first, so a
/// short slice is a bug in this module, not peer input.
fn read_u32(b: &[u8]) -> u32 {
    // ok: callers pass slices of at least 4 bytes (checked lengths, or 6-byte SETTINGS chunks).
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_round_trip_and_reserved_bit() {
        let buf = [0, 0, 5, 0x8, 0x1, 0x80, 0, 0, 3];
        let head = Head::parse(&buf).unwrap();
        assert_eq!(head, Head { length: 5, kind: 8, flags: 1, stream_id: 3 });
        let mut out = Vec::new();
        head.encode(&mut out);
        assert_eq!(out, [0, 0, 5, 0x8, 0x1, 0, 0, 0, 3]);
    }
}
