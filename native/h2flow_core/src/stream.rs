//! Stream states (RFC 9113 §5.1) as seen by a server, and the memory of recently closed streams.
//!
//! ```text
//!                          +--------+
//!                  recv H  |        |
//!            ,-------------|  idle  |
//!           /              |        |
//!          v               +--------+
//!     +----------+                    recv H + ES
//!     |          |-----------------------------------.
//!     |   open   |                                    \
//!     |          |                                     v
//!     +----------+  recv ES   +-----------------+
//!      |   |  `--------------->|   half-closed   |
//!      |   |                   |    (remote)     |
//!      |   | send ES           +-----------------+
//!      |   v                         |   send ES / send R / recv R
//!      | +-----------------+         v
//!      | |   half-closed   |     +--------+
//!      | |     (local)     |---->| closed |
//!      | +-----------------+     +--------+
//!      |      recv ES / send R / recv R ^
//!      `--------------------------------'  send R / recv R
//! ```
//! H: HEADERS, ES: END_STREAM flag, R: RST_STREAM. A server never pushes, so the reserved
//! states do not occur; a PUSH_PROMISE from a client is a connection error (§8.4).

use std::collections::VecDeque;

use crate::IdMap;

/// The state of a stream that is not idle and not closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Open,
    /// We sent END_STREAM; the peer may still send.
    HalfClosedLocal,
    /// The peer sent END_STREAM; we may still send.
    HalfClosedRemote,
}

impl State {
    /// The peer may still send DATA or trailers.
    pub fn peer_may_send(self) -> bool {
        matches!(self, State::Open | State::HalfClosedLocal)
    }

    /// We may still send.
    pub fn we_may_send(self) -> bool {
        matches!(self, State::Open | State::HalfClosedRemote)
    }
}

/// How a stream came to be closed; it decides how late frames on it are treated (§5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// Both sides sent END_STREAM. WINDOW_UPDATE, RST_STREAM and PRIORITY are still allowed
    /// for a while; DATA or HEADERS are a connection error STREAM_CLOSED.
    EndStream,
    /// We sent RST_STREAM: frames the peer sent before seeing it are ignored.
    ResetByUs,
    /// The peer sent RST_STREAM: anything but PRIORITY is a stream error STREAM_CLOSED.
    ResetByPeer,
}

/// A bounded memory of how recently closed streams were closed. Older ones are forgotten, and
/// frames on a forgotten stream are treated as errors, which §5.1 allows ("An endpoint MAY
/// choose to limit the period over which it ignores frames").
#[derive(Debug)]
pub struct ClosedStreams {
    map: IdMap<Closed>,
    order: VecDeque<u32>,
    capacity: usize,
}

impl ClosedStreams {
    pub fn new(capacity: usize) -> ClosedStreams {
        ClosedStreams { map: IdMap::default(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    pub fn insert(&mut self, id: u32, how: Closed) {
        if self.map.insert(id, how).is_none() {
            if self.order.len() >= self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
            self.order.push_back(id);
        }
    }

    pub fn get(&self, id: u32) -> Option<Closed> {
        self.map.get(&id).copied()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
