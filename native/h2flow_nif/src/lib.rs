//! rustler glue for h2flow_core: resources, term encoding and atoms. No protocol logic here.

#[rustler::nif]
fn nif_loaded() -> bool {
    true
}

rustler::init!("Elixir.H2Flow.Native");
