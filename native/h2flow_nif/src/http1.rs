//! `H2Flow.HTTP1.Engine`'s NIFs: one `http1::Connection` per resource, used by one process at a
//! time, with its link to its server's totals; protocol detection; and the HTTP/2 engine that
//! continues an h2c upgrade.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use h2flow_core::fields::{RequestHead, RequestInfo};
use h2flow_core::http1::{self, Connection, Detected, Event, Reject, Rejected, SendError, Sent, Version};
use h2flow_core::totals::Reporter;
use rustler::{Binary, Encoder, Env, NifResult, ResourceArc, Term};

use crate::engine::put;
use crate::engine::{self, EngineResource};
use crate::respond;
use crate::terms::{self, binary, field, misuse};
use crate::totals::TotalsResource;

mod atoms {
    rustler::atoms! {
        read,
        cancelled,
        upgrade,
        rejected,
        http1,
        http2,
        unknown,
        http_1_0 = "HTTP/1.0",
        http_1_1 = "HTTP/1.1",
    }
}

pub struct Http1Resource(Mutex<H1>);

#[rustler::resource_impl]
impl rustler::Resource for Http1Resource {}

/// A connection, and its link to its server's totals when it has one.
pub struct H1 {
    conn: Connection,
    reporter: Option<Reporter>,
}

impl Deref for H1 {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl DerefMut for H1 {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

impl Drop for H1 {
    /// An engine garbage-collected without `h1_close_report` still leaves its server's totals.
    fn drop(&mut self) {
        if let Some(r) = self.reporter.as_mut() {
            r.close(&self.conn);
        }
    }
}

fn lock(engine: &ResourceArc<Http1Resource>) -> NifResult<MutexGuard<'_, H1>> {
    // A poisoned lock means an earlier call panicked: a bug, reported as an exception.
    engine.0.lock().map_err(|_| misuse("the engine is unusable after an internal error"))
}

/// Options arrive validated and complete from `H2Flow.HTTP1.Engine` (which documents them).
fn config(opts: Term) -> NifResult<http1::Config> {
    let ms = |key: &str| -> NifResult<Duration> { Ok(Duration::from_millis(field(opts, key)?.decode()?)) };
    Ok(http1::Config {
        max_request_line: field(opts, "max_request_line")?.decode()?,
        max_headers: field(opts, "max_headers")?.decode()?,
        max_header_section: field(opts, "max_header_section")?.decode()?,
        max_chunk_line: field(opts, "max_chunk_line")?.decode()?,
        header_timeout: ms("header_timeout")?,
        keepalive_timeout: ms("keepalive_timeout")?,
        max_pipelined: field(opts, "max_pipelined")?.decode()?,
        max_body_buffer: field(opts, "max_body_buffer")?.decode()?,
        max_send_queue: field(opts, "max_send_queue")?.decode()?,
        max_discard: field(opts, "max_discard")?.decode()?,
        h2c_upgrade: field(opts, "h2c_upgrade")?.decode()?,
        max_upgrade_body: field(opts, "max_upgrade_body")?.decode()?,
        secure: field(opts, "secure")?.decode()?,
    })
}

/// Every HTTP/1.1 engine option's default, as `H2Flow.HTTP1.Engine` names them: the one
/// definition of the defaults is `h2flow_core::http1::Config::default()`.
#[rustler::nif]
fn h1_defaults<'a>(env: Env<'a>) -> NifResult<Term<'a>> {
    let c = http1::Config::default();
    let mut m = Term::map_new(env);
    for (k, v) in [
        ("max_request_line", c.max_request_line as u64),
        ("max_headers", c.max_headers as u64),
        ("max_header_section", c.max_header_section as u64),
        ("max_chunk_line", c.max_chunk_line as u64),
        ("header_timeout", c.header_timeout.as_millis() as u64),
        ("keepalive_timeout", c.keepalive_timeout.as_millis() as u64),
        ("max_pipelined", c.max_pipelined as u64),
        ("max_body_buffer", c.max_body_buffer),
        ("max_send_queue", c.max_send_queue),
        ("max_discard", c.max_discard),
        ("max_upgrade_body", c.max_upgrade_body),
    ] {
        m = put(m, k, v)?;
    }
    m = put(m, "h2c_upgrade", c.h2c_upgrade)?;
    put(m, "secure", c.secure)
}

#[rustler::nif]
fn h1_new<'a>(env: Env<'a>, opts: Term<'a>) -> NifResult<Term<'a>> {
    let cfg = config(opts)?;
    match Connection::new(cfg, Instant::now()) {
        Ok(conn) => {
            let h1 = H1 { conn, reporter: None };
            Ok((terms::ok(), ResourceArc::new(Http1Resource(Mutex::new(h1)))).encode(env))
        }
        Err(msg) => Ok((terms::error(), msg).encode(env)),
    }
}

fn header_list<'a>(env: Env<'a>, list: &h2flow_core::hpack::HeaderList) -> Term<'a> {
    let fields: Vec<Term<'a>> =
        list.iter().map(|(n, v)| (binary(env, n), binary(env, v)).encode(env)).collect();
    fields.encode(env)
}

fn version(v: Version) -> rustler::Atom {
    match v {
        Version::Http10 => atoms::http_1_0(),
        Version::Http11 => atoms::http_1_1(),
    }
}

/// `{:request, id, method, scheme, authority, path, qs, content_length | nil, headers, end?,
/// version}`: the HTTP/2 engine's request event (the same view of the fields, repeated ones
/// joined) plus the HTTP version.
fn request<'a>(
    env: Env<'a>,
    id: u64,
    v: Version,
    fields: &h2flow_core::hpack::HeaderList,
    content_length: Option<u64>,
    end_stream: bool,
) -> NifResult<Term<'a>> {
    let pseudo = fields.iter().take_while(|(n, _)| n.first() == Some(&b':')).count();
    let info = RequestInfo { content_length, pseudo, ..RequestInfo::default() };
    let head = RequestHead::new(fields, &info);
    let mut elements = engine::request_elements(env, id.encode(env), &head, end_stream)?;
    elements.push(version(v).encode(env));
    Ok(rustler::types::tuple::make_tuple(env, &elements))
}

fn event<'a>(env: Env<'a>, input: &Binary<'a>, referenced: usize, e: &Event) -> NifResult<Term<'a>> {
    Ok(match e {
        Event::Request { id, version: v, fields, content_length, end_stream } => {
            request(env, *id, *v, fields, *content_length, *end_stream)?
        }
        Event::Data { id, data, end_stream } => {
            (terms::data(), *id, engine::payload(env, input, referenced, data)?, *end_stream).encode(env)
        }
        Event::ReadDone { id, fin } => {
            (terms::read_done(), *id, if *fin { terms::fin() } else { terms::more() }).encode(env)
        }
        Event::Trailers { id, fields } => (terms::trailers(), *id, header_list(env, fields)).encode(env),
        // The HTTP/2 engine's name for the same thing: a sender told to wait may go on.
        Event::Writable { id } => (terms::send_window_open(), *id).encode(env),
        Event::Cancelled { id } => (atoms::cancelled(), *id).encode(env),
        Event::Upgrade(u) => {
            let rest = engine::payload(env, input, referenced, &u.rest)?;
            (atoms::upgrade(), u.settings.clone(), header_list(env, &u.fields), binary(env, &u.body), rest)
                .encode(env)
        }
    })
}

fn events<'a>(
    env: Env<'a>,
    input: &Binary<'a>,
    referenced: usize,
    conn: &mut Connection,
) -> NifResult<Vec<Term<'a>>> {
    conn.drain_events().map(|e| event(env, input, referenced, &e)).collect()
}

/// `{:rejected, status, kind, message}`.
fn rejection<'a>(env: Env<'a>, r: &Rejected) -> NifResult<Term<'a>> {
    let kind = rustler::Atom::from_str(env, r.kind.name())?;
    Ok((atoms::rejected(), r.status(), kind, r.message).encode(env))
}

fn empty<'a>(env: Env<'a>) -> Binary<'a> {
    rustler::NewBinary::new(env, 0).into()
}

/// Feeds received bytes (the caller bounds each call to 64 KiB; `referenced` is the size of
/// the socket read they are part of): `{:ok, events}`, `{:wait, events}` when the engine wants
/// no more input for now (stop reading the socket), or `{:error, {:rejected, status, kind,
/// message}, events}` when a request was refused (the answer is queued for `h1_flush`).
#[rustler::nif]
fn h1_recv<'a>(
    env: Env<'a>,
    engine: ResourceArc<Http1Resource>,
    input: Binary<'a>,
    referenced: usize,
) -> NifResult<Term<'a>> {
    let mut guard = lock(&engine)?;
    let conn = &mut guard.conn;
    let result = conn.recv(input.as_slice(), Instant::now());
    let events = events(env, &input, referenced, conn)?;
    Ok(match result {
        Ok(()) if conn.wants_input() => (terms::ok(), events).encode(env),
        Ok(()) => (terms::wait(), events).encode(env),
        Err(r) => (terms::error(), rejection(env, &r)?, events).encode(env),
    })
}

/// Registers a read of a request body: `:fin`, `:more` (complete now), `:wait` (a `read_done`
/// event will tell), or `{:error, :closed}`.
#[rustler::nif]
fn h1_read<'a>(
    env: Env<'a>,
    engine: ResourceArc<Http1Resource>,
    id: u64,
    length: u64,
) -> NifResult<Term<'a>> {
    Ok(respond::read_status(env, lock(&engine)?.read(id, length)))
}

/// The period of a registered read expired: `true` if one was waiting (it completes now).
#[rustler::nif]
fn h1_read_timeout(engine: ResourceArc<Http1Resource>, id: u64) -> NifResult<bool> {
    Ok(lock(&engine)?.read_timeout(id))
}

/// The application will not read the rest of the body.
#[rustler::nif]
fn h1_discard(engine: ResourceArc<Http1Resource>, id: u64) -> NifResult<rustler::Atom> {
    lock(&engine)?.discard(id);
    Ok(terms::ok())
}

/// Response body bytes with bounded memory: `{:ok, taken, blocked?}` or `{:error, :closed}`.
#[rustler::nif]
fn h1_send_body<'a>(
    env: Env<'a>,
    engine: ResourceArc<Http1Resource>,
    id: u64,
    data: Binary<'a>,
    end_stream: bool,
) -> NifResult<Term<'a>> {
    let r = lock(&engine)?.send_body(id, data.as_slice(), end_stream);
    respond::sent(env, r)
}

/// The response head and the start of its body in one call, as `engine_reply`: `{:ok, taken,
/// blocked?}` (`{:ok, 0, false}` for a response ended by its head) or `{:error, :closed}`.
#[rustler::nif]
fn h1_reply<'a>(
    env: Env<'a>,
    engine: ResourceArc<Http1Resource>,
    id: u64,
    headers: Vec<(Binary<'a>, Binary<'a>)>,
    body: Binary<'a>,
    end_stream: bool,
) -> NifResult<Term<'a>> {
    respond::reply(env, &mut lock(&engine)?.conn, id, &headers, body, end_stream)
}

#[rustler::nif]
fn h1_read_body<'a>(env: Env<'a>, engine: ResourceArc<Http1Resource>, id: u64) -> NifResult<Term<'a>> {
    let r = lock(&engine)?.read_body(id);
    respond::sent(env, r)
}

#[rustler::nif]
fn h1_consume(engine: ResourceArc<Http1Resource>, id: u64, n: u64) -> NifResult<rustler::Atom> {
    lock(&engine)?.consume(id, n).map_err(|SendError::Misuse(m)| misuse(m))?;
    Ok(terms::ok())
}

#[rustler::nif]
fn h1_send_headers<'a>(
    env: Env<'a>,
    engine: ResourceArc<Http1Resource>,
    id: u64,
    headers: Vec<(Binary<'a>, Binary<'a>)>,
    end_stream: bool,
) -> NifResult<Term<'a>> {
    let fields = respond::fields(&headers);
    let r = lock(&engine)?.send_headers(id, &fields, end_stream);
    respond::sent(env, r)
}

#[rustler::nif]
fn h1_send_data<'a>(
    env: Env<'a>,
    engine: ResourceArc<Http1Resource>,
    id: u64,
    data: Term<'a>,
    end_stream: bool,
) -> NifResult<Term<'a>> {
    let bytes = Binary::from_iolist(data).map_err(|_| misuse("the body must be iodata"))?;
    let r = lock(&engine)?.send_data(id, bytes.as_slice(), end_stream);
    match r {
        Ok(Sent::Queued(n)) => Ok((terms::ok(), n).encode(env)),
        other => respond::sent(env, other),
    }
}

#[rustler::nif]
fn h1_abort(engine: ResourceArc<Http1Resource>, id: u64) -> NifResult<rustler::Atom> {
    lock(&engine)?.abort(id);
    Ok(terms::ok())
}

#[rustler::nif]
fn h1_shutdown(engine: ResourceArc<Http1Resource>) -> NifResult<rustler::Atom> {
    lock(&engine)?.shutdown();
    Ok(terms::ok())
}

/// Everything to write now, the events the flush produced, and what the caller does next:
/// `{binary, events, :read | :wait | :done}` (read the socket; do not read it now, the engine
/// wants no input; close once the binary is written). An engine linked to its server's
/// totals reports to them.
#[rustler::nif]
fn h1_flush<'a>(env: Env<'a>, engine: ResourceArc<Http1Resource>) -> NifResult<Term<'a>> {
    let mut guard = lock(&engine)?;
    let h1 = &mut *guard;
    let out = h1.conn.flush(Instant::now());
    // Input held back is processed by the flush as copies: no payload refers to an input.
    let events = events(env, &empty(env), 0, &mut h1.conn)?;
    if let Some(r) = h1.reporter.as_mut() {
        r.report(&h1.conn);
    }
    let next = if h1.conn.is_done() {
        terms::done()
    } else if h1.conn.wants_input() {
        atoms::read()
    } else {
        terms::wait()
    };
    Ok((binary(env, &out), events, next).encode(env))
}

/// Links the engine to its server's totals: its flushes add to them from now on.
#[rustler::nif]
fn h1_report_to(
    engine: ResourceArc<Http1Resource>,
    totals: ResourceArc<TotalsResource>,
) -> NifResult<rustler::Atom> {
    let mut guard = lock(&engine)?;
    let h1 = &mut *guard;
    if h1.reporter.is_none() {
        h1.reporter = Some(Reporter::new(totals.0.clone(), &h1.conn));
    }
    Ok(terms::ok())
}

/// The engine is done (its connection closed, or it handed over to HTTP/2): its last counters
/// go to the totals and its gauges leave them (idempotent).
#[rustler::nif]
fn h1_close_report(engine: ResourceArc<Http1Resource>) -> NifResult<rustler::Atom> {
    let mut guard = lock(&engine)?;
    let h1 = &mut *guard;
    if let Some(r) = h1.reporter.as_mut() {
        r.close(&h1.conn);
    }
    Ok(terms::ok())
}

#[rustler::nif]
fn h1_check_timeouts<'a>(env: Env<'a>, engine: ResourceArc<Http1Resource>) -> NifResult<Term<'a>> {
    let mut conn = lock(&engine)?;
    Ok(match conn.check_timeouts(Instant::now()) {
        Ok(()) => terms::ok().encode(env),
        Err(r) => (terms::error(), rejection(env, &r)?).encode(env),
    })
}

/// Connection state the caller acts on.
#[rustler::nif]
fn h1_info<'a>(env: Env<'a>, engine: ResourceArc<Http1Resource>) -> NifResult<Term<'a>> {
    let conn = lock(&engine)?;
    let now = Instant::now();
    let deadline = conn.deadline().map(|d| d.saturating_duration_since(now).as_millis() as u64);
    let mut m = Term::map_new(env);
    m = put(m, "wants_input", conn.wants_input())?;
    m = put(m, "done", conn.is_done())?;
    m = put(m, "closing", conn.is_closing())?;
    m = put(m, "pipelined", conn.pipelined() as u64)?;
    m = put(m, "buffered_bytes", conn.buffered())?;
    m = put(m, "queued_bytes", conn.queued())?;
    m = put(m, "held_bytes", conn.held_input() as u64)?;
    m = put(m, "deadline_ms", deadline)?;
    Ok(m)
}

/// The engine's counters as a map (documented in `H2Flow.HTTP1.Engine.stats/1`).
#[rustler::nif]
fn h1_stats<'a>(env: Env<'a>, engine: ResourceArc<Http1Resource>) -> NifResult<Term<'a>> {
    let conn = lock(&engine)?;
    let s = conn.stats();
    let mut rejected = Term::map_new(env);
    for kind in Reject::ALL {
        rejected = put(rejected, kind.name(), s.rejected(kind))?;
    }
    let mut m = Term::map_new(env);
    m = put(m, "rejected", rejected)?;
    for (k, v) in [
        ("bytes_received", s.bytes_received),
        ("bytes_sent", s.bytes_sent),
        ("requests", s.requests),
        ("responses", s.responses),
        ("body_bytes_received", s.body_bytes_received),
        ("body_bytes_discarded", s.body_bytes_discarded),
        ("body_bytes_sent", s.body_bytes_sent),
        ("responses_content_length", s.responses_content_length),
        ("responses_chunked", s.responses_chunked),
        ("responses_close_delimited", s.responses_close_delimited),
        ("responses_without_body", s.responses_without_body),
        ("continues_sent", s.continues_sent),
        ("upgrades", s.upgrades),
        ("upgrades_declined", s.upgrades_declined),
        ("cancelled", s.cancelled),
        ("writes_to_closed", s.writes_to_closed),
        ("idle_timeouts", s.idle_timeouts),
        ("input_pauses", s.input_pauses),
        ("peak_pipelined", s.peak_pipelined),
        ("peak_buffered_bytes", s.peak_buffered),
        ("peak_queued_bytes", s.peak_queued),
        ("rejected_total", s.rejected_total()),
        ("buffered_bytes", conn.buffered()),
        ("queued_bytes", conn.queued()),
        ("pipelined", conn.pipelined() as u64),
    ] {
        m = put(m, k, v)?;
    }
    Ok(m)
}

/// What the first bytes of a cleartext connection are: `:http2`, `:http1`, `:more` or
/// `:unknown` (the HTTP/2 engine's to answer).
#[rustler::nif]
fn h1_detect(bytes: Binary, max_request_line: usize) -> rustler::Atom {
    match http1::detect(bytes.as_slice(), max_request_line) {
        Detected::Http2 => atoms::http2(),
        Detected::Http1 => atoms::http1(),
        Detected::NeedMore => terms::more(),
        Detected::Unknown => atoms::unknown(),
    }
}

/// The HTTP/2 engine that continues an h2c upgrade: `{:ok, engine, events}` (stream 1
/// announced) or `{:error, message}`. `opts` are `H2Flow.Engine`'s.
#[rustler::nif]
fn h1_http2_engine<'a>(
    env: Env<'a>,
    opts: Term<'a>,
    settings: Vec<(u16, u32)>,
    headers: Vec<(Binary<'a>, Binary<'a>)>,
    body: Binary<'a>,
) -> NifResult<Term<'a>> {
    let cfg = engine::config(opts)?;
    let mut fields = h2flow_core::hpack::HeaderList::new();
    for (n, v) in &headers {
        fields.push(n.as_slice(), v.as_slice());
    }
    match h2flow_core::Connection::from_upgrade(
        cfg,
        Instant::now(),
        &settings,
        fields,
        body.as_slice().to_vec(),
    ) {
        Ok(mut conn) => {
            let input = empty(env);
            let events = conn
                .drain_events()
                .map(|e| engine::event(env, &input, 0, &e))
                .collect::<NifResult<Vec<Term<'a>>>>()?;
            let resource = ResourceArc::new(EngineResource::new(conn));
            Ok((terms::ok(), resource, events).encode(env))
        }
        Err(msg) => Ok((terms::error(), msg).encode(env)),
    }
}
