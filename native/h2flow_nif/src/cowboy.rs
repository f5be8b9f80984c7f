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
    m.0.lock().map_err(|_| poisoned())
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

// The per-callback NIFs below run several times per request inside Cowboy's connection process,
// whose CPU time is that server's bottleneck. `#[rustler::nif]` collects each call's arguments
// into a `Vec` (a malloc and a free) and takes a reference on the resource; these entry points,
// registered the same way, read the arguments in place and borrow the resource. Decoding,
// panics and errors are handled as rustler does (`handle_nif_result`).
macro_rules! callback_nif {
    ($name:ident, $arity:expr, |$env:ident, $m:ident, $args:ident| $body:expr) => {
        rustler::codegen_runtime::inventory::submit!(rustler::Nif {
            name: concat!(stringify!($name), "\0").as_ptr() as *const rustler::codegen_runtime::c_char,
            arity: $arity,
            flags: 0,
            raw_func: {
                unsafe extern "C" fn $name(
                    env: *mut rustler::sys::ErlNifEnv,
                    argc: rustler::codegen_runtime::c_int,
                    argv: *const rustler::sys::ErlNifTerm,
                ) -> rustler::sys::ErlNifTerm {
                    let lifetime = ();
                    let $env = rustler::Env::new(&lifetime, env);
                    let raw = std::slice::from_raw_parts(argv, argc as usize);
                    let result = std::panic::catch_unwind(|| -> NifResult<Term> {
                        let $args = |i: usize| rustler::Term::new($env, raw[i]);
                        let resource: &CowboyResource =
                            $args(0).try_get_resource().ok_or(rustler::Error::BadArg)?;
                        let mut $m = resource.0.lock().map_err(|_| poisoned())?;
                        Ok($body)
                    });
                    rustler::codegen_runtime::handle_nif_result(result, $env).apply($env)
                }
                $name
            },
        });
    };
}

fn poisoned() -> rustler::Error {
    misuse("the Cowboy mirror is unusable after an internal error")
}

// cowboy_open(mirror, id, content_length | nil, has_body, stop)
callback_nif!(cowboy_open, 5, |env, m, arg| {
    let plan = m.open(arg(1).decode()?, arg(2).decode::<Option<u64>>()?, arg(3).decode()?, arg(4).decode()?);
    encode_plan(env, plan)
});

// cowboy_data(mirror, id, size, fin, stop)
callback_nif!(cowboy_data, 5, |env, m, arg| {
    let plan = m.data(arg(1).decode()?, arg(2).decode()?, arg(3).decode()?, arg(4).decode()?);
    encode_plan(env, plan)
});

// cowboy_read(mirror, id, length | nil for auto, stop): the plan, or `{:waiting, plan}` when the
// read now waits for DATA with a length.
callback_nif!(cowboy_read, 4, |env, m, arg| {
    let (waits, plan) = m.read_body(arg(1).decode()?, arg(2).decode::<Option<u64>>()?, arg(3).decode()?);
    let plan = encode_plan(env, plan);
    if waits {
        (terms::waiting(), plan).encode(env)
    } else {
        plan
    }
});

// cowboy_read_timeout(mirror, id, stop)
callback_nif!(cowboy_read_timeout, 3, |env, m, arg| {
    encode_plan(env, m.read_timeout(arg(1).decode()?, arg(2).decode()?))
});

// cowboy_info_other(mirror, id, stop)
callback_nif!(cowboy_info_other, 3, |env, m, arg| {
    encode_plan(env, m.info_other(arg(1).decode()?, arg(2).decode()?))
});

// cowboy_carry(mirror, id, stop)
callback_nif!(cowboy_carry, 3, |env, m, arg| encode_plan(env, m.carry(arg(1).decode()?, arg(2).decode()?)));

// cowboy_terminate(mirror, id, peer_reset): the stream to ask to carry connection credit, or nil.
callback_nif!(cowboy_terminate, 3, |env, m, arg| {
    m.terminate(arg(1).decode()?, arg(2).decode()?).encode(env)
});

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
