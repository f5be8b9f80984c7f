//! PRIORITY frames and the priority fields of HEADERS (RFC 9113 §6.3, §5.3.2). Parsed and
//! validated, then ignored: RFC 9113 deprecates the priority signalling scheme.

use super::{kind, read_u32, Head, MAX_STREAM_ID};
use crate::error::{conn, stream, Error, ErrorCode};

/// The exclusive flag, stream dependency and weight (the wire value, 0..=255, meaning 1..=256).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority {
    pub exclusive: bool,
    pub dependency: u32,
    pub weight: u8,
}

impl Priority {
    /// Reads the 5 priority octets at the start of `b`; callers have checked its length.
    pub(super) fn parse(b: &[u8]) -> Priority {
        let dep = read_u32(b);
        // ok: callers pass at least 5 bytes (PRIORITY length check, HEADERS strip_padding).
        Priority { exclusive: dep & !MAX_STREAM_ID != 0, dependency: dep & MAX_STREAM_ID, weight: b[4] }
    }

    pub(super) fn write(&self, dst: &mut Vec<u8>) {
        let e = if self.exclusive { 1 << 31 } else { 0 };
        dst.extend_from_slice(&(self.dependency & MAX_STREAM_ID | e).to_be_bytes());
        dst.push(self.weight);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PriorityFrame {
    pub stream_id: u32,
    pub priority: Priority,
}

impl PriorityFrame {
    pub(super) fn decode(head: Head, payload: &[u8]) -> Result<PriorityFrame, Error> {
        if head.stream_id == 0 {
            return Err(conn(
                ErrorCode::PROTOCOL_ERROR,
                "PRIORITY frames MUST be associated with a stream (RFC 9113 6.3)",
            ));
        }
        if payload.len() != 5 {
            return Err(stream(
                head.stream_id,
                ErrorCode::FRAME_SIZE_ERROR,
                "PRIORITY frame length is not 5 octets (RFC 9113 6.3)",
            ));
        }
        Ok(PriorityFrame { stream_id: head.stream_id, priority: Priority::parse(payload) })
    }

    pub(super) fn encode(&self, dst: &mut Vec<u8>) {
        Head { length: 5, kind: kind::PRIORITY, flags: 0, stream_id: self.stream_id }.encode(dst);
        self.priority.write(dst);
    }
}
