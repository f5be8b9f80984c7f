//! rustler glue for h2flow_core: resources, term encoding and atoms. No protocol logic here:
//! every decision is made in h2flow_core; this crate translates terms to Rust values and back.

mod cowboy;
mod engine;
mod http1;
mod respond;
mod scheduler;
mod terms;
mod totals;

#[rustler::nif]
fn nif_loaded() -> bool {
    true
}

rustler::init!("Elixir.H2Flow.Native");
