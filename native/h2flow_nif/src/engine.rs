//! `H2Flow.Engine`'s NIFs: one `Connection` per resource, used by one process at a time.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use h2flow_core::config::Rate;
use h2flow_core::fields::RequestHead;
use h2flow_core::totals::Reporter;
use h2flow_core::{Config, Connection, Event, Payload, Request, Role, SchedulerConfig, SendError, Sent};
use rustler::{Binary, Encoder, Env, NifResult, ResourceArc, Term};

use crate::respond;
use crate::terms::{self, binary, decode_code, encode_code, encode_error, field, misuse};

pub struct EngineResource(Mutex<Engine>);

impl EngineResource {
    /// A resource around an engine made elsewhere (the HTTP/2 side of an h2c upgrade).
    pub(crate) fn new(conn: Connection) -> EngineResource {
        EngineResource(Mutex::new(Engine { conn, reporter: None }))
    }
}

#[rustler::resource_impl]
impl rustler::Resource for EngineResource {}

/// A connection, and its link to its server's totals when it has one (`crate::totals`).
pub struct Engine {
    pub conn: Connection,
    pub reporter: Option<Reporter>,
}

impl Deref for Engine {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl DerefMut for Engine {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

impl Drop for Engine {
    /// An engine garbage-collected without `engine_close_report` (its process was killed) still
    /// reports its last counters and leaves its server's totals.
    fn drop(&mut self) {
        if let Some(r) = self.reporter.as_mut() {
            r.close(&self.conn);
        }
    }
}

pub fn lock(engine: &ResourceArc<EngineResource>) -> NifResult<MutexGuard<'_, Engine>> {
    // A poisoned lock means an earlier call panicked: a bug, reported as an exception.
    engine.0.lock().map_err(|_| misuse("the engine is unusable after an internal error"))
}

fn rate(term: Term) -> NifResult<Rate> {
    let (burst, per_second): (u32, u32) = term.decode()?;
    Ok(Rate { burst, per_second })
}

/// Options arrive validated and complete from `H2Flow.Engine` (which documents them).
pub(crate) fn config(opts: Term) -> NifResult<Config> {
    let window = SchedulerConfig {
        initial_stream_window: field(opts, "initial_stream_window")?.decode()?,
        initial_connection_window: field(opts, "initial_connection_window")?.decode()?,
        update_threshold_percent: field(opts, "window_update_threshold")?.decode()?,
        adaptive: field(opts, "adaptive_window")?.decode()?,
        max_connection_window: field(opts, "max_connection_window")?.decode()?,
        max_stream_window: field(opts, "max_stream_window")?.decode()?,
        max_frame_size: field(opts, "max_frame_size")?.decode()?,
        peer_initial_connection_window: h2flow_core::scheduler::DEFAULT_WINDOW,
    };
    Ok(Config {
        max_concurrent_streams: field(opts, "max_concurrent_streams")?.decode()?,
        max_frame_size: field(opts, "max_frame_size")?.decode()?,
        header_table_size: field(opts, "header_table_size")?.decode()?,
        max_header_list_size: field(opts, "max_header_list_size")?.decode()?,
        window,
        max_send_queue: field(opts, "max_send_queue")?.decode()?,
        max_connection_send_queue: field(opts, "max_connection_send_queue")?.decode()?,
        send_stall_timeout: Duration::from_millis(field(opts, "send_stall_timeout")?.decode()?),
        max_continuation_frames: field(opts, "max_continuation_frames")?.decode()?,
        max_header_block_size: field(opts, "max_header_block_size")?.decode()?,
        max_queued_acks: field(opts, "max_queued_acks")?.decode()?,
        max_settings_entries: field(opts, "max_settings_entries")?.decode()?,
        peer_resets: rate(field(opts, "peer_reset_rate")?)?,
        empty_frames: rate(field(opts, "empty_data_rate")?)?,
        refused_streams: rate(field(opts, "refused_stream_rate")?)?,
        local_resets: rate(field(opts, "local_reset_rate")?)?,
        settings_timeout: Duration::from_millis(field(opts, "settings_timeout")?.decode()?),
        closed_stream_memory: field(opts, "closed_stream_memory")?.decode()?,
    })
}

#[rustler::nif]
fn engine_new<'a>(env: Env<'a>, opts: Term<'a>) -> NifResult<Term<'a>> {
    let cfg = config(opts)?;
    new_engine(env, Connection::new(cfg, Instant::now()))
}

/// An engine in the client role (`Connection::new_client`).
#[rustler::nif]
fn engine_new_client<'a>(env: Env<'a>, opts: Term<'a>) -> NifResult<Term<'a>> {
    let cfg = config(opts)?;
    new_engine(env, Connection::new_client(cfg, Instant::now()))
}

fn new_engine<'a>(env: Env<'a>, conn: Result<Connection, &'static str>) -> NifResult<Term<'a>> {
    match conn {
        Ok(conn) => {
            let engine = Engine { conn, reporter: None };
            Ok((terms::ok(), ResourceArc::new(EngineResource(Mutex::new(engine)))).encode(env))
        }
        Err(msg) => Ok((terms::error(), msg).encode(env)),
    }
}

/// A DATA payload that is at least a quarter of the binary its input is part of (`referenced`:
/// the whole socket read, of which `input` may be a piece) is returned as a sub-binary of the
/// input; smaller ones are copied, so that body bytes kept anywhere never pin more than four
/// times their size in socket reads.
pub(crate) fn payload<'a>(
    env: Env<'a>,
    input: &Binary<'a>,
    referenced: usize,
    p: &Payload,
) -> NifResult<Term<'a>> {
    match p {
        Payload::Input { start, len } if *len >= 256 && len * 4 >= referenced.max(input.len()) => {
            Ok(input.make_subbinary(*start, *len)?.to_term(env))
        }
        Payload::Input { .. } => Ok(binary(env, p.resolve(input.as_slice()))),
        Payload::Owned(v) => Ok(binary(env, v)),
    }
}

fn header_list<'a>(env: Env<'a>, list: &h2flow_core::hpack::HeaderList) -> Term<'a> {
    header_list_from(env, list, 0)
}

/// The fields of a list after its first `skip` (the pseudo-header fields of a response).
fn header_list_from<'a>(env: Env<'a>, list: &h2flow_core::hpack::HeaderList, skip: usize) -> Term<'a> {
    let fields: Vec<Term<'a>> =
        list.iter().skip(skip).map(|(n, v)| (binary(env, n), binary(env, v)).encode(env)).collect();
    fields.encode(env)
}

/// `{:request, id, method, scheme, authority, path, qs, content_length | nil, headers, end?}`:
/// the request as the engine validated it, headers a map with repeated fields joined.
fn request<'a>(
    env: Env<'a>,
    id: u32,
    fields: &h2flow_core::hpack::HeaderList,
    info: &h2flow_core::fields::RequestInfo,
    end_stream: bool,
) -> NifResult<Term<'a>> {
    let head = RequestHead::new(fields, info);
    let elements = request_elements(env, id.encode(env), &head, end_stream)?;
    Ok(rustler::types::tuple::make_tuple(env, &elements))
}

/// The elements of a request event (shared with the HTTP/1.1 engine's, which adds its version).
pub(crate) fn request_elements<'a>(
    env: Env<'a>,
    id: Term<'a>,
    head: &RequestHead,
    end_stream: bool,
) -> NifResult<Vec<Term<'a>>> {
    let keys: Vec<Term<'a>> = head.fields.iter().map(|(n, _)| binary(env, n)).collect();
    let values: Vec<Term<'a>> = head.fields.iter().map(|(_, v)| binary(env, v)).collect();
    // Names are unique once repeated fields are joined.
    let headers = Term::map_from_arrays(env, &keys, &values)?;
    let content_length = match head.content_length {
        Some(n) => n.encode(env),
        None => terms::nil().encode(env),
    };
    Ok(vec![
        terms::request().encode(env),
        id,
        binary(env, head.method),
        binary(env, head.scheme),
        binary(env, head.authority),
        binary(env, head.path),
        binary(env, head.query),
        content_length,
        headers,
        end_stream.encode(env),
    ])
}

pub(crate) fn event<'a>(
    env: Env<'a>,
    input: &Binary<'a>,
    referenced: usize,
    e: &Event,
) -> NifResult<Term<'a>> {
    Ok(match e {
        Event::Headers { stream_id, fields, info, end_stream } => {
            request(env, *stream_id, fields, info, *end_stream)?
        }
        Event::Response { stream_id, fields, info, end_stream } => {
            let headers = header_list_from(env, fields, info.pseudo);
            (terms::response(), *stream_id, info.status, headers, *end_stream).encode(env)
        }
        Event::Data { stream_id, data, end_stream } => {
            (terms::data(), *stream_id, payload(env, input, referenced, data)?, *end_stream).encode(env)
        }
        Event::ReadDone { stream_id, fin } => {
            (terms::read_done(), *stream_id, if *fin { terms::fin() } else { terms::more() }).encode(env)
        }
        Event::Trailers { stream_id, fields } => {
            (terms::trailers(), *stream_id, header_list(env, fields)).encode(env)
        }
        Event::StreamReset { stream_id, code } => {
            (terms::stream_reset(), *stream_id, encode_code(env, *code)).encode(env)
        }
        Event::StreamError { stream_id, code, message } => {
            (terms::stream_error(), *stream_id, encode_code(env, *code), message.as_str()).encode(env)
        }
        Event::GoAway { last_stream_id, code, debug } => (
            terms::goaway(),
            *last_stream_id,
            encode_code(env, *code),
            payload(env, input, referenced, debug)?,
        )
            .encode(env),
        Event::SendWindowOpen { stream_id } => (terms::send_window_open(), *stream_id).encode(env),
        Event::SendTimeout { stream_id } => (terms::send_timeout(), *stream_id).encode(env),
    })
}

/// Feeds received bytes (the caller bounds each call to 64 KiB; `referenced` is the size of
/// the socket read they are part of): `{:ok, events}` or `{:error, reason, events}` after a
/// connection error (the GOAWAY is queued for `engine_flush`).
#[rustler::nif]
fn engine_recv<'a>(
    env: Env<'a>,
    engine: ResourceArc<EngineResource>,
    input: Binary<'a>,
    referenced: usize,
) -> NifResult<Term<'a>> {
    let mut conn = lock(&engine)?;
    let result = conn.recv(input.as_slice(), Instant::now());
    let events = if conn.role() == Role::Client {
        client_events(env, &input, referenced, conn.drain_events())?
    } else {
        conn.drain_events()
            .map(|e| event(env, &input, referenced, &e))
            .collect::<NifResult<Vec<Term<'a>>>>()?
    };
    Ok(match result {
        Ok(()) => (terms::ok(), events).encode(env),
        Err(e) => (terms::error(), encode_error(env, &e), events).encode(env),
    })
}

/// The client role's events: consecutive DATA payloads of one stream come as one
/// `{:data, stream_id, [binary], end_stream?}` (a download's frames, four to a read, cost the
/// connection process one event instead of four). Payloads of 256 bytes or more are sub-binaries
/// of the input whatever their share of the socket read: the client's connection process joins
/// a read's pieces of a stream into one binary before it keeps them
/// (`H2Flow.Client.Connection`), so a download's bytes are copied once, not once here and
/// again when the caller joins its pieces.
fn client_events<'a>(
    env: Env<'a>,
    input: &Binary<'a>,
    referenced: usize,
    events: impl Iterator<Item = Event>,
) -> NifResult<Vec<Term<'a>>> {
    let mut out = Vec::new();
    let mut run: Option<(u32, Vec<Term<'a>>, bool)> = None;
    for e in events {
        if let Event::Data { stream_id, data, end_stream } = &e {
            let piece = match data {
                Payload::Input { start, len } if *len >= 256 => {
                    input.make_subbinary(*start, *len)?.to_term(env)
                }
                _ => payload(env, input, referenced, data)?,
            };
            match run.as_mut() {
                Some((id, pieces, fin)) if id == stream_id && !*fin => {
                    pieces.push(piece);
                    *fin = *end_stream;
                }
                _ => {
                    if let Some(r) = run.take() {
                        out.push(data_run(env, r));
                    }
                    run = Some((*stream_id, vec![piece], *end_stream));
                }
            }
            continue;
        }
        if let Some(r) = run.take() {
            out.push(data_run(env, r));
        }
        out.push(event(env, input, referenced, &e)?);
    }
    if let Some(r) = run.take() {
        out.push(data_run(env, r));
    }
    Ok(out)
}

fn data_run<'a>(env: Env<'a>, (id, pieces, fin): (u32, Vec<Term<'a>>, bool)) -> Term<'a> {
    (terms::data(), id, pieces, fin).encode(env)
}

#[rustler::nif]
fn engine_consume(engine: ResourceArc<EngineResource>, stream_id: u32, n: u64) -> NifResult<rustler::Atom> {
    lock(&engine)?.consume(stream_id, n).map_err(|SendError::Misuse(m)| misuse(m))?;
    Ok(terms::ok())
}

/// Registers a read of a request body: `:fin`, `:more` (complete now), `:wait` (a `read_done`
/// event will tell), or `{:error, :closed}`.
#[rustler::nif]
fn engine_read<'a>(
    env: Env<'a>,
    engine: ResourceArc<EngineResource>,
    stream_id: u32,
    length: u64,
) -> NifResult<Term<'a>> {
    Ok(respond::read_status(env, lock(&engine)?.read(stream_id, length)))
}

/// The period of a registered read expired: `true` if one was waiting (it completes now).
#[rustler::nif]
fn engine_read_timeout(engine: ResourceArc<EngineResource>, stream_id: u32) -> NifResult<bool> {
    Ok(lock(&engine)?.read_timeout(stream_id))
}

/// The application will not read the rest of the body.
#[rustler::nif]
fn engine_discard(engine: ResourceArc<EngineResource>, stream_id: u32) -> NifResult<rustler::Atom> {
    lock(&engine)?.discard(stream_id);
    Ok(terms::ok())
}

/// Sends response body bytes with bounded memory: `{:ok, taken, blocked?}` (see
/// `Connection::send_body`) or `{:error, :closed}`.
#[rustler::nif]
fn engine_send_body<'a>(
    env: Env<'a>,
    engine: ResourceArc<EngineResource>,
    stream_id: u32,
    data: Binary<'a>,
    end_stream: bool,
) -> NifResult<Term<'a>> {
    let r = lock(&engine)?.send_body(stream_id, data.as_slice(), end_stream);
    respond::sent(env, r)
}

/// Response headers and the start of the body in one call: `send_headers`, then `send_body`
/// (when `body` is not empty or there is nothing else to end the stream). Returns what
/// `send_body` returns, `{:ok, 0, false}` for a response ended by its headers.
#[rustler::nif]
fn engine_reply<'a>(
    env: Env<'a>,
    engine: ResourceArc<EngineResource>,
    stream_id: u32,
    headers: Vec<(Binary<'a>, Binary<'a>)>,
    body: Binary<'a>,
    end_stream: bool,
) -> NifResult<Term<'a>> {
    respond::reply(env, &mut lock(&engine)?.conn, stream_id, &headers, body, end_stream)
}

/// Client role: a request's headers and the start of its body in one call (`send_request`, then
/// `send_body` unless the headers end the stream): `{:ok, stream_id, taken, blocked?}`, `:wait`
/// (the concurrency limit: nothing was sent) or `{:error, :closed}` (no stream can be opened on
/// this connection any more).
#[rustler::nif]
fn engine_request<'a>(
    env: Env<'a>,
    engine: ResourceArc<EngineResource>,
    headers: Vec<(Binary<'a>, Binary<'a>)>,
    body: Binary<'a>,
    end_stream: bool,
) -> NifResult<Term<'a>> {
    let fields = respond::fields(&headers);
    let mut conn = lock(&engine)?;
    let headers_end = end_stream && body.is_empty();
    let id = match conn.send_request(&fields, headers_end).map_err(|SendError::Misuse(m)| misuse(m))? {
        Request::Opened(id) => id,
        Request::Wait => return Ok(terms::wait().encode(env)),
        Request::Closed => return Ok((terms::error(), terms::closed()).encode(env)),
    };
    if headers_end {
        return Ok((terms::ok(), id, 0u64, false).encode(env));
    }
    match conn.send_body(id, body.as_slice(), end_stream) {
        Ok(Sent::Accepted { taken, blocked }) => Ok((terms::ok(), id, taken as u64, blocked).encode(env)),
        other => respond::sent(env, other),
    }
}

#[rustler::nif]
fn engine_send_headers<'a>(
    env: Env<'a>,
    engine: ResourceArc<EngineResource>,
    stream_id: u32,
    headers: Vec<(Binary<'a>, Binary<'a>)>,
    end_stream: bool,
) -> NifResult<Term<'a>> {
    let fields = respond::fields(&headers);
    let r = lock(&engine)?.send_headers(stream_id, &fields, end_stream);
    respond::sent(env, r)
}

#[rustler::nif]
fn engine_reset_stream<'a>(
    env: Env<'a>,
    engine: ResourceArc<EngineResource>,
    stream_id: u32,
    code: Term<'a>,
) -> NifResult<Term<'a>> {
    let code = decode_code(code)?;
    let r = lock(&engine)?.reset_stream(stream_id, code);
    respond::sent(env, r)
}

#[rustler::nif]
fn engine_goaway<'a>(
    engine: ResourceArc<EngineResource>,
    code: Term<'a>,
    debug: Binary<'a>,
) -> NifResult<rustler::Atom> {
    let code = decode_code(code)?;
    lock(&engine)?.goaway(code, debug.as_slice());
    Ok(terms::ok())
}

/// Everything to write now, as one binary (empty when there is nothing).
#[rustler::nif]
fn engine_flush<'a>(env: Env<'a>, engine: ResourceArc<EngineResource>) -> NifResult<Term<'a>> {
    let mut conn = lock(&engine)?;
    let out = conn.flush(Instant::now());
    Ok(binary(env, &out))
}

/// `{:ok, events}` or `{:error, reason, events}` (the engine's timeouts, see
/// `Connection::check_timeouts`).
#[rustler::nif]
fn engine_check_timeouts<'a>(env: Env<'a>, engine: ResourceArc<EngineResource>) -> NifResult<Term<'a>> {
    let mut conn = lock(&engine)?;
    let result = conn.check_timeouts(Instant::now());
    // Timeouts report no payloads: the events refer to no input.
    let empty: Binary<'a> = rustler::NewBinary::new(env, 0).into();
    let events =
        conn.drain_events().map(|e| event(env, &empty, 0, &e)).collect::<NifResult<Vec<Term<'a>>>>()?;
    Ok(match result {
        Ok(()) => (terms::ok(), events).encode(env),
        Err(e) => (terms::error(), encode_error(env, &e), events).encode(env),
    })
}

/// Checks response fields as the engine will (`fields::validate_response_field`), so that an
/// application's mistake raises where it was made: `:ok` or `{:error, name, message}` for the
/// first invalid field.
#[rustler::nif]
fn fields_check<'a>(env: Env<'a>, fields: Vec<(Binary<'a>, Binary<'a>)>) -> NifResult<Term<'a>> {
    for (name, value) in &fields {
        if let Err(message) = h2flow_core::fields::validate_response_field(name.as_slice(), value.as_slice())
        {
            return Ok((terms::error(), name.to_term(env), message).encode(env));
        }
    }
    Ok(terms::ok().encode(env))
}

/// Every engine option's default, as `H2Flow.Engine.Options` names them: the one definition
/// of the defaults is `h2flow_core::Config::default()` (`Config::client()` for the client role).
#[rustler::nif]
fn engine_defaults<'a>(env: Env<'a>) -> NifResult<Term<'a>> {
    defaults(env, Config::default())
}

#[rustler::nif]
fn engine_client_defaults<'a>(env: Env<'a>) -> NifResult<Term<'a>> {
    defaults(env, Config::client())
}

fn defaults<'a>(env: Env<'a>, c: Config) -> NifResult<Term<'a>> {
    let w = &c.window;
    let mut m = Term::map_new(env);
    for (k, v) in [
        ("max_concurrent_streams", c.max_concurrent_streams as u64),
        ("initial_stream_window", w.initial_stream_window as u64),
        ("initial_connection_window", w.initial_connection_window as u64),
        ("window_update_threshold", w.update_threshold_percent as u64),
        ("max_connection_window", w.max_connection_window as u64),
        ("max_stream_window", w.max_stream_window as u64),
        ("max_frame_size", c.max_frame_size as u64),
        ("header_table_size", c.header_table_size as u64),
        ("max_header_list_size", c.max_header_list_size as u64),
        ("max_send_queue", c.max_send_queue as u64),
        ("max_connection_send_queue", c.max_connection_send_queue as u64),
        ("send_stall_timeout", c.send_stall_timeout.as_millis() as u64),
        ("max_continuation_frames", c.max_continuation_frames as u64),
        ("max_header_block_size", c.max_header_block_size as u64),
        ("max_queued_acks", c.max_queued_acks as u64),
        ("max_settings_entries", c.max_settings_entries as u64),
        ("settings_timeout", c.settings_timeout.as_millis() as u64),
        ("closed_stream_memory", c.closed_stream_memory as u64),
    ] {
        m = put(m, k, v)?;
    }
    m = put(m, "adaptive_window", w.adaptive)?;
    for (k, r) in [
        ("peer_reset_rate", c.peer_resets),
        ("empty_data_rate", c.empty_frames),
        ("refused_stream_rate", c.refused_streams),
        ("local_reset_rate", c.local_resets),
    ] {
        m = put(m, k, (r.burst, r.per_second))?;
    }
    Ok(m)
}

pub fn put<'a>(map: Term<'a>, key: &str, value: impl Encoder) -> NifResult<Term<'a>> {
    let env = map.get_env();
    map.map_put(rustler::Atom::from_str(env, key)?, value)
}

/// The engine's counters as a map (documented in `H2Flow.Engine.stats/1`).
#[rustler::nif]
fn engine_stats<'a>(env: Env<'a>, engine: ResourceArc<EngineResource>) -> NifResult<Term<'a>> {
    let values = h2flow_core::totals::snapshot(&lock(&engine)?.conn);
    crate::totals::encode(env, &values, crate::totals::Scope::Http2Engine)
}

/// Connection state the caller acts on: whether to close, and what is buffered.
#[rustler::nif]
fn engine_info<'a>(env: Env<'a>, engine: ResourceArc<EngineResource>) -> NifResult<Term<'a>> {
    let conn = lock(&engine)?;
    let mut m = Term::map_new(env);
    m = put(m, "done", conn.is_done())?;
    m = put(m, "closed", conn.is_closed())?;
    m = put(m, "open_streams", conn.open_streams() as u64)?;
    m = put(m, "frames_received", conn.stats().frames_received.iter().sum::<u64>())?;
    m = put(m, "buffered_bytes", conn.buffered())?;
    m = put(m, "queued_send_bytes", conn.queued())?;
    m = put(m, "send_window", conn.send_window())?;
    m = put(m, "connection_window", conn.scheduler().connection_window() as u64)?;
    let pending = conn.settings_unacked_since().map(|t| t.elapsed().as_millis() as u64);
    m = put(m, "settings_unacked_ms", pending)?;
    Ok(m)
}
