//! PING frames (RFC 9113 §6.7).

use super::{flags, kind, Head};
use crate::error::{conn, Error, ErrorCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ping {
    pub ack: bool,
    pub data: [u8; 8],
}

impl Ping {
    pub(super) fn decode(head: Head, payload: &[u8]) -> Result<Ping, Error> {
        if head.stream_id != 0 {
            return Err(conn(
                ErrorCode::PROTOCOL_ERROR,
                "PING frames MUST NOT be associated with a stream (RFC 9113 6.7)",
            ));
        }
        let Ok(data) = <[u8; 8]>::try_from(payload) else {
            return Err(conn(
                ErrorCode::FRAME_SIZE_ERROR,
                "PING frame length is not 8 octets (RFC 9113 6.7)",
            ));
        };
        Ok(Ping { ack: head.has(flags::ACK), data })
    }

    pub(super) fn encode(&self, dst: &mut Vec<u8>) {
        let f = if self.ack { flags::ACK } else { 0 };
        Head { length: 8, kind: kind::PING, flags: f, stream_id: 0 }.encode(dst);
        dst.extend_from_slice(&self.data);
    }
}
