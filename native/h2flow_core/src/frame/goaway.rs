//! GOAWAY frames (RFC 9113 §6.8).

use super::{kind, length_u32, read_u32, Head, MAX_STREAM_ID};
use crate::error::{conn, Error, ErrorCode};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoAway<'a> {
    pub last_stream_id: u32,
    pub error_code: ErrorCode,
    pub debug_data: &'a [u8],
}

impl<'a> GoAway<'a> {
    pub(super) fn decode(head: Head, payload: &'a [u8]) -> Result<GoAway<'a>, Error> {
        if head.stream_id != 0 {
            return Err(conn(
                ErrorCode::PROTOCOL_ERROR,
                "GOAWAY frames MUST NOT be associated with a stream (RFC 9113 6.8)",
            ));
        }
        if payload.len() < 8 {
            return Err(conn(
                ErrorCode::FRAME_SIZE_ERROR,
                "GOAWAY frame shorter than 8 octets (RFC 9113 6.8)",
            ));
        }
        // ok: the payload has at least 8 bytes.
        Ok(GoAway {
            last_stream_id: read_u32(payload) & MAX_STREAM_ID,
            error_code: ErrorCode(read_u32(&payload[4..])),
            debug_data: &payload[8..],
        })
    }

    pub(super) fn encode(&self, dst: &mut Vec<u8>) {
        let length = length_u32(8 + self.debug_data.len());
        Head { length, kind: kind::GOAWAY, flags: 0, stream_id: 0 }.encode(dst);
        dst.extend_from_slice(&(self.last_stream_id & MAX_STREAM_ID).to_be_bytes());
        dst.extend_from_slice(&self.error_code.0.to_be_bytes());
        dst.extend_from_slice(self.debug_data);
    }
}
