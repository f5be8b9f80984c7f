//! Frames that carry a field block: HEADERS (RFC 9113 §6.2), PUSH_PROMISE (§6.6) and
//! CONTINUATION (§6.10). The block fragments stay HPACK-encoded here; the engine assembles a
//! block across CONTINUATION frames and hands it to [`crate::hpack`].

use super::{
    flags, kind, length_u32, padded_len, read_u32, strip_padding, write_pad_len, write_padding, Head,
    PaddingErrors, Priority, MAX_MAX_FRAME_SIZE, MAX_STREAM_ID,
};
use crate::error::{conn, Error, ErrorCode};

const HEADERS_PADDING_ERRORS: PaddingErrors = PaddingErrors {
    too_short: "HEADERS frame too short for its padding and priority fields (RFC 9113 6.2)",
    too_much_padding: "HEADERS padding exceeds the room left for the field block fragment (RFC 9113 6.2)",
};

const PUSH_PROMISE_PADDING_ERRORS: PaddingErrors = PaddingErrors {
    too_short: "PUSH_PROMISE frame too short for its fields (RFC 9113 6.6)",
    too_much_padding:
        "PUSH_PROMISE padding exceeds the room left for the field block fragment (RFC 9113 6.6)",
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Headers<'a> {
    pub stream_id: u32,
    pub end_stream: bool,
    pub end_headers: bool,
    pub priority: Option<Priority>,
    pub fragment: &'a [u8],
    pub pad_len: Option<u8>,
}

impl<'a> Headers<'a> {
    pub(super) fn decode(head: Head, payload: &'a [u8]) -> Result<Headers<'a>, Error> {
        if head.stream_id == 0 {
            return Err(conn(
                ErrorCode::PROTOCOL_ERROR,
                "HEADERS frames MUST be associated with a stream (RFC 9113 6.2)",
            ));
        }
        let fixed = if head.has(flags::PRIORITY) { 5 } else { 0 };
        let (content, pad_len) = strip_padding(&head, payload, fixed, &HEADERS_PADDING_ERRORS)?;
        // ok: strip_padding returned at least `fixed` bytes, so 5 when PRIORITY is set.
        let priority = (fixed == 5).then(|| Priority::parse(content));
        Ok(Headers {
            stream_id: head.stream_id,
            end_stream: head.has(flags::END_STREAM),
            end_headers: head.has(flags::END_HEADERS),
            priority,
            // ok: content.len() >= fixed, as above.
            fragment: &content[fixed..],
            pad_len,
        })
    }

    pub(super) fn encode(&self, dst: &mut Vec<u8>) {
        let fixed = if self.priority.is_some() { 5 } else { 0 };
        let length = length_u32(padded_len(self.pad_len) + fixed + self.fragment.len());
        let mut f = 0;
        if self.end_stream {
            f |= flags::END_STREAM;
        }
        if self.end_headers {
            f |= flags::END_HEADERS;
        }
        if self.pad_len.is_some() {
            f |= flags::PADDED;
        }
        if self.priority.is_some() {
            f |= flags::PRIORITY;
        }
        Head { length, kind: kind::HEADERS, flags: f, stream_id: self.stream_id }.encode(dst);
        let pad = write_pad_len(self.pad_len, dst);
        if let Some(p) = &self.priority {
            p.write(dst);
        }
        dst.extend_from_slice(self.fragment);
        write_padding(pad, dst);
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushPromise<'a> {
    pub stream_id: u32,
    pub promised_stream_id: u32,
    pub end_headers: bool,
    pub fragment: &'a [u8],
    pub pad_len: Option<u8>,
}

impl<'a> PushPromise<'a> {
    pub(super) fn decode(head: Head, payload: &'a [u8]) -> Result<PushPromise<'a>, Error> {
        if head.stream_id == 0 {
            return Err(conn(
                ErrorCode::PROTOCOL_ERROR,
                "PUSH_PROMISE frames MUST be associated with a stream (RFC 9113 6.6)",
            ));
        }
        let (content, pad_len) = strip_padding(&head, payload, 4, &PUSH_PROMISE_PADDING_ERRORS)?;
        Ok(PushPromise {
            stream_id: head.stream_id,
            promised_stream_id: read_u32(content) & MAX_STREAM_ID,
            end_headers: head.has(flags::END_HEADERS),
            // ok: strip_padding returned at least the 4 bytes of the promised stream id.
            fragment: &content[4..],
            pad_len,
        })
    }

    pub(super) fn encode(&self, dst: &mut Vec<u8>) {
        let length = length_u32(padded_len(self.pad_len) + 4 + self.fragment.len());
        let mut f = if self.end_headers { flags::END_HEADERS } else { 0 };
        if self.pad_len.is_some() {
            f |= flags::PADDED;
        }
        Head { length, kind: kind::PUSH_PROMISE, flags: f, stream_id: self.stream_id }.encode(dst);
        let pad = write_pad_len(self.pad_len, dst);
        dst.extend_from_slice(&(self.promised_stream_id & MAX_STREAM_ID).to_be_bytes());
        dst.extend_from_slice(self.fragment);
        write_padding(pad, dst);
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Continuation<'a> {
    pub stream_id: u32,
    pub end_headers: bool,
    pub fragment: &'a [u8],
}

impl<'a> Continuation<'a> {
    pub(super) fn decode(head: Head, payload: &'a [u8]) -> Result<Continuation<'a>, Error> {
        if head.stream_id == 0 {
            return Err(conn(
                ErrorCode::PROTOCOL_ERROR,
                "CONTINUATION frames MUST be associated with a stream (RFC 9113 6.10)",
            ));
        }
        Ok(Continuation {
            stream_id: head.stream_id,
            end_headers: head.has(flags::END_HEADERS),
            fragment: payload,
        })
    }

    pub(super) fn encode(&self, dst: &mut Vec<u8>) {
        let f = if self.end_headers { flags::END_HEADERS } else { 0 };
        let head = Head {
            length: length_u32(self.fragment.len()),
            kind: kind::CONTINUATION,
            flags: f,
            stream_id: self.stream_id,
        };
        head.encode(dst);
        dst.extend_from_slice(self.fragment);
    }
}

/// Appends a whole header block as one HEADERS frame followed by as many CONTINUATION frames
/// as `max_frame_size` (the peer's SETTINGS_MAX_FRAME_SIZE) requires (§4.3, §6.10).
pub fn encode_header_block(
    stream_id: u32,
    block: &[u8],
    end_stream: bool,
    max_frame_size: u32,
    dst: &mut Vec<u8>,
) {
    // A frame cannot be longer than 2^24-1 whatever the caller passes (§4.1: 24-bit length).
    let max = max_frame_size.clamp(1, MAX_MAX_FRAME_SIZE) as usize;
    let first = &block[..block.len().min(max)];
    let mut rest = &block[first.len()..];
    dst.reserve(block.len() + super::HEADER_LEN * (1 + rest.len() / max + 1));
    Headers {
        stream_id,
        end_stream,
        end_headers: rest.is_empty(),
        priority: None,
        fragment: first,
        pad_len: None,
    }
    .encode(dst);
    while !rest.is_empty() {
        let (fragment, tail) = rest.split_at(rest.len().min(max));
        rest = tail;
        Continuation { stream_id, end_headers: rest.is_empty(), fragment }.encode(dst);
    }
}
