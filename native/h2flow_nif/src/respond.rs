//! What the HTTP/2 and HTTP/1.1 engines' NIFs answer alike: the result of a send, the status
//! of a read, and a response head sent with the start of its body in one call.

use h2flow_core::scheduler::ReadStatus;
use h2flow_core::{http1, Connection, SendError, Sent};
use rustler::{Binary, Encoder, Env, NifResult, Term};

use crate::terms::{self, misuse};

/// An engine that sends responses on its streams (HTTP/2) or exchanges (HTTP/1.1).
pub trait Responder {
    type Id: Copy;
    fn send_headers(&mut self, id: Self::Id, fields: &[(&[u8], &[u8])], end: bool)
        -> Result<Sent, SendError>;
    fn send_body(&mut self, id: Self::Id, data: &[u8], end: bool) -> Result<Sent, SendError>;
}

impl Responder for Connection {
    type Id = u32;
    fn send_headers(&mut self, id: u32, fields: &[(&[u8], &[u8])], end: bool) -> Result<Sent, SendError> {
        Connection::send_headers(self, id, fields, end)
    }
    fn send_body(&mut self, id: u32, data: &[u8], end: bool) -> Result<Sent, SendError> {
        Connection::send_body(self, id, data, end)
    }
}

impl Responder for http1::Connection {
    type Id = u64;
    fn send_headers(&mut self, id: u64, fields: &[(&[u8], &[u8])], end: bool) -> Result<Sent, SendError> {
        http1::Connection::send_headers(self, id, fields, end)
    }
    fn send_body(&mut self, id: u64, data: &[u8], end: bool) -> Result<Sent, SendError> {
        http1::Connection::send_body(self, id, data, end)
    }
}

/// Header fields as the engines take them: slices of the binaries the call was given.
pub fn fields<'h>(headers: &'h [(Binary<'_>, Binary<'_>)]) -> Vec<(&'h [u8], &'h [u8])> {
    headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect()
}

/// `:ok` (queued), `{:ok, taken, blocked?}` (a body within bounded memory), `{:error,
/// :closed}` (the stream is gone); misuse raises.
pub fn sent<'a>(env: Env<'a>, r: Result<Sent, SendError>) -> NifResult<Term<'a>> {
    match r {
        Ok(Sent::Queued(_)) => Ok(terms::ok().encode(env)),
        Ok(Sent::Accepted { taken, blocked }) => Ok((terms::ok(), taken as u64, blocked).encode(env)),
        Ok(Sent::StreamClosed) => Ok((terms::error(), terms::closed()).encode(env)),
        Err(SendError::Misuse(m)) => Err(misuse(m)),
    }
}

/// A registered read: `:fin`, `:more` (complete now), `:wait` (a `read_done` event will
/// tell), or `{:error, :closed}` when the stream is gone.
pub fn read_status(env: Env<'_>, status: Option<ReadStatus>) -> Term<'_> {
    match status {
        Some(ReadStatus::Fin) => terms::fin().encode(env),
        Some(ReadStatus::More) => terms::more().encode(env),
        Some(ReadStatus::Wait) => terms::wait().encode(env),
        None => (terms::error(), terms::closed()).encode(env),
    }
}

/// The response head, then the start of its body when there is one (or nothing else ends the
/// response): what `send_body` returns, `{:ok, 0, false}` for a response ended by its head.
pub fn reply<'a, R: Responder>(
    env: Env<'a>,
    conn: &mut R,
    id: R::Id,
    headers: &[(Binary<'a>, Binary<'a>)],
    body: Binary<'a>,
    end_stream: bool,
) -> NifResult<Term<'a>> {
    let fields = fields(headers);
    let headers_end = end_stream && body.is_empty();
    match conn.send_headers(id, &fields, headers_end) {
        Ok(Sent::Queued(_)) if headers_end => Ok((terms::ok(), 0u64, false).encode(env)),
        Ok(Sent::Queued(_)) => sent(env, conn.send_body(id, body.as_slice(), end_stream)),
        other => sent(env, other),
    }
}
