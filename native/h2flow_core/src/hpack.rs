//! HPACK (RFC 7541): a thin wrapper over `loona-hpack` that adds the limits a server needs.
//!
//! What the wrapper adds to the crate's decoder:
//! - its own Huffman decoding, about a hundred times faster than the crate's and without an
//!   allocation per string: strings are decoded to raw literals before the crate sees them;
//! - dynamic table size updates are accepted only at the beginning of a block (RFC 7541 4.2);
//!   the crate would apply one found between two fields;
//! - a size update above our SETTINGS_HEADER_TABLE_SIZE is checked here before it reaches the
//!   crate, whose `set_max_table_size` asserts;
//! - SETTINGS_MAX_HEADER_LIST_SIZE is enforced while decoding: past the limit fields are
//!   dropped instead of stored, so a block that references one large table entry thousands of
//!   times (the HPACK bomb, CVE-2016-6581) costs no memory, yet the block is still decoded to
//!   its end so the dynamic table stays in step with the peer's encoder;
//! - decoded fields go into one flat [`HeaderList`] buffer, reused across blocks.
//!
//! The encoder adds what the crate lacks: dynamic table size updates after the peer changes
//! SETTINGS_HEADER_TABLE_SIZE (RFC 7541 4.2, 6.3), and never-indexed literals for credentials
//! (RFC 7541 7.1.3).

use std::borrow::Cow;

/// SETTINGS_HEADER_TABLE_SIZE until SETTINGS say otherwise (RFC 9113 6.5.2), and the most our
/// encoder will use whatever the peer allows: a bigger table buys little for responses.
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// Per-field overhead in the header list size and the dynamic table size (RFC 9113 6.5.2,
/// RFC 7541 4.1).
const FIELD_OVERHEAD: usize = 32;

/// A decoded header list stored flat: one byte buffer plus offsets, no allocation per field.
///
/// Field `i` is `buf[start..name_end]` (name) and `buf[name_end..value_end]` (value), where
/// `start` is the previous field's `value_end`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HeaderList {
    buf: Vec<u8>,
    /// (name_end, value_end) per field.
    ends: Vec<(usize, usize)>,
}

impl HeaderList {
    pub fn new() -> Self {
        Self::default()
    }

    /// Empties the list, keeping its memory for the next block.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }

    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        self.buf.extend_from_slice(name);
        let name_end = self.buf.len();
        self.buf.extend_from_slice(value);
        self.ends.push((name_end, self.buf.len()));
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(name_end, value_end)| {
            // ok: push() wrote these offsets in increasing order within buf, and clear()
            // resets both vectors together.
            let field = (&self.buf[start..name_end], &self.buf[name_end..value_end]);
            start = value_end;
            field
        })
    }

    /// The value of the first field with this name.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// RFC 9113 6.5.2 size: sum of name + value + 32 per field.
    pub fn list_size(&self) -> usize {
        self.buf.len() + FIELD_OVERHEAD * self.ends.len()
    }
}

impl std::fmt::Debug for HeaderList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v))))
            .finish()
    }
}

/// Why a header block could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// COMPRESSION_ERROR, a connection error (RFC 9113 4.3): message cites RFC 7541 section.
    #[error("{0}")]
    Compression(&'static str),
    /// The decoded list passed max_header_list_size; the block was decoded to its end.
    #[error("header list larger than SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 6.5.2)")]
    HeaderListTooLarge,
}

/// The HPACK decoder for one connection's header blocks.
pub struct Decoder {
    inner: ::hpack::Decoder<'static>,
    /// Our SETTINGS_HEADER_TABLE_SIZE: once the peer acknowledged it, no size update may go
    /// above it.
    header_table_size: usize,
    /// The most a size update may ask for: the initial 4096 octets or our setting, whichever
    /// is larger, until the peer acknowledges our setting (RFC 9113 6.5.3), then our setting.
    size_limit: usize,
    max_header_list_size: usize,
    /// The dynamic table's maximum size as last set by the peer (the crate does not expose it).
    table_max: usize,
    /// Set once our SETTINGS are acknowledged while the peer's table is still larger than we
    /// allow: its next block must begin by shrinking the table (RFC 7541 4.2).
    update_required: bool,
    /// The block's field representations with every Huffman string decoded to a raw literal,
    /// reused from block to block.
    raw: Vec<u8>,
    /// One decoded Huffman string, before its length prefix is known.
    huffman: Vec<u8>,
}

impl Decoder {
    /// header_table_size: our SETTINGS_HEADER_TABLE_SIZE (the most the peer's encoder may use
    /// once it acknowledged it; dynamic table size updates above it are then a
    /// COMPRESSION_ERROR); max_header_list_size: our SETTINGS_MAX_HEADER_LIST_SIZE, enforced
    /// while decoding.
    ///
    /// The table starts at the protocol's initial 4096 octets whatever `header_table_size` is:
    /// a client may encode its first requests, size updates up to 4096 included, before it has
    /// read our SETTINGS (RFC 9113 6.5.2, 6.5.3). Call [`Decoder::header_table_size_acked`]
    /// when the peer acknowledges our SETTINGS: from then on `header_table_size` is the limit,
    /// and if it is smaller the next block must begin with the size update that brings the
    /// table down (RFC 7541 4.2); without the call a peer that keeps 4096 octets is tolerated.
    pub fn new(header_table_size: u32, max_header_list_size: u32) -> Decoder {
        let header_table_size = header_table_size as usize;
        let size_limit = header_table_size.max(DEFAULT_TABLE_SIZE);
        let mut inner = ::hpack::Decoder::new();
        // Size updates never reach the crate (decode applies them itself), but keep its guard.
        inner.set_max_allowed_table_size(size_limit);
        Decoder {
            inner,
            header_table_size,
            size_limit,
            max_header_list_size: max_header_list_size as usize,
            table_max: DEFAULT_TABLE_SIZE,
            update_required: false,
            raw: Vec::new(),
            huffman: Vec::new(),
        }
    }

    /// The peer acknowledged our SETTINGS_HEADER_TABLE_SIZE. If its table is still larger than
    /// that, the next block must begin with a size update that brings it down (RFC 7541 4.2).
    pub fn header_table_size_acked(&mut self) {
        self.size_limit = self.header_table_size;
        if self.table_max > self.header_table_size {
            self.update_required = true;
        }
    }

    /// Decodes one complete header block (HEADERS + CONTINUATIONs assembled) into `out`
    /// (cleared first). On the list-size limit: stops storing fields the moment the running
    /// list size passes the limit, but keeps decoding to the end of the block so the dynamic
    /// table stays in sync with the peer, then returns Err(DecodeError::HeaderListTooLarge).
    /// Any HPACK error → Err(DecodeError::Compression(msg)), after which the decoder's state
    /// is undefined: the connection must end (RFC 9113 4.3).
    pub fn decode(&mut self, block: &[u8], out: &mut HeaderList) -> Result<(), DecodeError> {
        out.clear();
        let fields_start = self.apply_size_updates(block)?;
        let fields = block.get(fields_start..).unwrap_or_default();
        self.raw.clear();
        let fields =
            if rewrite_fields(fields, &mut self.raw, &mut self.huffman)? { &self.raw } else { fields };

        let max = self.max_header_list_size;
        let mut size = 0usize;
        let mut too_large = false;
        let result = self.inner.decode_with_cb(fields, |name: Cow<[u8]>, value: Cow<[u8]>| {
            size = size.saturating_add(name.len() + value.len() + FIELD_OVERHEAD);
            if size > max {
                too_large = true;
            } else {
                out.push(&name, &value);
            }
        });
        match result {
            Err(e) => Err(DecodeError::Compression(describe(e))),
            Ok(()) if too_large => Err(DecodeError::HeaderListTooLarge),
            Ok(()) => Ok(()),
        }
    }

    /// Applies the size updates at the beginning of `block` and returns where its field
    /// representations begin.
    fn apply_size_updates(&mut self, block: &[u8]) -> Result<usize, DecodeError> {
        let mut pos = 0;
        while let Some(rest) = block.get(pos..).filter(|r| r.first().is_some_and(|&b| b & 0xe0 == 0x20)) {
            let (size, len) = decode_integer(rest, 5)?;
            if size > self.size_limit {
                return Err(DecodeError::Compression(
                    "dynamic table size update above SETTINGS_HEADER_TABLE_SIZE (RFC 7541 6.3)",
                ));
            }
            // ok: set_max_table_size asserts size <= the allowed size given in new(), which
            // is the largest size_limit ever is: checked just above.
            self.inner.set_max_table_size(size);
            self.table_max = size;
            pos += len;
        }
        if self.update_required {
            if self.table_max > self.header_table_size {
                return Err(DecodeError::Compression(
                    "expected a dynamic table size update after SETTINGS_HEADER_TABLE_SIZE \
                     was reduced (RFC 7541 4.2)",
                ));
            }
            self.update_required = false;
        }
        Ok(pos)
    }
}

/// Copies the field representations of a block to `dst`, with every Huffman-coded string
/// (RFC 7541 5.2) decoded to a raw literal, for the crate to decode.
///
/// Why: the crate builds a hash table of the whole Huffman code for every Huffman string and
/// walks it bit by bit (~500 µs for a browser's first request, against ~1 µs for the same
/// fields sent raw), and returns each such string in a fresh allocation. Browsers Huffman-code
/// nearly every literal.
///
/// The walk also finds a dynamic table size update after the first field (RFC 7541 4.2: it
/// "MUST occur at the beginning"), which the crate would apply anywhere.
///
/// Returns whether anything was rewritten; if not, `dst` is left empty and the block can be
/// decoded as it is.
fn rewrite_fields(block: &[u8], dst: &mut Vec<u8>, scratch: &mut Vec<u8>) -> Result<bool, DecodeError> {
    // block[..copied] is already in dst, rewritten.
    let mut copied = 0;
    let mut pos = 0;
    while let Some(&first) = block.get(pos) {
        // The representation is told by its leading bits (RFC 7541 6).
        let name_prefix = match first {
            0x80..=0xff => None,
            0x40..=0x7f => Some(6),
            0x20..=0x3f => {
                return Err(DecodeError::Compression(
                    "dynamic table size update after a header field (RFC 7541 4.2)",
                ))
            }
            _ => Some(4),
        };
        let (index, len) = decode_integer(block.get(pos..).unwrap_or_default(), name_prefix.unwrap_or(7))?;
        pos += len;
        if name_prefix.is_some() {
            if index == 0 {
                pos = rewrite_string(block, pos, &mut copied, dst, scratch)?;
            }
            pos = rewrite_string(block, pos, &mut copied, dst, scratch)?;
        }
    }
    if copied == 0 {
        return Ok(false);
    }
    dst.extend_from_slice(block.get(copied..).unwrap_or_default());
    Ok(true)
}

/// Skips the string literal at `block[pos..]`, or rewrites it as a raw literal if it is
/// Huffman-coded; returns where it ends.
fn rewrite_string(
    block: &[u8],
    pos: usize,
    copied: &mut usize,
    dst: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Result<usize, DecodeError> {
    let at = block.get(pos..).unwrap_or_default();
    let (len, prefix_len) = decode_integer(at, 7)?;
    let data = at
        .get(prefix_len..)
        .and_then(|rest| rest.get(..len))
        .ok_or(DecodeError::Compression("string literal past the end of the block (RFC 7541 5.2)"))?;
    let end = pos + prefix_len + len;
    if at.first().is_some_and(|&b| b & 0x80 != 0) {
        dst.extend_from_slice(block.get(*copied..pos).unwrap_or_default());
        scratch.clear();
        huffman_decode(data, scratch)?;
        encode_integer(scratch.len(), 7, 0, dst);
        dst.extend_from_slice(scratch);
        *copied = end;
    }
    Ok(end)
}

/// Decodes an integer with an N-bit prefix (RFC 7541 5.1); returns it and its encoded length.
/// Like the crate, allows at most four continuation octets: values up to 2^28 are plenty for
/// any index, length or table size, and longer encodings are the "excessively large" kind
/// that 5.1 says to reject.
fn decode_integer(buf: &[u8], prefix_bits: u32) -> Result<(usize, usize), DecodeError> {
    const TRUNCATED: DecodeError =
        DecodeError::Compression("integer past the end of the block (RFC 7541 5.1)");
    let mask = (1usize << prefix_bits) - 1;
    let first = *buf.first().ok_or(TRUNCATED)? as usize & mask;
    if first < mask {
        return Ok((first, 1));
    }
    let mut value = mask;
    for (i, &b) in buf.iter().skip(1).take(4).enumerate() {
        value += ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 2));
        }
    }
    if buf.len() >= 5 {
        Err(DecodeError::Compression("integer too large (RFC 7541 5.1)"))
    } else {
        Err(TRUNCATED)
    }
}

/// Code lengths of the HPACK Huffman code (RFC 7541 Appendix B) by symbol; 256 is EOS.
///
/// The code is canonical: the codes of one length are consecutive in symbol order, and each
/// length starts where the previous one ended, shifted left by one. The lengths alone define
/// every code, and decoding needs no tree.
#[rustfmt::skip]
const HUFFMAN_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    30,
];

const EOS: u16 = 256;

/// Decoding tables for the canonical code, built at compile time.
struct Huffman {
    /// By the next 8 input bits: (symbol, length) of a code of at most 8 bits starting there,
    /// length 0 if the code there is longer.
    fast: [(u16, u8); 256],
    /// By length: the first code, its index in `symbols`, and the end of the length's codes
    /// left-aligned to 30 bits (the longest code).
    first: [u32; 31],
    offset: [u16; 31],
    limit: [u32; 31],
    /// Symbols ordered by (length, symbol): code order.
    symbols: [u16; 257],
}

const HUFFMAN: Huffman = {
    let mut count = [0u32; 31];
    let mut s = 0;
    while s < 257 {
        count[HUFFMAN_LENGTHS[s] as usize] += 1;
        s += 1;
    }
    let mut h =
        Huffman { fast: [(0, 0); 256], first: [0; 31], offset: [0; 31], limit: [0; 31], symbols: [0; 257] };
    let (mut code, mut offset, mut len) = (0u32, 0u16, 1);
    while len <= 30 {
        h.first[len] = code;
        h.offset[len] = offset;
        code += count[len];
        offset += count[len] as u16;
        h.limit[len] = code << (30 - len);
        code <<= 1;
        len += 1;
    }
    let mut next = h.offset;
    let mut s = 0;
    while s < 257 {
        let len = HUFFMAN_LENGTHS[s] as usize;
        let index = next[len];
        next[len] += 1;
        h.symbols[index as usize] = s as u16;
        if len <= 8 {
            let code = h.first[len] + (index - h.offset[len]) as u32;
            let mut k = 0;
            while k < 1 << (8 - len) {
                h.fast[((code << (8 - len)) + k) as usize] = (s as u16, len as u8);
                k += 1;
            }
        }
        s += 1;
    }
    h
};

/// Decodes a Huffman-coded string (RFC 7541 5.2) onto the end of `dst`.
fn huffman_decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), DecodeError> {
    let total = src.len() * 8;
    let mut pos = 0;
    while pos < total {
        let peek = peek30(src, pos);
        // ok: the indices below are masked to 8 bits (`fast` has 256 entries) or a code length
        // within 9..=30 (the per-length tables have 31).
        let (symbol, len) = match HUFFMAN.fast[(peek >> 22) as usize & 0xff] {
            (symbol, len) if len != 0 => (symbol, len as usize),
            _ => {
                // The code is the first length whose codes, left-aligned, end above peek.
                let mut len = 9;
                while len < 30 && peek >= HUFFMAN.limit[len] {
                    len += 1;
                }
                let index =
                    (HUFFMAN.offset[len] as u32 + (peek >> (30 - len))).wrapping_sub(HUFFMAN.first[len]);
                (HUFFMAN.symbols.get(index as usize).copied().unwrap_or(EOS), len)
            }
        };
        let left = total - pos;
        if len > left {
            // Past the last whole code: the padding, the most significant bits of EOS, i.e.
            // ones, and fewer than 8 of them. peek30 reads ones past the end, so it is all ones
            // exactly when the padding is.
            if left > 7 || peek != 0x3fff_ffff {
                return Err(DecodeError::Compression(
                    "invalid padding in a Huffman-encoded string (RFC 7541 5.2)",
                ));
            }
            return Ok(());
        }
        if symbol == EOS {
            return Err(DecodeError::Compression("EOS symbol in a Huffman-encoded string (RFC 7541 5.2)"));
        }
        dst.push(symbol as u8);
        pos += len;
    }
    Ok(())
}

/// The 30 bits of `src` from bit `pos` on, with ones past its end.
fn peek30(src: &[u8], pos: usize) -> u32 {
    let start = pos / 8;
    let mut word = 0u64;
    for i in start..start + 5 {
        word = word << 8 | u64::from(src.get(i).copied().unwrap_or(0xff));
    }
    (word >> (10 - pos % 8)) as u32 & 0x3fff_ffff
}

fn describe(e: ::hpack::decoder::DecoderError) -> &'static str {
    use ::hpack::decoder::{DecoderError as D, IntegerDecodingError as I, StringDecodingError as S};
    use ::hpack::huffman::HuffmanDecoderError as H;
    match e {
        D::HeaderIndexOutOfBounds => "index not in the static or dynamic table (RFC 7541 2.3.3)",
        D::IntegerDecodingError(I::TooManyOctets | I::ValueTooLarge) => "integer too large (RFC 7541 5.1)",
        D::IntegerDecodingError(_) => "integer past the end of the block (RFC 7541 5.1)",
        D::StringDecodingError(S::NotEnoughOctets) => {
            "string literal past the end of the block (RFC 7541 5.2)"
        }
        D::StringDecodingError(S::HuffmanDecoderError(H::EOSInString)) => {
            "EOS symbol in a Huffman-encoded string (RFC 7541 5.2)"
        }
        D::StringDecodingError(S::HuffmanDecoderError(_)) => {
            "invalid padding in a Huffman-encoded string (RFC 7541 5.2)"
        }
        D::InvalidMaxDynamicSize => {
            "dynamic table size update above SETTINGS_HEADER_TABLE_SIZE (RFC 7541 6.3)"
        }
        D::SizeUpdateAtEnd => "dynamic table size update after a header field (RFC 7541 4.2)",
        _ => "invalid header block (RFC 7541 3)",
    }
}

/// Static table indices (RFC 7541 Appendix A) of fields sent as never-indexed literals.
const AUTHORIZATION: usize = 23;
const COOKIE: usize = 32;
const PROXY_AUTHORIZATION: usize = 49;
const SET_COOKIE: usize = 55;

/// Cookies this short are guessable from compressed sizes if indexed (RFC 7541 7.1.3).
const SHORT_COOKIE: usize = 20;

/// The HPACK encoder for the header blocks we send.
pub struct Encoder {
    inner: ::hpack::Encoder<'static>,
    /// The dynamic table size we use: min(peer's SETTINGS_HEADER_TABLE_SIZE, 4096).
    size: usize,
    /// The smallest size since the last block, when a size update is still to be sent.
    size_update_min: Option<usize>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// Dynamic table 4096, the RFC default.
    pub fn new() -> Encoder {
        Encoder { inner: ::hpack::Encoder::new(), size: DEFAULT_TABLE_SIZE, size_update_min: None }
    }

    /// Applies the peer's SETTINGS_HEADER_TABLE_SIZE: we use min(value, 4096); when the size we
    /// use changes, the next block starts with a dynamic table size update (RFC 7541 4.2, 6.3),
    /// the smallest size since the last block first if the size also grew back since then.
    pub fn set_peer_table_size(&mut self, size: u32) {
        let size = (size as usize).min(DEFAULT_TABLE_SIZE);
        match self.size_update_min {
            None if size == self.size => return,
            None => self.size_update_min = Some(size.min(self.size)),
            Some(min) => self.size_update_min = Some(min.min(size)),
        }
        self.size = size;
    }

    /// Appends the encoded block for these fields.
    pub fn encode<'a>(&mut self, fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>, dst: &mut Vec<u8>) {
        if let Some(min) = self.size_update_min.take() {
            // The peer's decoder applies the updates in order at the start of this block; the
            // crate's table must evict the same entries.
            if min < self.size {
                encode_integer(min, 5, 0x20, dst);
                self.inner.set_max_table_size(min);
            }
            encode_integer(self.size, 5, 0x20, dst);
            self.inner.set_max_table_size(self.size);
        }
        for (name, value) in fields {
            let never_indexed = match name {
                b"authorization" => Some(AUTHORIZATION),
                b"proxy-authorization" => Some(PROXY_AUTHORIZATION),
                b"set-cookie" => Some(SET_COOKIE),
                b"cookie" if value.len() < SHORT_COOKIE => Some(COOKIE),
                _ => None,
            };
            match never_indexed {
                // Literal Header Field Never Indexed, indexed name (RFC 7541 6.2.3).
                Some(index) => {
                    encode_integer(index, 4, 0x10, dst);
                    encode_integer(value.len(), 7, 0, dst);
                    dst.extend_from_slice(value);
                }
                // Writing into a Vec cannot fail.
                None => {
                    let _ = self.inner.encode_header_into((name, value), dst);
                }
            }
        }
    }
}

fn encode_integer(value: usize, prefix_bits: u8, leading: u8, dst: &mut Vec<u8>) {
    // Writing into a Vec cannot fail.
    let _ = ::hpack::encoder::encode_integer_into(value, prefix_bits, leading, dst);
}
