//! DATA frames (RFC 9113 §6.1).

use super::{
    flags, kind, length_u32, padded_len, strip_padding, write_pad_len, write_padding, Head, PaddingErrors,
};
use crate::error::{conn, Error, ErrorCode};

const PADDING_ERRORS: PaddingErrors = PaddingErrors {
    too_short: "padded DATA frame too short for its pad length field (RFC 9113 6.1)",
    too_much_padding: "DATA padding is as long as the frame payload or longer (RFC 9113 6.1)",
};

/// A DATA frame. `data` excludes padding; `flow_len` is what the frame counts against the
/// flow-control windows: the whole payload, padding and pad-length octet included (§6.9.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Data<'a> {
    pub stream_id: u32,
    pub end_stream: bool,
    pub data: &'a [u8],
    pub pad_len: Option<u8>,
}

impl<'a> Data<'a> {
    pub(super) fn decode(head: Head, payload: &'a [u8]) -> Result<Data<'a>, Error> {
        if head.stream_id == 0 {
            return Err(conn(
                ErrorCode::PROTOCOL_ERROR,
                "DATA frames MUST be associated with a stream (RFC 9113 6.1)",
            ));
        }
        let (data, pad_len) = strip_padding(&head, payload, 0, &PADDING_ERRORS)?;
        Ok(Data { stream_id: head.stream_id, end_stream: head.has(flags::END_STREAM), data, pad_len })
    }

    /// Bytes this frame counts against the flow-control windows (§6.9.1).
    pub fn flow_len(&self) -> u32 {
        (self.data.len() + padded_len(self.pad_len)) as u32
    }

    pub(super) fn encode(&self, dst: &mut Vec<u8>) {
        let length = length_u32(self.data.len() + padded_len(self.pad_len));
        encode_head(self.stream_id, length, self.end_stream, self.pad_len.is_some(), dst);
        let pad = write_pad_len(self.pad_len, dst);
        dst.extend_from_slice(self.data);
        write_padding(pad, dst);
    }
}

/// Appends only the header of an unpadded DATA frame of `length` bytes; the caller appends the
/// payload (or writes it separately, without copying it into `dst`).
pub fn encode_head(stream_id: u32, length: u32, end_stream: bool, padded: bool, dst: &mut Vec<u8>) {
    let mut f = if end_stream { flags::END_STREAM } else { 0 };
    if padded {
        f |= flags::PADDED;
    }
    Head { length, kind: kind::DATA, flags: f, stream_id }.encode(dst);
}
