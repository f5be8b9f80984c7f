//! WINDOW_UPDATE frames (RFC 9113 §6.9).

use super::{kind, read_u32, Head, MAX_WINDOW_SIZE};
use crate::error::{conn, stream, Error, ErrorCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowUpdate {
    pub stream_id: u32,
    /// 1..=2^31-1; the reserved bit is dropped on receipt.
    pub increment: u32,
}

impl WindowUpdate {
    pub(super) fn decode(head: Head, payload: &[u8]) -> Result<WindowUpdate, Error> {
        if payload.len() != 4 {
            return Err(conn(
                ErrorCode::FRAME_SIZE_ERROR,
                "WINDOW_UPDATE frame length is not 4 octets (RFC 9113 6.9)",
            ));
        }
        let increment = read_u32(payload) & MAX_WINDOW_SIZE;
        if increment == 0 {
            return Err(match head.stream_id {
                0 => conn(
                    ErrorCode::PROTOCOL_ERROR,
                    "WINDOW_UPDATE with an increment of 0 on the connection (RFC 9113 6.9)",
                ),
                id => stream(
                    id,
                    ErrorCode::PROTOCOL_ERROR,
                    "WINDOW_UPDATE with an increment of 0 on a stream (RFC 9113 6.9)",
                ),
            });
        }
        Ok(WindowUpdate { stream_id: head.stream_id, increment })
    }

    pub(super) fn encode(&self, dst: &mut Vec<u8>) {
        let head = Head { length: 4, kind: kind::WINDOW_UPDATE, flags: 0, stream_id: self.stream_id };
        head.encode(dst);
        dst.extend_from_slice(&(self.increment & MAX_WINDOW_SIZE).to_be_bytes());
    }
}
