//! The chunked transfer coding (RFC 9112 §7.1), decoded strictly and incrementally, one byte
//! at a time for the chunk lines (so a line split across reads needs no buffer) and by ranges
//! for chunk data (so data stays in the caller's input):
//!
//! ```text
//! chunked-body   = *chunk last-chunk trailer-section CRLF
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! chunk-ext-val  = token / quoted-string
//! ```
//!
//! Anything else is an error (400): a size that is not hexadecimal or overflows 64 bits,
//! whitespace not followed by `;`, an extension without a name, a bare CR or LF, data not
//! followed by CRLF. Lenient chunk parsing is a classic request-smuggling vector (RFC 9112
//! §11.2): two parsers that disagree on where a chunk ends disagree on where the next request
//! starts.

use super::error::{reject, Reject, Rejected};
use super::head::Scan;
use super::Config;
use crate::fields::is_tchar;
use crate::hpack::HeaderList;

/// What the decoder found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Piece {
    /// Chunk data: this range of the buffer passed to [`Decoder::next`].
    Data { start: usize, len: usize },
    /// The body ended, with its trailer fields if there were any.
    End(Option<HeaderList>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ext {
    /// Whitespace after the size or a value: only `;` may follow.
    BeforeSemi,
    BeforeName,
    Name,
    AfterName,
    BeforeValue,
    Token,
    Quoted,
    QuotedEscape,
    AfterQuoted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Size {
        digits: bool,
    },
    Ext(Ext),
    /// The CR that ends a chunk line was seen.
    Lf,
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    Trailers,
    Done,
}

#[derive(Debug)]
pub(super) struct Decoder {
    state: State,
    size: u64,
    line_len: usize,
    trailers: Vec<u8>,
    scan: Scan,
}

const INVALID_SIZE: Rejected =
    reject(Reject::InvalidChunk, "chunk size is not a hexadecimal number (RFC 9112 7.1)");
const INVALID_EXT: Rejected = reject(Reject::InvalidChunk, "invalid chunk extension (RFC 9112 7.1.1)");

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            state: State::Size { digits: false },
            size: 0,
            line_len: 0,
            trailers: Vec::new(),
            scan: Scan::trailers(),
        }
    }

    /// Decodes from the start of `buf`: returns how many bytes were used and, when it found
    /// one, the next piece (data ranges are relative to `buf`). Call again with the rest.
    pub fn next(&mut self, buf: &[u8], cfg: &Config) -> Result<(usize, Option<Piece>), Rejected> {
        let mut pos = 0;
        while pos < buf.len() {
            match self.state {
                State::Data { remaining } => {
                    let n = remaining.min((buf.len() - pos) as u64);
                    let rest = remaining - n;
                    self.state = if rest == 0 { State::DataCr } else { State::Data { remaining: rest } };
                    return Ok((pos + n as usize, Some(Piece::Data { start: pos, len: n as usize })));
                }
                State::Trailers => {
                    // ok: pos < buf.len() in the loop.
                    let rest = &buf[pos..];
                    return match self.scan.feed(rest, cfg)? {
                        Some(n) => {
                            // ok: the scan used n <= rest.len() bytes.
                            self.trailers.extend_from_slice(&rest[..n]);
                            self.state = State::Done;
                            let fields = parse_trailers(&self.trailers, cfg)?;
                            Ok((pos + n, Some(Piece::End(fields))))
                        }
                        None => {
                            self.trailers.extend_from_slice(rest);
                            Ok((buf.len(), None))
                        }
                    };
                }
                State::Done => return Ok((pos, None)),
                _ => {}
            }
            // ok: pos < buf.len() in the loop.
            let c = buf[pos];
            pos += 1;
            if let Some(piece) = self.line_byte(c, cfg)? {
                return Ok((pos, Some(piece)));
            }
        }
        Ok((pos, None))
    }

    /// One byte of a chunk line or of the CRLF after chunk data.
    fn line_byte(&mut self, c: u8, cfg: &Config) -> Result<Option<Piece>, Rejected> {
        let ws = c == b' ' || c == b'\t';
        if matches!(self.state, State::Size { .. } | State::Ext(_)) {
            self.line_len += 1;
            if self.line_len > cfg.max_chunk_line {
                return Err(reject(
                    Reject::InvalidChunk,
                    "chunk line longer than the limit (RFC 9112 7.1.1)",
                ));
            }
        }
        self.state = match self.state {
            State::Size { digits } => match (hex(c), digits) {
                (Some(v), _) => {
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(v))
                        .ok_or(reject(Reject::InvalidChunk, "chunk size too large (RFC 9112 7.1)"))?;
                    State::Size { digits: true }
                }
                (None, false) => return Err(INVALID_SIZE),
                (None, true) if ws => State::Ext(Ext::BeforeSemi),
                (None, true) if c == b';' => State::Ext(Ext::BeforeName),
                (None, true) if c == b'\r' => State::Lf,
                (None, true) => return Err(INVALID_SIZE),
            },
            State::Ext(ext) => State::Ext(match (ext, c) {
                (Ext::BeforeSemi | Ext::BeforeName | Ext::AfterName | Ext::BeforeValue, _) if ws => ext,
                (Ext::BeforeSemi | Ext::Name | Ext::AfterName | Ext::Token | Ext::AfterQuoted, b';') => {
                    Ext::BeforeName
                }
                (Ext::BeforeName | Ext::Name, _) if is_tchar(c) => Ext::Name,
                (Ext::Name | Ext::Token | Ext::AfterQuoted, b'\r') => {
                    self.state = State::Lf;
                    return Ok(None);
                }
                (Ext::Name | Ext::Token | Ext::AfterQuoted, _) if ws => match ext {
                    Ext::Name => Ext::AfterName,
                    _ => Ext::BeforeSemi,
                },
                (Ext::Name | Ext::AfterName, b'=') => Ext::BeforeValue,
                (Ext::BeforeValue, b'"') => Ext::Quoted,
                (Ext::BeforeValue | Ext::Token, _) if is_tchar(c) => Ext::Token,
                (Ext::Quoted, b'"') => Ext::AfterQuoted,
                (Ext::Quoted, b'\\') => Ext::QuotedEscape,
                (Ext::Quoted, _) if is_qdtext(c) => Ext::Quoted,
                (Ext::QuotedEscape, _) if c == b'\t' || c == b' ' || c >= 0x21 && c != 0x7f => Ext::Quoted,
                _ => return Err(INVALID_EXT),
            }),
            State::Lf if c == b'\n' => {
                self.line_len = 0;
                if self.size == 0 {
                    State::Trailers
                } else {
                    State::Data { remaining: self.size }
                }
            }
            State::Lf => {
                return Err(reject(Reject::InvalidChunk, "chunk line not ended by CRLF (RFC 9112 7.1)"));
            }
            State::DataCr if c == b'\r' => State::DataLf,
            State::DataLf if c == b'\n' => {
                self.size = 0;
                State::Size { digits: false }
            }
            State::DataCr | State::DataLf => {
                return Err(reject(Reject::InvalidChunk, "chunk data not followed by CRLF (RFC 9112 7.1)"));
            }
            // Handled by `next` before a byte is taken.
            State::Data { .. } | State::Trailers | State::Done => self.state,
        };
        Ok(None)
    }
}

fn hex(c: u8) -> Option<u64> {
    (c as char).to_digit(16).map(u64::from)
}

/// qdtext (RFC 9110 §5.6.4).
fn is_qdtext(c: u8) -> bool {
    c == b'\t'
        || c == b' '
        || c == 0x21
        || (0x23..=0x5b).contains(&c)
        || (0x5d..=0x7e).contains(&c)
        || c >= 0x80
}

/// The trailer section, CRLF included, as fields with lowercase names; `None` when empty.
fn parse_trailers(section: &[u8], cfg: &Config) -> Result<Option<HeaderList>, Rejected> {
    let mut slots = vec![httparse::EMPTY_HEADER; cfg.max_headers];
    let parsed = match httparse::parse_headers(section, &mut slots) {
        Ok(httparse::Status::Complete((_, parsed))) => parsed,
        Ok(httparse::Status::Partial) => {
            return Err(reject(Reject::InvalidField, "incomplete trailer section (RFC 9112 7.1.2)"))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(reject(Reject::TooManyHeaders, "more trailer fields than the limit (RFC 6585 5)"))
        }
        Err(_) => {
            return Err(reject(Reject::InvalidField, "invalid trailer field (RFC 9112 7.1.2, RFC 9110 5)"))
        }
    };
    if parsed.is_empty() {
        return Ok(None);
    }
    let mut fields = HeaderList::new();
    let mut lower = Vec::new();
    for h in parsed.iter() {
        lower.clear();
        lower.extend(h.name.bytes().map(|c| c.to_ascii_lowercase()));
        fields.push(&lower, h.value);
    }
    Ok(Some(fields))
}
