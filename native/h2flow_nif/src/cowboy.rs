//! `H2Flow.Cowboy.StreamHandler`'s NIFs: one call per `cowboy_stream` callback into the
//! mirror of a Cowboy connection's windows (`h2flow_core::cowboy`).

use std::sync::{Mutex, MutexGuard};

use h2flow_core::cowboy::{CowboyMirror, CowboyOptions, Level, Plan};
use rustler::{Encoder, Env, NifResult, ResourceArc, Term};

use crate::scheduler::put_scheduler_info;
use crate::terms::{self, field, misuse, narrow};

pub struct CowboyResource(Mutex<CowboyMirror>);

#[rustler::resource_impl]
impl rustler::Resource for CowboyResource {}

fn lock(m: &ResourceArc<CowboyResource>) -> NifResult<MutexGuard<'_, CowboyMirror>> {
    m.0.lock().map_err(|_| misuse("the Cowboy mirror is unusable after an internal error"))
}

/// The demand to add, or `{demand, stream_to_ask}` when a stream is to be asked to carry
/// connection credit.
fn encode_plan<'a>(env: Env<'a>, plan: Plan) -> Term<'a> {
    match plan.ask {
        None => plan.demand.encode(env),
        Some(carrier) => (plan.demand, carrier).encode(env),
    }
}

fn level(term: Term) -> NifResult<Level> {
    let (margin, threshold, max): (i64, i64, i64) = term.decode()?;
    Ok(Level { margin, threshold, max })
}

/// `opts`: a map of Cowboy's window options, every key present (the Elixir side fills in
/// Cowboy's defaults); `connection` and `stream` are `{margin, threshold, max}`.
#[rustler::nif]
fn cowboy_new<'a>(env: Env<'a>, opts: Term<'a>) -> NifResult<Term<'a>> {
    let opts = CowboyOptions {
        initial_connection_window_size: field(opts, "initial_connection_window_size")?.decode()?,
        initial_stream_window_size: field(opts, "initial_stream_window_size")?.decode()?,
        max_frame_size_received: field(opts, "max_frame_size_received")?.decode()?,
        connection: level(field(opts, "connection")?)?,
        stream: level(field(opts, "stream")?)?,
        window_update_threshold: narrow(field(opts, "window_update_threshold")?, "window_update_threshold")?,
    };
    Ok(match CowboyMirror::new(&opts) {
        Ok(m) => (terms::ok(), ResourceArc::new(CowboyResource(Mutex::new(m)))).encode(env),
        Err(msg) => (terms::error(), msg).encode(env),
    })
}

#[rustler::nif]
fn cowboy_open(
    env: Env,
    m: ResourceArc<CowboyResource>,
    id: u32,
    content_length: Option<u64>,
    has_body: bool,
    stop: bool,
) -> NifResult<Term> {
    Ok(encode_plan(env, lock(&m)?.open(id, content_length, has_body, stop)))
}

#[rustler::nif]
fn cowboy_data(
    env: Env,
    m: ResourceArc<CowboyResource>,
    id: u32,
    size: u32,
    fin: bool,
    stop: bool,
) -> NifResult<Term> {
    Ok(encode_plan(env, lock(&m)?.data(id, size, fin, stop)))
}

/// A read (`length` `nil` for `auto`): the plan, or `{:waiting, plan}` when the read now waits
/// for DATA with a length.
#[rustler::nif]
fn cowboy_read(
    env: Env,
    m: ResourceArc<CowboyResource>,
    id: u32,
    length: Option<u64>,
    stop: bool,
) -> NifResult<Term> {
    let (waits, plan) = lock(&m)?.read_body(id, length, stop);
    let plan = encode_plan(env, plan);
    Ok(if waits { (terms::waiting(), plan).encode(env) } else { plan })
}

#[rustler::nif]
fn cowboy_read_timeout(env: Env, m: ResourceArc<CowboyResource>, id: u32, stop: bool) -> NifResult<Term> {
    Ok(encode_plan(env, lock(&m)?.read_timeout(id, stop)))
}

#[rustler::nif]
fn cowboy_info_other(env: Env, m: ResourceArc<CowboyResource>, id: u32, stop: bool) -> NifResult<Term> {
    Ok(encode_plan(env, lock(&m)?.info_other(id, stop)))
}

#[rustler::nif]
fn cowboy_carry(env: Env, m: ResourceArc<CowboyResource>, id: u32, stop: bool) -> NifResult<Term> {
    Ok(encode_plan(env, lock(&m)?.carry(id, stop)))
}

/// The stream to ask to carry connection credit, or `nil`.
#[rustler::nif]
fn cowboy_terminate(m: ResourceArc<CowboyResource>, id: u32, peer_reset: bool) -> NifResult<Option<u32>> {
    Ok(lock(&m)?.terminate(id, peer_reset))
}

/// The scheduler's counters (as `scheduler_info`) and the mirrored values.
#[rustler::nif]
fn cowboy_info<'a>(env: Env<'a>, m: ResourceArc<CowboyResource>) -> NifResult<Term<'a>> {
    let m = lock(&m)?;
    let info = m.info();
    let mut map = put_scheduler_info(env, Term::map_new(env), m.scheduler())?;
    for (k, v) in [
        ("demand", info.demand),
        ("window", info.window),
        ("window_max", info.window_max),
        ("lingering", info.lingering),
        ("streams", info.streams as i64),
    ] {
        map = map.map_put(rustler::Atom::from_str(env, k)?, v)?;
    }
    Ok(map)
}
