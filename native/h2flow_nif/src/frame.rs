//! `H2Flow.Frame`'s NIFs: the codec on Elixir structs. Payloads of decoded frames are
//! sub-binaries of the input.

use h2flow_core::frame::{self, setting, Frame, Priority, HEADER_LEN};
use rustler::{Atom, Binary, Encoder, Env, NifResult, Term};

use crate::terms::{
    self, decode_code, encode_code, encode_error, field, make_struct, misuse, narrow, opt_field, opt_narrow,
};

/// Bytes decoded per call at most; `H2Flow.Frame.decode/2` loops, so one call stays short.
const BUDGET: usize = 256 * 1024;

fn sub<'a>(env: Env<'a>, input: &Binary<'a>, slice: &[u8]) -> NifResult<Term<'a>> {
    let start = slice.as_ptr() as usize - input.as_slice().as_ptr() as usize;
    Ok(input.make_subbinary(start, slice.len())?.to_term(env))
}

fn padding<'a>(env: Env<'a>, pad: Option<u8>) -> Term<'a> {
    match pad {
        Some(p) => p.encode(env),
        None => terms::nil().encode(env),
    }
}

fn frame_term<'a>(env: Env<'a>, input: &Binary<'a>, f: &Frame<'_>) -> NifResult<Term<'a>> {
    let e = |v: &dyn Encoder| v.encode(env);
    match f {
        Frame::Data(d) => make_struct(
            env,
            "Elixir.H2Flow.Frame.Data",
            &[
                ("stream_id", e(&d.stream_id)),
                ("end_stream", e(&d.end_stream)),
                ("data", sub(env, input, d.data)?),
                ("padding", padding(env, d.pad_len)),
            ],
        ),
        Frame::Headers(h) => {
            let priority = match h.priority {
                Some(p) => (p.exclusive, p.dependency, p.weight).encode(env),
                None => terms::nil().encode(env),
            };
            make_struct(
                env,
                "Elixir.H2Flow.Frame.Headers",
                &[
                    ("stream_id", e(&h.stream_id)),
                    ("end_stream", e(&h.end_stream)),
                    ("end_headers", e(&h.end_headers)),
                    ("priority", priority),
                    ("fragment", sub(env, input, h.fragment)?),
                    ("padding", padding(env, h.pad_len)),
                ],
            )
        }
        Frame::Priority(p) => make_struct(
            env,
            "Elixir.H2Flow.Frame.Priority",
            &[
                ("stream_id", e(&p.stream_id)),
                ("exclusive", e(&p.priority.exclusive)),
                ("dependency", e(&p.priority.dependency)),
                ("weight", e(&p.priority.weight)),
            ],
        ),
        Frame::RstStream(r) => make_struct(
            env,
            "Elixir.H2Flow.Frame.RstStream",
            &[("stream_id", e(&r.stream_id)), ("error_code", encode_code(env, r.error_code))],
        ),
        Frame::Settings(s) => {
            let params: Vec<Term<'a>> = s
                .params()
                .map(|(id, value)| {
                    let key = match setting::name(id).map(|n| Atom::from_str(env, n)) {
                        Some(Ok(atom)) => atom.encode(env),
                        _ => id.encode(env),
                    };
                    (key, value).encode(env)
                })
                .collect();
            make_struct(
                env,
                "Elixir.H2Flow.Frame.Settings",
                &[("ack", e(&s.ack)), ("params", params.encode(env))],
            )
        }
        Frame::PushPromise(p) => make_struct(
            env,
            "Elixir.H2Flow.Frame.PushPromise",
            &[
                ("stream_id", e(&p.stream_id)),
                ("promised_stream_id", e(&p.promised_stream_id)),
                ("end_headers", e(&p.end_headers)),
                ("fragment", sub(env, input, p.fragment)?),
                ("padding", padding(env, p.pad_len)),
            ],
        ),
        Frame::Ping(p) => make_struct(
            env,
            "Elixir.H2Flow.Frame.Ping",
            &[("ack", e(&p.ack)), ("data", terms::binary(env, &p.data))],
        ),
        Frame::GoAway(g) => make_struct(
            env,
            "Elixir.H2Flow.Frame.Goaway",
            &[
                ("last_stream_id", e(&g.last_stream_id)),
                ("error_code", encode_code(env, g.error_code)),
                ("debug_data", sub(env, input, g.debug_data)?),
            ],
        ),
        Frame::WindowUpdate(w) => make_struct(
            env,
            "Elixir.H2Flow.Frame.WindowUpdate",
            &[("stream_id", e(&w.stream_id)), ("increment", e(&w.increment))],
        ),
        Frame::Continuation(c) => make_struct(
            env,
            "Elixir.H2Flow.Frame.Continuation",
            &[
                ("stream_id", e(&c.stream_id)),
                ("end_headers", e(&c.end_headers)),
                ("fragment", sub(env, input, c.fragment)?),
            ],
        ),
        Frame::Unknown(u) => make_struct(
            env,
            "Elixir.H2Flow.Frame.Unknown",
            &[
                ("type", e(&u.kind)),
                ("flags", e(&u.flags)),
                ("stream_id", e(&u.stream_id)),
                ("payload", sub(env, input, u.payload)?),
            ],
        ),
    }
}

/// Decodes whole frames from the start of `input`, up to a budget of bytes per call:
/// `{:ok, frames, rest, :done | :more}` or `{:error, reason}` at the first invalid frame.
#[rustler::nif]
fn frame_decode<'a>(env: Env<'a>, input: Binary<'a>, max_frame_size: u32) -> NifResult<Term<'a>> {
    let bytes = input.as_slice();
    let mut pos = 0;
    let mut frames = Vec::new();
    let mut state = terms::done();
    while pos < bytes.len() {
        if pos >= BUDGET {
            state = terms::more();
            break;
        }
        match frame::decode(&bytes[pos..], max_frame_size) {
            Ok(Some((f, len))) => {
                frames.push(frame_term(env, &input, &f)?);
                pos += len;
            }
            Ok(None) => break,
            Err(err) => return Ok((terms::error(), encode_error(env, &err)).encode(env)),
        }
    }
    let rest = input.make_subbinary(pos, bytes.len() - pos)?;
    Ok((terms::ok(), frames, rest, state).encode(env))
}

fn struct_name(term: Term) -> NifResult<String> {
    field(term, "__struct__")?.atom_to_string()
}

fn bytes<'a>(term: Term<'a>, key: &str) -> NifResult<Binary<'a>> {
    Binary::from_iolist(field(term, key)?).map_err(|_| misuse(&format!("{key} must be iodata")))
}

fn payload_len(n: usize, what: &str) -> NifResult<()> {
    if n > frame::MAX_MAX_FRAME_SIZE as usize {
        return Err(misuse(&format!("{what} is longer than 2^24-1 bytes")));
    }
    Ok(())
}

/// Encodes one frame struct to a binary. Invalid field values raise ArgumentError; frames that
/// break protocol rules but are encodable (useful in tests) are written as asked.
#[rustler::nif]
fn frame_encode<'a>(env: Env<'a>, term: Term<'a>) -> NifResult<Term<'a>> {
    let mut out = Vec::with_capacity(HEADER_LEN + 64);
    let name = struct_name(term)?;
    let id = |t: Term<'a>| -> NifResult<u32> {
        let v: u32 = field(t, "stream_id")?.decode()?;
        if v > frame::MAX_STREAM_ID {
            return Err(misuse("stream_id must be at most 2^31-1"));
        }
        Ok(v)
    };
    match name.as_str() {
        "Elixir.H2Flow.Frame.Data" => {
            let data = bytes(term, "data")?;
            let pad_len: Option<u8> = opt_narrow(term, "padding")?;
            payload_len(data.len() + pad_len.map_or(0, |p| p as usize + 1), "DATA payload")?;
            let end_stream = field(term, "end_stream")?.decode()?;
            Frame::Data(frame::Data { stream_id: id(term)?, end_stream, data: data.as_slice(), pad_len })
                .encode(&mut out);
        }
        "Elixir.H2Flow.Frame.Headers" => {
            let fragment = bytes(term, "fragment")?;
            let pad_len: Option<u8> = opt_narrow(term, "padding")?;
            let priority = match opt_field::<(bool, u32, Term<'a>)>(term, "priority")? {
                Some((exclusive, dependency, weight)) => {
                    Some(Priority { exclusive, dependency, weight: narrow(weight, "priority weight")? })
                }
                None => None,
            };
            payload_len(fragment.len() + 6 + pad_len.map_or(0, |p| p as usize), "HEADERS payload")?;
            Frame::Headers(frame::Headers {
                stream_id: id(term)?,
                end_stream: field(term, "end_stream")?.decode()?,
                end_headers: field(term, "end_headers")?.decode()?,
                priority,
                fragment: fragment.as_slice(),
                pad_len,
            })
            .encode(&mut out);
        }
        "Elixir.H2Flow.Frame.Priority" => Frame::Priority(frame::PriorityFrame {
            stream_id: id(term)?,
            priority: Priority {
                exclusive: field(term, "exclusive")?.decode()?,
                dependency: field(term, "dependency")?.decode()?,
                weight: narrow(field(term, "weight")?, "weight")?,
            },
        })
        .encode(&mut out),
        "Elixir.H2Flow.Frame.RstStream" => Frame::RstStream(frame::RstStream {
            stream_id: id(term)?,
            error_code: decode_code(field(term, "error_code")?)?,
        })
        .encode(&mut out),
        "Elixir.H2Flow.Frame.Settings" => {
            let ack: bool = field(term, "ack")?.decode()?;
            let params: Vec<(Term<'a>, u32)> = field(term, "params")?.decode()?;
            let mut raw = Vec::with_capacity(params.len() * 6);
            for (key, value) in params {
                let id = if key.is_atom() {
                    setting::from_name(&key.atom_to_string()?)
                        .ok_or_else(|| misuse("unknown setting name"))?
                } else {
                    narrow(key, "setting identifier")?
                };
                raw.extend_from_slice(&id.to_be_bytes());
                raw.extend_from_slice(&value.to_be_bytes());
            }
            payload_len(raw.len(), "SETTINGS payload")?;
            Frame::Settings(frame::Settings { ack, raw: &raw }).encode(&mut out);
        }
        "Elixir.H2Flow.Frame.PushPromise" => {
            let fragment = bytes(term, "fragment")?;
            let pad_len: Option<u8> = opt_narrow(term, "padding")?;
            payload_len(fragment.len() + 5 + pad_len.map_or(0, |p| p as usize), "PUSH_PROMISE payload")?;
            Frame::PushPromise(frame::PushPromise {
                stream_id: id(term)?,
                promised_stream_id: field(term, "promised_stream_id")?.decode()?,
                end_headers: field(term, "end_headers")?.decode()?,
                fragment: fragment.as_slice(),
                pad_len,
            })
            .encode(&mut out);
        }
        "Elixir.H2Flow.Frame.Ping" => {
            let data = bytes(term, "data")?;
            let data: [u8; 8] =
                data.as_slice().try_into().map_err(|_| misuse("PING data must be 8 bytes"))?;
            Frame::Ping(frame::Ping { ack: field(term, "ack")?.decode()?, data }).encode(&mut out);
        }
        "Elixir.H2Flow.Frame.Goaway" => {
            let debug = bytes(term, "debug_data")?;
            payload_len(debug.len() + 8, "GOAWAY payload")?;
            Frame::GoAway(frame::GoAway {
                last_stream_id: field(term, "last_stream_id")?.decode()?,
                error_code: decode_code(field(term, "error_code")?)?,
                debug_data: debug.as_slice(),
            })
            .encode(&mut out);
        }
        "Elixir.H2Flow.Frame.WindowUpdate" => Frame::WindowUpdate(frame::WindowUpdate {
            stream_id: id(term)?,
            increment: field(term, "increment")?.decode()?,
        })
        .encode(&mut out),
        "Elixir.H2Flow.Frame.Continuation" => {
            let fragment = bytes(term, "fragment")?;
            payload_len(fragment.len(), "CONTINUATION payload")?;
            Frame::Continuation(frame::Continuation {
                stream_id: id(term)?,
                end_headers: field(term, "end_headers")?.decode()?,
                fragment: fragment.as_slice(),
            })
            .encode(&mut out);
        }
        "Elixir.H2Flow.Frame.Unknown" => {
            let payload = bytes(term, "payload")?;
            payload_len(payload.len(), "payload")?;
            Frame::Unknown(frame::Unknown {
                kind: narrow(field(term, "type")?, "type")?,
                flags: narrow(field(term, "flags")?, "flags")?,
                stream_id: id(term)?,
                payload: payload.as_slice(),
            })
            .encode(&mut out);
        }
        _ => return Err(misuse("not an H2Flow.Frame struct")),
    }
    Ok(terms::binary(env, &out))
}

/// Encodes a header block as HEADERS + CONTINUATION frames split at `max_frame_size`.
#[rustler::nif]
fn frame_encode_header_block<'a>(
    env: Env<'a>,
    stream_id: u32,
    block: Term<'a>,
    end_stream: bool,
    max_frame_size: u32,
) -> NifResult<Term<'a>> {
    let block = Binary::from_iolist(block).map_err(|_| misuse("the block must be iodata"))?;
    if stream_id == 0 || stream_id > frame::MAX_STREAM_ID || max_frame_size == 0 {
        return Err(misuse("invalid stream_id or max_frame_size"));
    }
    let mut out = Vec::with_capacity(block.len() + 2 * HEADER_LEN);
    frame::encode_header_block(stream_id, block.as_slice(), end_stream, max_frame_size, &mut out);
    Ok(terms::binary(env, &out))
}
