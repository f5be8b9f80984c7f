//! Every limit of the HTTP/1.1 engine, with its default.

use std::time::Duration;

/// Configuration of one HTTP/1.x server connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Longest request line, CRLF excluded; longer gets 414.
    pub max_request_line: usize,
    /// Most field lines in the header section (and in the trailer section); more gets 431.
    pub max_headers: usize,
    /// Longest header section, request line included (and longest trailer section); longer
    /// gets 431. Also the most a partial head keeps buffered in the engine.
    pub max_header_section: usize,
    /// Longest chunk-size line, chunk extensions included; longer gets 400.
    pub max_chunk_line: usize,
    /// Time from the first byte of a request head (from the start, for the first request) to
    /// its end; past it: 408 and close, or a silent close if nothing arrived (slowloris).
    pub header_timeout: Duration,
    /// Time without a request while nothing is in progress; past it: a silent close.
    pub keepalive_timeout: Duration,
    /// Requests parsed and not yet answered (pipelining); at the limit the engine stops
    /// reading until the oldest response is complete.
    pub max_pipelined: usize,
    /// Request-body bytes handed to the application and not consumed beyond which the engine
    /// asks for no more input (the socket is not read, so TCP's window stops the client).
    pub max_body_buffer: u64,
    /// Unwritten response bytes per request beyond which the application should wait for
    /// `Writable` before sending more (like HTTP/2's `max_send_queue`).
    pub max_send_queue: u64,
    /// Request-body bytes the engine reads and throws away after a response that did not read
    /// the whole body, to keep the connection; a larger remainder closes it.
    pub max_discard: u64,
    /// Honour `Upgrade: h2c` (RFC 7540 §3.2) on cleartext connections.
    pub h2c_upgrade: bool,
    /// Largest request body an h2c upgrade request may carry (it is read whole before the
    /// switch); a larger or chunked one is served over HTTP/1.1 instead.
    pub max_upgrade_body: u64,
    /// The connection is over TLS: `:scheme` is "https" and `Upgrade: h2c` is ignored.
    pub secure: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_request_line: 8 * 1024,
            max_headers: 100,
            max_header_section: 64 * 1024,
            max_chunk_line: 4 * 1024,
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            max_pipelined: 16,
            max_body_buffer: 256 * 1024,
            max_send_queue: 64 * 1024,
            max_discard: 1024 * 1024,
            h2c_upgrade: true,
            max_upgrade_body: 64 * 1024,
            secure: false,
        }
    }
}

impl Config {
    /// Checks ranges; the message names the offending option.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.max_request_line == 0 || self.max_request_line > self.max_header_section {
            return Err("max_request_line must be within 1..max_header_section");
        }
        if self.max_headers == 0 || self.max_headers > 10_000 {
            return Err("max_headers must be within 1..10000");
        }
        if self.max_chunk_line < 3 {
            return Err("max_chunk_line must be at least 3");
        }
        if self.max_pipelined == 0 {
            return Err("max_pipelined must be positive");
        }
        if self.max_body_buffer == 0 || self.max_send_queue == 0 {
            return Err("max_body_buffer and max_send_queue must be positive");
        }
        if self.header_timeout.is_zero() || self.keepalive_timeout.is_zero() {
            return Err("header_timeout and keepalive_timeout must be positive");
        }
        Ok(())
    }
}
