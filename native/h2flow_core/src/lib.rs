//! h2flow_core: a sans-IO HTTP/2 server engine (RFC 9113, RFC 7541) in pure Rust.
//!
//! Bytes in, events and bytes out: [`frame`] is the strict codec, [`hpack`] the header
//! compression layer with size limits.

pub mod error;
pub mod frame;

pub use error::{Error, ErrorCode};
