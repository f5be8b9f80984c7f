//! RST_STREAM frames (RFC 9113 §6.4).

use super::{kind, read_u32, Head};
use crate::error::{conn, Error, ErrorCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RstStream {
    pub stream_id: u32,
    pub error_code: ErrorCode,
}

impl RstStream {
    pub(super) fn decode(head: Head, payload: &[u8]) -> Result<RstStream, Error> {
        if payload.len() != 4 {
            return Err(conn(
                ErrorCode::FRAME_SIZE_ERROR,
                "RST_STREAM frame length is not 4 octets (RFC 9113 6.4)",
            ));
        }
        if head.stream_id == 0 {
            return Err(conn(
                ErrorCode::PROTOCOL_ERROR,
                "RST_STREAM frames MUST be associated with a stream (RFC 9113 6.4)",
            ));
        }
        Ok(RstStream { stream_id: head.stream_id, error_code: ErrorCode(read_u32(payload)) })
    }

    pub(super) fn encode(&self, dst: &mut Vec<u8>) {
        Head { length: 4, kind: kind::RST_STREAM, flags: 0, stream_id: self.stream_id }.encode(dst);
        dst.extend_from_slice(&self.error_code.0.to_be_bytes());
    }
}
