//! Shared term helpers: atoms, error codes, errors as terms.

use h2flow_core::{Error, ErrorCode};
use rustler::{Atom, Encoder, Env, NifResult, Term};

rustler::atoms! {
    ok,
    error,
    nil,
    more,
    done,
    closed,
    connection_error,
    stream_error,
    headers,
    data,
    trailers,
    stream_reset,
    goaway,
    send_window_open,
    send_timeout,
    request,
    response,
    read_done,
    fin,
    wait,
    connection,
    stream,
    waiting,
}

/// An error code as its snake_case atom, or the integer for a code RFC 9113 does not define.
pub fn encode_code<'a>(env: Env<'a>, code: ErrorCode) -> Term<'a> {
    match code.name() {
        Some(name) => Atom::from_str(env, name).map(|a| a.encode(env)).unwrap_or_else(|_| code.0.encode(env)),
        None => code.0.encode(env),
    }
}

/// An error code from an atom or a non-negative integer.
pub fn decode_code(term: Term) -> NifResult<ErrorCode> {
    if let Ok(n) = term.decode::<u32>() {
        return Ok(ErrorCode(n));
    }
    let name = term.atom_to_string().map_err(|_| rustler::Error::BadArg)?;
    ErrorCode::from_name(&name).ok_or(rustler::Error::BadArg)
}

/// `{:connection_error, code, message}` or `{:stream_error, id, code, message}`.
pub fn encode_error<'a>(env: Env<'a>, e: &Error) -> Term<'a> {
    match e {
        Error::Connection { code, message } => {
            (connection_error(), encode_code(env, *code), message.as_ref()).encode(env)
        }
        Error::Stream { stream_id, code, message } => {
            (stream_error(), *stream_id, encode_code(env, *code), message.as_ref()).encode(env)
        }
    }
}

/// Raises `%ArgumentError{}` for caller misuse (a bug in the application, never the peer's doing).
pub fn misuse(message: &str) -> rustler::Error {
    rustler::Error::RaiseTerm(Box::new(ArgumentError(message.to_string())))
}

struct ArgumentError(String);

impl Encoder for ArgumentError {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let exception = Atom::from_str(env, "__exception__").map(|a| a.encode(env));
        let fields = exception.and_then(|key| {
            make_struct(env, "Elixir.ArgumentError", &[("message", self.0.as_str().encode(env))])?
                .map_put(key, true)
        });
        fields.unwrap_or_else(|_| self.0.as_str().encode(env))
    }
}

/// A fresh binary holding a copy of `bytes`.
pub fn binary<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    let mut b = rustler::NewBinary::new(env, bytes.len());
    b.as_mut_slice().copy_from_slice(bytes);
    let bin: rustler::Binary = b.into();
    bin.to_term(env)
}

/// Builds an Elixir struct: `%module{key => value, ...}`.
pub fn make_struct<'a>(env: Env<'a>, module: &str, fields: &[(&str, Term<'a>)]) -> NifResult<Term<'a>> {
    let mut keys = Vec::with_capacity(fields.len() + 1);
    let mut values = Vec::with_capacity(fields.len() + 1);
    keys.push(Atom::from_str(env, "__struct__")?.encode(env));
    values.push(Atom::from_str(env, module)?.encode(env));
    for (k, v) in fields {
        keys.push(Atom::from_str(env, k)?.encode(env));
        values.push(*v);
    }
    Term::map_from_term_arrays(env, &keys, &values)
}

/// Reads a struct field.
pub fn field<'a>(term: Term<'a>, key: &str) -> NifResult<Term<'a>> {
    let env = term.get_env();
    term.map_get(Atom::from_str(env, key)?.encode(env))
}

/// Decodes a non-negative integer that must fit in `T`. rustler's own `u8` and `u16` decoders
/// truncate (`300` would become `44`), which would silently use a different value.
pub fn narrow<T: TryFrom<u32>>(term: Term, what: &str) -> NifResult<T> {
    let n: u32 = term.decode()?;
    T::try_from(n).map_err(|_| misuse(&format!("{what} is out of range")))
}
