//! `H2Flow.Scheduler`'s NIFs: the receive-side window scheduler on its own, for HTTP/2
//! implementations other than the engine (the Cowboy stream handler has its own, `cowboy.rs`).

use std::sync::{Mutex, MutexGuard};

use h2flow_core::{Scheduler, SchedulerConfig};
use rustler::{Encoder, Env, NifResult, ResourceArc, Term};

use crate::terms::{self, encode_error, field, misuse, narrow};

pub struct SchedulerResource(Mutex<Scheduler>);

#[rustler::resource_impl]
impl rustler::Resource for SchedulerResource {}

fn lock(s: &ResourceArc<SchedulerResource>) -> NifResult<MutexGuard<'_, Scheduler>> {
    s.0.lock().map_err(|_| misuse("the scheduler is unusable after an internal error"))
}

#[rustler::nif]
fn scheduler_new<'a>(env: Env<'a>, opts: Term<'a>) -> NifResult<Term<'a>> {
    let cfg = SchedulerConfig {
        initial_stream_window: field(opts, "initial_stream_window")?.decode()?,
        initial_connection_window: field(opts, "initial_connection_window")?.decode()?,
        update_threshold_percent: narrow(field(opts, "window_update_threshold")?, "window_update_threshold")?,
        adaptive: false,
        max_connection_window: field(opts, "initial_connection_window")?.decode()?,
        max_stream_window: field(opts, "initial_stream_window")?.decode()?,
        max_frame_size: field(opts, "max_frame_size")?.decode()?,
        peer_initial_connection_window: field(opts, "peer_initial_connection_window")?.decode()?,
    };
    if let Err(msg) = cfg.validate() {
        return Ok((terms::error(), msg).encode(env));
    }
    Ok((terms::ok(), ResourceArc::new(SchedulerResource(Mutex::new(Scheduler::new(cfg))))).encode(env))
}

#[rustler::nif]
fn scheduler_initial_credit(s: ResourceArc<SchedulerResource>) -> NifResult<u32> {
    Ok(lock(&s)?.take_initial_credit().unwrap_or(0))
}

#[rustler::nif]
fn scheduler_open_stream(
    s: ResourceArc<SchedulerResource>,
    id: u32,
    content_length: Option<u64>,
    end_stream: bool,
) -> NifResult<rustler::Atom> {
    lock(&s)?.open_stream(id, content_length, end_stream);
    Ok(terms::ok())
}

#[rustler::nif]
fn scheduler_data<'a>(
    env: Env<'a>,
    s: ResourceArc<SchedulerResource>,
    id: u32,
    flow_len: u32,
    data_len: u32,
    end_stream: bool,
) -> NifResult<Term<'a>> {
    if data_len > flow_len {
        return Err(misuse("data_len must not exceed flow_len"));
    }
    Ok(match lock(&s)?.on_data(id, flow_len, data_len, end_stream) {
        Ok(_) => terms::ok().encode(env),
        Err(e) => (terms::error(), encode_error(env, &e)).encode(env),
    })
}

#[rustler::nif]
fn scheduler_consume(s: ResourceArc<SchedulerResource>, id: u32, n: u64) -> NifResult<rustler::Atom> {
    lock(&s)?.consume(id, n).map_err(|_| misuse("consumed more bytes than were received"))?;
    Ok(terms::ok())
}

#[rustler::nif]
fn scheduler_end_stream(s: ResourceArc<SchedulerResource>, id: u32) -> NifResult<rustler::Atom> {
    lock(&s)?.end_stream(id);
    Ok(terms::ok())
}

#[rustler::nif]
fn scheduler_close_stream(s: ResourceArc<SchedulerResource>, id: u32) -> NifResult<rustler::Atom> {
    lock(&s)?.close_stream(id);
    Ok(terms::ok())
}

/// The credits due now: `[{stream_id, increment}]`, the connection (id 0) first.
#[rustler::nif]
fn scheduler_flush(s: ResourceArc<SchedulerResource>) -> NifResult<Vec<(u32, u32)>> {
    let mut credits = Vec::new();
    lock(&s)?.flush(|id, n| credits.push((id, n)));
    Ok(credits)
}

#[rustler::nif]
fn scheduler_info<'a>(env: Env<'a>, s: ResourceArc<SchedulerResource>) -> NifResult<Term<'a>> {
    put_scheduler_info(env, Term::map_new(env), &*lock(&s)?)
}

/// Adds the scheduler's counters to `map` (`H2Flow.Scheduler.info/1`).
pub fn put_scheduler_info<'a>(env: Env<'a>, mut map: Term<'a>, s: &Scheduler) -> NifResult<Term<'a>> {
    let st = s.stats();
    for (k, v) in [
        ("buffered_bytes", s.buffered() as i64),
        ("peak_buffered_bytes", st.peak_buffered as i64),
        ("connection_window", s.connection_window() as i64),
        ("connection_remaining", s.connection_remaining()),
        ("connection_window_updates", st.connection_window_updates as i64),
        ("stream_window_updates", st.stream_window_updates as i64),
        ("flushes_with_window_updates", st.flushes_with_window_updates as i64),
        ("credited_bytes", st.credited_bytes as i64),
        ("tracked_streams", s.tracked_streams() as i64),
    ] {
        map = map.map_put(rustler::Atom::from_str(env, k)?, v)?;
    }
    Ok(map)
}

/// What the peer may still send on a stream, `nil` if the stream is not tracked.
#[rustler::nif]
fn scheduler_stream_remaining(s: ResourceArc<SchedulerResource>, id: u32) -> NifResult<Option<i64>> {
    Ok(lock(&s)?.stream_remaining(id))
}

/// A DATA frame of `len` bytes (no padding), then, unless `consume` is `nil`, that many bytes
/// of the stream consumed by the application, then the credits due: `{:ok | {:error, reason},
/// [{stream_id, increment}]}`. One NIF call per DATA frame for hosts that see every frame.
#[rustler::nif]
fn scheduler_data_flush<'a>(
    env: Env<'a>,
    s: ResourceArc<SchedulerResource>,
    id: u32,
    len: u32,
    end_stream: bool,
    consume: Option<u64>,
) -> NifResult<Term<'a>> {
    let mut s = lock(&s)?;
    let result = match s.on_data(id, len, len, end_stream) {
        Ok(_) => terms::ok().encode(env),
        Err(e) => (terms::error(), encode_error(env, &e)).encode(env),
    };
    if let Some(n) = consume {
        s.consume(id, n).map_err(|_| misuse("consumed more bytes than were received"))?;
    }
    let mut credits = Vec::new();
    s.flush(|id, n| credits.push((id, n)));
    Ok((result, credits).encode(env))
}

/// `consume` bytes of the stream consumed by the application, then the credits due: one NIF
/// call for a host whose reader takes buffered bytes.
#[rustler::nif]
fn scheduler_consume_flush(s: ResourceArc<SchedulerResource>, id: u32, n: u64) -> NifResult<Vec<(u32, u32)>> {
    let mut s = lock(&s)?;
    s.consume(id, n).map_err(|_| misuse("consumed more bytes than were received"))?;
    let mut credits = Vec::new();
    s.flush(|id, n| credits.push((id, n)));
    Ok(credits)
}
