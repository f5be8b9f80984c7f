//! Frames of types this codec does not implement (RFC 9113 §4.1, §5.5): parsed, reported,
//! and ignored by the engine.

use super::{length_u32, Head};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unknown<'a> {
    pub kind: u8,
    pub flags: u8,
    pub stream_id: u32,
    pub payload: &'a [u8],
}

impl<'a> Unknown<'a> {
    pub(super) fn decode(head: Head, payload: &'a [u8]) -> Unknown<'a> {
        Unknown { kind: head.kind, flags: head.flags, stream_id: head.stream_id, payload }
    }

    pub(super) fn encode(&self, dst: &mut Vec<u8>) {
        let length = length_u32(self.payload.len());
        Head { length, kind: self.kind, flags: self.flags, stream_id: self.stream_id }.encode(dst);
        dst.extend_from_slice(self.payload);
    }
}
