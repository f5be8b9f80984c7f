//! Counters of what the engine did, for operators and for tests.

use crate::error::ErrorCode;
use crate::frame::kind;

/// Index of frames of unknown type in the per-type counters.
pub const UNKNOWN_KIND: usize = kind::COUNT;

/// Index of codes RFC 9113 does not define in the per-code counters.
pub const UNKNOWN_CODE: usize = ErrorCode::ALL.len();

/// Times each defence tripped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Defences {
    /// Peer RST_STREAM rate (Rapid Reset, CVE-2023-44487).
    pub rapid_reset: u64,
    /// Too many CONTINUATION frames or bytes in one header block.
    pub continuation_flood: u64,
    /// Too many PING/SETTINGS acknowledgements owed (CVE-2019-9512, 9515).
    pub ack_flood: u64,
    /// A SETTINGS frame with too many parameters.
    pub settings_flood: u64,
    /// Empty DATA frames without END_STREAM (CVE-2019-9518).
    pub empty_frames: u64,
    /// A decoded header list over SETTINGS_MAX_HEADER_LIST_SIZE (answered 431; HPACK bomb).
    pub header_list_too_large: u64,
    /// Streams beyond the concurrency limit, too often, after the peer acknowledged it.
    pub refused_stream_flood: u64,
    /// Peer errors that made us reset streams, too often (CVE-2019-9514).
    pub reset_flood: u64,
}

impl Defences {
    pub fn total(&self) -> u64 {
        self.rapid_reset
            + self.continuation_flood
            + self.ack_flood
            + self.settings_flood
            + self.empty_frames
            + self.header_list_too_large
            + self.refused_stream_flood
            + self.reset_flood
    }
}

/// Engine counters. Window-update counters live in [`crate::scheduler::SchedulerStats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames received, by type code; the last slot counts unknown types.
    pub frames_received: [u64; kind::COUNT + 1],
    /// Frames handed to the caller for writing, by type code.
    pub frames_sent: [u64; kind::COUNT + 1],
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub data_bytes_received: u64,
    pub data_bytes_sent: u64,
    /// Calls to `flush` that returned bytes.
    pub flushes: u64,
    pub streams_opened: u64,
    pub peak_open_streams: u64,
    /// Streams refused with REFUSED_STREAM (over the concurrency limit).
    pub streams_refused: u64,
    /// Streams the peer reset.
    pub streams_reset_by_peer: u64,
    /// Streams we reset (peer errors, the application, refusals excluded).
    pub streams_reset_by_us: u64,
    /// Response headers, data or trailers offered for a stream that was already gone.
    pub writes_to_closed_streams: u64,
    /// A stream with data queued ran out of stream window.
    pub stream_stalls: u64,
    /// Data was queued and the connection send window ran out.
    pub connection_stalls: u64,
    pub peak_queued_send_bytes: u64,
    /// Streams reset because the peer let none of their queued response bytes go for
    /// `send_stall_timeout` (the connection is closed when none of its streams could send).
    pub send_timeouts: u64,
    /// PINGs we sent to measure the round trip.
    pub pings_sent: u64,
    /// Connection errors we answered with GOAWAY (the peer broke the protocol, a defence
    /// tripped, or SETTINGS_TIMEOUT), by error code; the last slot counts undefined codes.
    pub connection_errors: [u64; UNKNOWN_CODE + 1],
    /// Stream errors of the peer's making we answered with RST_STREAM, by error code (refused
    /// streams and resets the application asked for are not errors: see `streams_refused`,
    /// `streams_reset_by_us`).
    pub stream_errors: [u64; UNKNOWN_CODE + 1],
    pub defences: Defences,
}

impl Stats {
    pub(crate) fn count_connection_error(&mut self, code: ErrorCode) {
        self.connection_errors[(code.0 as usize).min(UNKNOWN_CODE)] += 1;
    }

    pub(crate) fn count_stream_error(&mut self, code: ErrorCode) {
        self.stream_errors[(code.0 as usize).min(UNKNOWN_CODE)] += 1;
    }

    pub(crate) fn count_received(&mut self, frame_kind: u8) {
        self.frames_received[(frame_kind as usize).min(UNKNOWN_KIND)] += 1;
    }

    pub(crate) fn count_sent(&mut self, frame_kind: u8) {
        self.frames_sent[(frame_kind as usize).min(UNKNOWN_KIND)] += 1;
    }
}
