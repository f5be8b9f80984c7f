//! `H2Flow.Engine`'s NIFs: one `Connection` per resource, used by one process at a time.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use h2flow_core::config::Rate;
use h2flow_core::stats::{UNKNOWN_CODE, UNKNOWN_KIND};
use h2flow_core::{frame, Config, Connection, ErrorCode, Event, Payload, SchedulerConfig, SendError, Sent};
use rustler::{Binary, Encoder, Env, NifResult, ResourceArc, Term};

use crate::terms::{self, binary, decode_code, encode_code, encode_error, field, misuse};

pub struct EngineResource(Mutex<Connection>);

impl EngineResource {
    /// A resource around an engine made elsewhere (the HTTP/2 side of an h2c upgrade).
    pub(crate) fn new(conn: Connection) -> EngineResource {
        EngineResource(Mutex::new(conn))
    }
}

#[rustler::resource_impl]
impl rustler::Resource for EngineResource {}

fn lock(engine: &ResourceArc<EngineResource>) -> NifResult<MutexGuard<'_, Connection>> {
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
        max_continuation_frames: field(opts, "max_continuation_frames")?.decode()?,
        max_header_block_size: field(opts, "max_header_block_size")?.decode()?,
        max_pending_acks: field(opts, "max_pending_acks")?.decode()?,
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
    match Connection::new(cfg, Instant::now()) {
        Ok(conn) => Ok((terms::ok(), ResourceArc::new(EngineResource(Mutex::new(conn)))).encode(env)),
        Err(msg) => Ok((terms::error(), msg).encode(env)),
    }
}

/// A DATA payload that is at least a quarter of the input it arrived in is returned as a
/// sub-binary of that input; smaller ones are copied, so that buffered, unread data never pins
/// more than four times its size in input binaries.
pub(crate) fn payload<'a>(env: Env<'a>, input: &Binary<'a>, p: &Payload) -> NifResult<Term<'a>> {
    match p {
        Payload::Input { start, len } if *len >= 256 && len * 4 >= input.len() => {
            Ok(input.make_subbinary(*start, *len)?.to_term(env))
        }
        Payload::Input { .. } => Ok(binary(env, p.resolve(input.as_slice()))),
        Payload::Owned(v) => Ok(binary(env, v)),
    }
}

fn header_list<'a>(env: Env<'a>, list: &h2flow_core::hpack::HeaderList) -> Term<'a> {
    let fields: Vec<Term<'a>> =
        list.iter().map(|(n, v)| (binary(env, n), binary(env, v)).encode(env)).collect();
    fields.encode(env)
}

pub(crate) fn event<'a>(env: Env<'a>, input: &Binary<'a>, e: &Event) -> NifResult<Term<'a>> {
    Ok(match e {
        Event::Headers { stream_id, fields, end_stream } => {
            (terms::headers(), *stream_id, header_list(env, fields), *end_stream).encode(env)
        }
        Event::Data { stream_id, data, end_stream } => {
            (terms::data(), *stream_id, payload(env, input, data)?, *end_stream).encode(env)
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
        Event::GoAway { last_stream_id, code, debug } => {
            (terms::goaway(), *last_stream_id, encode_code(env, *code), payload(env, input, debug)?)
                .encode(env)
        }
        Event::SendWindowOpen { stream_id } => (terms::send_window_open(), *stream_id).encode(env),
        Event::WindowsGrown { connection_window, stream_window } => {
            (terms::windows_grown(), *connection_window, *stream_window).encode(env)
        }
    })
}

/// Feeds received bytes (the caller bounds each call to 64 KiB): `{:ok, events}` or
/// `{:error, reason}` after a connection error (the GOAWAY is queued for `engine_flush`).
#[rustler::nif]
fn engine_recv<'a>(
    env: Env<'a>,
    engine: ResourceArc<EngineResource>,
    input: Binary<'a>,
) -> NifResult<Term<'a>> {
    let mut conn = lock(&engine)?;
    let result = conn.recv(input.as_slice(), Instant::now());
    let events = conn.drain_events().map(|e| event(env, &input, &e)).collect::<NifResult<Vec<Term<'a>>>>()?;
    Ok(match result {
        Ok(()) => (terms::ok(), events).encode(env),
        Err(e) => (terms::error(), encode_error(env, &e), events).encode(env),
    })
}

#[rustler::nif]
fn engine_consume(engine: ResourceArc<EngineResource>, stream_id: u32, n: u64) -> NifResult<rustler::Atom> {
    lock(&engine)?.consume(stream_id, n).map_err(|SendError::Misuse(m)| misuse(m))?;
    Ok(terms::ok())
}

fn sent<'a>(env: Env<'a>, r: Result<Sent, SendError>, with_queued: bool) -> NifResult<Term<'a>> {
    match r {
        Ok(Sent::Queued(n)) if with_queued => Ok((terms::ok(), n).encode(env)),
        Ok(Sent::Queued(_)) => Ok(terms::ok().encode(env)),
        Ok(Sent::StreamClosed) => Ok((terms::error(), terms::closed()).encode(env)),
        Err(SendError::Misuse(m)) => Err(misuse(m)),
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
    let fields: Vec<(&[u8], &[u8])> = headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())).collect();
    let r = lock(&engine)?.send_headers(stream_id, &fields, end_stream);
    sent(env, r, false)
}

#[rustler::nif]
fn engine_send_data<'a>(
    env: Env<'a>,
    engine: ResourceArc<EngineResource>,
    stream_id: u32,
    data: Term<'a>,
    end_stream: bool,
) -> NifResult<Term<'a>> {
    let bytes = Binary::from_iolist(data).map_err(|_| misuse("the body must be iodata"))?;
    let r = lock(&engine)?.send_data(stream_id, bytes.as_slice(), end_stream);
    sent(env, r, true)
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
    sent(env, r, false)
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

#[rustler::nif]
fn engine_check_timeouts<'a>(env: Env<'a>, engine: ResourceArc<EngineResource>) -> NifResult<Term<'a>> {
    let mut conn = lock(&engine)?;
    Ok(match conn.check_timeouts(Instant::now()) {
        Ok(()) => terms::ok().encode(env),
        Err(e) => (terms::error(), encode_error(env, &e)).encode(env),
    })
}

fn put<'a>(map: Term<'a>, key: &str, value: impl Encoder) -> NifResult<Term<'a>> {
    let env = map.get_env();
    map.map_put(rustler::Atom::from_str(env, key)?, value)
}

fn by_kind<'a>(env: Env<'a>, counts: &[u64]) -> NifResult<Term<'a>> {
    let mut m = Term::map_new(env);
    for (kind, &n) in counts.iter().enumerate() {
        let name = if kind == UNKNOWN_KIND { "unknown" } else { frame::kind::name(kind as u8) };
        m = put(m, name, n)?;
    }
    Ok(m)
}

fn by_code<'a>(env: Env<'a>, counts: &[u64]) -> NifResult<Term<'a>> {
    let mut m = Term::map_new(env);
    for (code, &n) in counts.iter().enumerate() {
        let name = if code == UNKNOWN_CODE { Some("unknown") } else { ErrorCode(code as u32).name() };
        if let Some(name) = name {
            m = put(m, name, n)?;
        }
    }
    Ok(m)
}

/// The engine's counters as a map (documented in `H2Flow.Engine.stats/1`).
#[rustler::nif]
fn engine_stats<'a>(env: Env<'a>, engine: ResourceArc<EngineResource>) -> NifResult<Term<'a>> {
    let conn = lock(&engine)?;
    let s = conn.stats();
    let w = conn.scheduler().stats();
    let d = &s.defences;
    let mut defences = Term::map_new(env);
    for (k, v) in [
        ("rapid_reset", d.rapid_reset),
        ("continuation_flood", d.continuation_flood),
        ("ack_flood", d.ack_flood),
        ("settings_flood", d.settings_flood),
        ("empty_frames", d.empty_frames),
        ("header_list_too_large", d.header_list_too_large),
        ("refused_stream_flood", d.refused_stream_flood),
        ("reset_flood", d.reset_flood),
    ] {
        defences = put(defences, k, v)?;
    }
    let mut wu = Term::map_new(env);
    wu = put(wu, "connection", w.connection_window_updates)?;
    wu = put(wu, "stream", w.stream_window_updates)?;
    let mut m = Term::map_new(env);
    m = put(m, "frames_received", by_kind(env, &s.frames_received)?)?;
    m = put(m, "frames_sent", by_kind(env, &s.frames_sent)?)?;
    m = put(m, "window_update_frames", wu)?;
    m = put(m, "defences", defences)?;
    m = put(m, "connection_errors", by_code(env, &s.connection_errors)?)?;
    m = put(m, "stream_errors", by_code(env, &s.stream_errors)?)?;
    for (k, v) in [
        ("bytes_received", s.bytes_received),
        ("bytes_sent", s.bytes_sent),
        ("data_bytes_received", s.data_bytes_received),
        ("data_bytes_sent", s.data_bytes_sent),
        ("flushes", s.flushes),
        ("flushes_with_window_updates", w.flushes_with_window_updates),
        ("credited_bytes", w.credited_bytes),
        ("buffered_bytes", conn.buffered()),
        ("peak_buffered_bytes", w.peak_buffered),
        ("queued_send_bytes", conn.queued()),
        ("peak_queued_send_bytes", s.peak_queued_send_bytes),
        ("open_streams", conn.open_streams() as u64),
        ("peak_open_streams", s.peak_open_streams),
        ("streams_opened", s.streams_opened),
        ("streams_refused", s.streams_refused),
        ("streams_reset_by_peer", s.streams_reset_by_peer),
        ("streams_reset_by_us", s.streams_reset_by_us),
        ("writes_to_closed_streams", s.writes_to_closed_streams),
        ("stream_stalls", s.stream_stalls),
        ("connection_stalls", s.connection_stalls),
        ("stalls", s.stream_stalls + s.connection_stalls),
        ("connection_window", conn.scheduler().connection_window() as u64),
        ("stream_window", conn.scheduler().stream_window() as u64),
        ("connection_window_growths", w.connection_window_growths),
        ("stream_window_growths", w.stream_window_growths),
        ("pings_sent", s.pings_sent),
        ("rtt_us", w.rtt_us),
        ("defences_triggered", d.total()),
    ] {
        m = put(m, k, v)?;
    }
    Ok(m)
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
    let pending = conn.settings_pending_since().map(|t| t.elapsed().as_millis() as u64);
    m = put(m, "settings_unacked_ms", pending)?;
    Ok(m)
}
