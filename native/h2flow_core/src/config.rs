//! Every limit of the engine, with its default. The README's table of defaults mirrors this file.

use std::time::Duration;

use crate::frame::{DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE};
use crate::scheduler::SchedulerConfig;

/// A token bucket's shape: `burst` events at once, then `per_second` sustained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub per_second: u32,
}

/// Configuration of one server connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// SETTINGS_MAX_CONCURRENT_STREAMS we advertise and enforce (REFUSED_STREAM beyond it).
    pub max_concurrent_streams: u32,
    /// SETTINGS_MAX_FRAME_SIZE we advertise: the largest frame we accept.
    pub max_frame_size: u32,
    /// SETTINGS_HEADER_TABLE_SIZE we advertise: the HPACK table the peer's encoder may use.
    pub header_table_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce while decoding (the HPACK bomb).
    pub max_header_list_size: u32,
    /// Receive windows and the WINDOW_UPDATE policy.
    pub window: SchedulerConfig,
    /// Queued, unsent response bytes per stream beyond which the caller should wait for
    /// `SendWindowOpen` before sending more.
    pub max_send_queue: u32,
    /// Queued, unsent response bytes per connection beyond which every sender waits: the bound
    /// on what a peer that opens no window makes us hold.
    pub max_connection_send_queue: u32,
    /// How long a stream may hold queued response bytes without the peer letting any go
    /// before it is reset; a connection on which no DATA went out for that long is closed.
    pub send_stall_timeout: Duration,
    /// CONTINUATION frames allowed in one header block (CVE-2024-27316 family).
    pub max_continuation_frames: u32,
    /// Bytes allowed in one compressed header block, across its CONTINUATION frames.
    pub max_header_block_size: u32,
    /// PING and SETTINGS acknowledgements we may owe (queued since the last flush) before the
    /// peer is flooding us (CVE-2019-9512, CVE-2019-9515).
    pub max_queued_acks: u32,
    /// Parameters allowed in one SETTINGS frame (CVE-2019-9515).
    pub max_settings_entries: u32,
    /// RST_STREAM frames the peer may send on open streams (Rapid Reset, CVE-2023-44487).
    pub peer_resets: Rate,
    /// Empty DATA frames without END_STREAM the peer may send (CVE-2019-9518).
    pub empty_frames: Rate,
    /// Streams refused for exceeding the concurrency limit after the peer acknowledged it.
    pub refused_streams: Rate,
    /// RST_STREAM frames the peer's errors may make us send (CVE-2019-9514).
    pub local_resets: Rate,
    /// How long our SETTINGS may stay unacknowledged (SETTINGS_TIMEOUT, §6.5.3).
    pub settings_timeout: Duration,
    /// How many closed streams we remember, to tell late frames from protocol errors (§5.1).
    pub closed_stream_memory: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_concurrent_streams: 100,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            header_table_size: 4096,
            max_header_list_size: 64 * 1024,
            window: SchedulerConfig::default(),
            max_send_queue: 64 * 1024,
            max_connection_send_queue: 1024 * 1024,
            send_stall_timeout: Duration::from_secs(30),
            max_continuation_frames: 16,
            max_header_block_size: 64 * 1024,
            max_queued_acks: 1000,
            max_settings_entries: 32,
            peer_resets: Rate { burst: 1000, per_second: 500 },
            empty_frames: Rate { burst: 100, per_second: 10 },
            refused_streams: Rate { burst: 100, per_second: 10 },
            local_resets: Rate { burst: 200, per_second: 50 },
            settings_timeout: Duration::from_secs(10),
            closed_stream_memory: 1024,
        }
    }
}

impl Config {
    /// The defaults of the client role: larger windows. A client reads what it asked for, and a
    /// download's WINDOW_UPDATE frames number twice its size over half the window (256 MiB
    /// costs 16 stream and 8 connection credits at these sizes, where the server's 256 KiB /
    /// 1 MiB would cost 2,048 and 512 on a link whose round trip never calls for growth). The
    /// memory bound holds all the same: what the application has not read stays within the
    /// windows. Everything else is [`Config::default`].
    pub fn client() -> Config {
        let mut c = Config::default();
        c.window.initial_stream_window = 16 * 1024 * 1024;
        c.window.initial_connection_window = 32 * 1024 * 1024;
        c.window.max_stream_window = 32 * 1024 * 1024;
        c.window.max_connection_window = 64 * 1024 * 1024;
        c
    }

    /// Checks ranges; the message names the offending option.
    pub fn validate(&self) -> Result<(), &'static str> {
        if !(DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&self.max_frame_size) {
            return Err("max_frame_size must be within 16384..16777215 (RFC 9113 6.5.2)");
        }
        if self.max_header_list_size == 0 || self.max_header_block_size == 0 {
            return Err("max_header_list_size and max_header_block_size must be positive");
        }
        if self.max_send_queue == 0 || self.max_connection_send_queue == 0 {
            return Err("max_send_queue and max_connection_send_queue must be positive");
        }
        if self.max_queued_acks == 0 || self.max_settings_entries == 0 {
            return Err("max_queued_acks and max_settings_entries must be positive");
        }
        for rate in [self.peer_resets, self.empty_frames, self.refused_streams, self.local_resets] {
            if rate.burst == 0 {
                return Err("a rate limit's burst must be positive");
            }
        }
        let mut window = self.window.clone();
        window.max_frame_size = self.max_frame_size;
        window.validate()
    }
}
