//! SETTINGS frames (RFC 9113 §6.5). The parameters stay in their wire form and are read in
//! order by [`Settings::params`]: §6.5.3 says values MUST be processed in the order they appear,
//! and a peer may repeat one identifier in a single frame.

use super::{
    flags, kind, length_u32, read_u32, Head, DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE, MAX_WINDOW_SIZE,
};
use crate::error::{conn, Error, ErrorCode};

/// Setting identifiers (§6.5.2, plus RFC 8441 and RFC 9218).
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
    pub const NO_RFC7540_PRIORITIES: u16 = 0x9;

    /// The snake_case name of a known identifier.
    pub fn name(id: u16) -> Option<&'static str> {
        Some(match id {
            HEADER_TABLE_SIZE => "header_table_size",
            ENABLE_PUSH => "enable_push",
            MAX_CONCURRENT_STREAMS => "max_concurrent_streams",
            INITIAL_WINDOW_SIZE => "initial_window_size",
            MAX_FRAME_SIZE => "max_frame_size",
            MAX_HEADER_LIST_SIZE => "max_header_list_size",
            ENABLE_CONNECT_PROTOCOL => "enable_connect_protocol",
            NO_RFC7540_PRIORITIES => "no_rfc7540_priorities",
            _ => return None,
        })
    }

    /// The identifier for a snake_case name.
    pub fn from_name(wanted: &str) -> Option<u16> {
        (1..=9u16).find(|&id| name(id) == Some(wanted))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings<'a> {
    pub ack: bool,
    /// The parameters as on the wire: 6 octets each.
    pub raw: &'a [u8],
}

impl<'a> Settings<'a> {
    pub(super) fn decode(head: Head, payload: &'a [u8]) -> Result<Settings<'a>, Error> {
        if head.stream_id != 0 {
            return Err(conn(
                ErrorCode::PROTOCOL_ERROR,
                "SETTINGS frames MUST NOT be associated with a stream (RFC 9113 6.5)",
            ));
        }
        let ack = head.has(flags::ACK);
        if ack && !payload.is_empty() {
            return Err(conn(
                ErrorCode::FRAME_SIZE_ERROR,
                "SETTINGS frame with ACK and a non-empty payload (RFC 9113 6.5)",
            ));
        }
        if !payload.len().is_multiple_of(6) {
            return Err(conn(
                ErrorCode::FRAME_SIZE_ERROR,
                "SETTINGS frame length is not a multiple of 6 octets (RFC 9113 6.5)",
            ));
        }
        let settings = Settings { ack, raw: payload };
        for (id, value) in settings.params() {
            check_value(id, value)?;
        }
        Ok(settings)
    }

    /// The parameters in wire order.
    pub fn params(&self) -> impl Iterator<Item = (u16, u32)> + 'a {
        // ok: chunks_exact(6) yields 6-byte chunks only.
        self.raw.chunks_exact(6).map(|c| (u16::from_be_bytes([c[0], c[1]]), read_u32(&c[2..])))
    }

    /// Number of parameters in the frame.
    pub fn len(&self) -> usize {
        self.raw.len() / 6
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub(super) fn encode(&self, dst: &mut Vec<u8>) {
        let f = if self.ack { flags::ACK } else { 0 };
        let head = Head { length: length_u32(self.raw.len()), kind: kind::SETTINGS, flags: f, stream_id: 0 };
        head.encode(dst);
        dst.extend_from_slice(self.raw);
    }

    /// Appends a SETTINGS frame carrying `params`.
    pub fn encode_params(params: &[(u16, u32)], dst: &mut Vec<u8>) {
        let head =
            Head { length: length_u32(params.len() * 6), kind: kind::SETTINGS, flags: 0, stream_id: 0 };
        head.encode(dst);
        for (id, value) in params {
            dst.extend_from_slice(&id.to_be_bytes());
            dst.extend_from_slice(&value.to_be_bytes());
        }
    }

    /// Appends a SETTINGS frame with the ACK flag.
    pub fn encode_ack(dst: &mut Vec<u8>) {
        Head { length: 0, kind: kind::SETTINGS, flags: flags::ACK, stream_id: 0 }.encode(dst);
    }
}

/// The range checks of §6.5.2 (and RFC 8441 §3, RFC 9218 §2.1 for the 0-or-1 settings).
fn check_value(id: u16, value: u32) -> Result<(), Error> {
    match id {
        setting::ENABLE_PUSH if value > 1 => {
            Err(conn(ErrorCode::PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH other than 0 or 1 (RFC 9113 6.5.2)"))
        }
        setting::INITIAL_WINDOW_SIZE if value > MAX_WINDOW_SIZE => Err(conn(
            ErrorCode::FLOW_CONTROL_ERROR,
            "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1 (RFC 9113 6.5.2)",
        )),
        setting::MAX_FRAME_SIZE if !(DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&value) => Err(
            conn(ErrorCode::PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE outside 2^14..2^24-1 (RFC 9113 6.5.2)"),
        ),
        setting::ENABLE_CONNECT_PROTOCOL if value > 1 => Err(conn(
            ErrorCode::PROTOCOL_ERROR,
            "SETTINGS_ENABLE_CONNECT_PROTOCOL other than 0 or 1 (RFC 8441 3)",
        )),
        setting::NO_RFC7540_PRIORITIES if value > 1 => Err(conn(
            ErrorCode::PROTOCOL_ERROR,
            "SETTINGS_NO_RFC7540_PRIORITIES other than 0 or 1 (RFC 9218 2.1)",
        )),
        _ => Ok(()),
    }
}
