//! Counters of what the HTTP/1.1 engine did, for operators and for tests.

use super::error::Reject;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Request heads accepted (announced to the application, or upgraded).
    pub requests: u64,
    /// Responses written completely.
    pub responses: u64,
    /// Request-body bytes handed to the application.
    pub body_bytes_received: u64,
    /// Request-body bytes read and thrown away after an early response.
    pub body_bytes_discarded: u64,
    /// Response-body bytes written (chunk framing excluded).
    pub body_bytes_sent: u64,
    /// Responses by framing.
    pub responses_content_length: u64,
    pub responses_chunked: u64,
    pub responses_close_delimited: u64,
    pub responses_without_body: u64,
    /// `100 Continue` written (when the application first read the body).
    pub continues_sent: u64,
    /// `101 Switching Protocols` to h2c written.
    pub upgrades: u64,
    /// `Upgrade: h2c` requests served over HTTP/1.1 instead (invalid, or not allowed here).
    pub upgrades_declined: u64,
    /// Requests announced and then abandoned: the connection closed before their turn.
    pub cancelled: u64,
    /// Responses, request data or trailers offered for a request that was already gone.
    pub writes_to_closed: u64,
    /// Connections closed after `keepalive_timeout` (or `header_timeout` before any byte).
    pub idle_timeouts: u64,
    /// Connections that stopped reading because the application held `max_body_buffer`.
    pub input_pauses: u64,
    pub peak_pipelined: u64,
    pub peak_buffered: u64,
    pub peak_queued: u64,
    /// Requests refused, by kind ([`Reject::ALL`] order).
    pub rejected: [u64; Reject::COUNT],
}

impl Stats {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    pub fn rejected(&self, kind: Reject) -> u64 {
        self.rejected[kind.index()]
    }

    pub(crate) fn count_rejected(&mut self, kind: Reject) {
        self.rejected[kind.index()] += 1;
    }
}
