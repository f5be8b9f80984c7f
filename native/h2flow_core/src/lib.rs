//! h2flow_core: a sans-IO HTTP/2 engine, server and client roles (RFC 9113, RFC 7541), in pure Rust.
//!
//! Bytes in, events and bytes out: [`frame`] is the strict codec, [`hpack`] the header
//! compression layer with size limits, [`connection`] the HTTP/2 engine; [`http1`] is the
//! HTTP/1.1 engine beside it (RFC 9112), with protocol detection and the h2c upgrade.

pub mod error;
pub mod fields;
pub mod frame;
pub mod hpack;
pub mod http1;

pub use config::{Config, Rate};
pub use connection::{Connection, Event, Payload, Request, Role, SendError, Sent};
pub use error::{Error, ErrorCode};
pub use scheduler::{Scheduler, SchedulerConfig};
pub mod config;
pub mod connection;
pub mod cowboy;
pub mod flow;
pub mod scheduler;
pub mod stats;
pub mod stream;
pub mod totals;

/// A map keyed by stream id with a cheap hash (ids are small integers; the maps are bounded by
/// the stream limits, so a collision-heavy peer only costs bounded probing).
pub(crate) type IdMap<V> = std::collections::HashMap<u32, V, std::hash::BuildHasherDefault<IdHasher>>;

#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, x: u32) {
        let h = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
}
