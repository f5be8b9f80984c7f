//! A server's totals (`h2flow_core::totals`): the shared resource, the engines' link to it,
//! and the encoding of a snapshot as the map `H2Flow.Engine.stats/1` and `H2Flow.stats/1`
//! return.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use h2flow_core::totals::{fields, Presence, Reporter, Totals, Values, DEFENCES, DEFENCE_COUNT};
use rustler::{Atom, Encoder, Env, NifResult, ResourceArc, Term};

use crate::engine::{lock, put, EngineResource};
use crate::terms::{self, binary};

pub struct TotalsResource(pub(crate) Arc<Totals>);

#[rustler::resource_impl]
impl rustler::Resource for TotalsResource {}

/// A connection's [`Presence`] in its server's totals.
pub struct PresenceResource(Mutex<Presence>);

#[rustler::resource_impl]
impl rustler::Resource for PresenceResource {}

/// What a map of values shows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A server's totals: everything.
    Server,
    /// One HTTP/2 engine's own stats: its values only.
    Http2Engine,
}

/// A map of `values`: nested maps for grouped fields, plus `stalls` and `defences_triggered`
/// (sums).
pub fn encode<'a>(env: Env<'a>, values: &Values, scope: Scope) -> NifResult<Term<'a>> {
    let mut m = Term::map_new(env);
    let mut group: Option<(&str, Term<'a>)> = None;
    let mut stalls = 0;
    let mut defences = 0;
    for (i, (f, &v)) in fields().iter().zip(values.iter()).enumerate() {
        let others = f.name.starts_with("connections")
            || f.name == "http2_connections"
            || f.group.is_some_and(|g| g.starts_with("http1"));
        if scope == Scope::Http2Engine && others {
            continue;
        }
        if f.name.ends_with("_stalls") && f.group.is_none() {
            stalls += v;
        }
        if (DEFENCES..DEFENCES + DEFENCE_COUNT).contains(&i) {
            defences += v;
        }
        match (f.group, group) {
            (Some(g), Some((open, map))) if g == open => group = Some((open, put(map, f.name, v)?)),
            (g, open) => {
                if let Some((name, map)) = open {
                    m = put(m, name, map)?;
                }
                group = None;
                match g {
                    Some(g) => group = Some((g, put(Term::map_new(env), f.name, v)?)),
                    None => m = put(m, f.name, v)?,
                }
            }
        }
    }
    if let Some((name, map)) = group {
        m = put(m, name, map)?;
    }
    m = put(m, "stalls", stalls)?;
    put(m, "defences_triggered", defences)
}

#[rustler::nif]
fn totals_new() -> ResourceArc<TotalsResource> {
    ResourceArc::new(TotalsResource(Totals::new()))
}

/// The server's totals: the keys of `engine_stats` plus `connections` (live) and
/// `connections_closed`. Reads atomics only: never waits on a connection.
#[rustler::nif]
fn totals_read<'a>(env: Env<'a>, totals: ResourceArc<TotalsResource>) -> NifResult<Term<'a>> {
    encode(env, &totals.0.read(), Scope::Server)
}

/// A connection is accepted: it counts in `connections` until `totals_leave` (or until its
/// process is gone and the presence is garbage-collected).
#[rustler::nif]
fn totals_join(totals: ResourceArc<TotalsResource>) -> ResourceArc<PresenceResource> {
    ResourceArc::new(PresenceResource(Mutex::new(Presence::join(totals.0.clone()))))
}

/// The connection closed: it moves to `connections_closed` (idempotent).
#[rustler::nif]
fn totals_leave(presence: ResourceArc<PresenceResource>) -> NifResult<Atom> {
    let mut p = presence.0.lock().map_err(|_| crate::terms::misuse("the presence is unusable"))?;
    p.leave();
    Ok(terms::ok())
}

/// Links an engine to its server's totals: from now on its flushes (`engine_flush_reporting`)
/// add to them, and it leaves them when closed or garbage-collected.
#[rustler::nif]
fn engine_report_to(
    engine: ResourceArc<EngineResource>,
    totals: ResourceArc<TotalsResource>,
) -> NifResult<Atom> {
    let mut e = lock(&engine)?;
    if e.reporter.is_none() {
        let r = Reporter::new(totals.0.clone(), &e.conn);
        e.reporter = Some(r);
    }
    Ok(terms::ok())
}

/// `engine_flush`, then the engine reports to its server's totals: the bytes to write, or
/// `{bytes, defences}` when defences tripped since the last report (their names).
#[rustler::nif]
fn engine_flush_reporting<'a>(env: Env<'a>, engine: ResourceArc<EngineResource>) -> NifResult<Term<'a>> {
    let mut guard = lock(&engine)?;
    let e = &mut *guard;
    let out = e.conn.flush(Instant::now());
    let bytes = binary(env, &out);
    let tripped = match e.reporter.as_mut() {
        Some(r) => r.report(&e.conn),
        None => 0,
    };
    if tripped == 0 {
        return Ok(bytes);
    }
    let names: Vec<Atom> = (0..DEFENCE_COUNT)
        .filter(|i| tripped & (1 << i) != 0)
        .map(|i| Atom::from_str(env, fields()[DEFENCES + i].name))
        .collect::<NifResult<_>>()?;
    Ok((bytes, names).encode(env))
}

/// The connection ended: its last counters go to the totals and it leaves them (idempotent).
#[rustler::nif]
fn engine_close_report(engine: ResourceArc<EngineResource>) -> NifResult<Atom> {
    let mut guard = lock(&engine)?;
    let e = &mut *guard;
    if let Some(r) = e.reporter.as_mut() {
        r.close(&e.conn);
    }
    Ok(terms::ok())
}
