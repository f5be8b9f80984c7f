//! The client role (RFC 9113 §8.1, §8.3 from the client's side): opening request streams
//! within the server's SETTINGS_MAX_CONCURRENT_STREAMS, receiving responses (informational,
//! final, trailers), and the streams a GOAWAY says were never processed.
//!
//! Everything else a client does is the server's code: request bodies go out through
//! [`Connection::send_body`] within the server's windows, trailers through
//! [`Connection::send_headers`], response bodies are read ([`Connection::read`]) and credited by
//! the scheduler exactly as request bodies are in the server role.

use super::{Connection, Event, Role, Stream};
use crate::error::{conn, stream, Error, ErrorCode};
use crate::fields;
use crate::hpack::HeaderList;
use crate::stream::{Closed, State};

use super::send::{SendError, SendState};

/// The server's concurrency limit a client assumes until the server's first SETTINGS: RFC 9113
/// leaves it unlimited, but recommends at least 100 (§6.5.2), which is what servers advertise.
pub const ASSUMED_MAX_CONCURRENT_STREAMS: u32 = 100;

/// The largest stream identifier (§5.1.1).
const MAX_STREAM_ID: u32 = (1 << 31) - 1;

/// What became of a request ([`Connection::send_request`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Its HEADERS are written, on this stream.
    Opened(u32),
    /// As many streams are open as the server allows (or `max_concurrent_streams`): nothing was
    /// written; try again once a stream has closed.
    Wait,
    /// No stream can be opened on this connection any more: a GOAWAY was sent or received, a
    /// connection error happened, or the stream identifiers are used up (§5.1.1). Nothing was
    /// written.
    Closed,
}

impl Connection {
    /// Client role: opens a stream and writes a request's HEADERS (`fields`: the pseudo-header
    /// fields first — `:method`, `:scheme`, `:authority`, `:path` — then the regular ones).
    /// With `end_stream` the request has no body; otherwise send it with
    /// [`Connection::send_body`] (and trailers with [`Connection::send_headers`]).
    ///
    /// Requests beyond the concurrency limit are not sent (the server would refuse them):
    /// [`Request::Wait`]. Invalid fields are the caller's bug ([`SendError::Misuse`]).
    pub fn send_request(
        &mut self,
        fields: &[(&[u8], &[u8])],
        end_stream: bool,
    ) -> Result<Request, SendError> {
        if self.role != Role::Client {
            return Err(SendError::Misuse("only a client sends requests"));
        }
        let info = check_request(fields)?;
        if self.is_closed() || self.goaway_sent.is_some() || self.goaway_received.is_some() {
            return Ok(Request::Closed);
        }
        let id = if self.last_client_id == 0 { 1 } else { self.last_client_id + 2 };
        if id > MAX_STREAM_ID {
            return Ok(Request::Closed);
        }
        if !self.can_open() {
            return Ok(Request::Wait);
        }
        self.last_client_id = id;
        self.write_header_block(id, fields.iter().copied(), end_stream);
        let mut send = SendState::new(self.peer.initial_window_size);
        send.headers_sent = true;
        let state = if end_stream { State::HalfClosedLocal } else { State::Open };
        let s = Stream {
            state,
            content_length: None,
            received: 0,
            announced: true,
            expect_continue: false,
            peer_head: false,
            head_request: info.method_is_head,
            send,
        };
        self.streams.insert(id, s);
        // Our SETTINGS went out before any request, so the server applies our stream window to
        // every stream we open; the response's length is known once its head arrives.
        self.scheduler.open_stream(id, None, false);
        self.stats.streams_opened += 1;
        self.stats.peak_open_streams = self.stats.peak_open_streams.max(self.streams.len() as u64);
        Ok(Request::Opened(id))
    }

    /// Client role: whether a request may open a stream now.
    pub fn can_open(&self) -> bool {
        let limit = self.peer.max_concurrent_streams.min(self.cfg.max_concurrent_streams);
        self.streams.len() < limit as usize
    }

    /// A complete header block on a stream, in the client role: an informational or final
    /// response to one of our requests, or its trailers. A server opens no stream.
    pub(super) fn on_response_block(
        &mut self,
        id: u32,
        fields: HeaderList,
        end_stream: bool,
        self_dependent: bool,
        too_large: bool,
    ) -> Result<(), Error> {
        let Some(s) = self.streams.get(&id) else {
            if self.is_idle(id) {
                return Err(conn(
                    ErrorCode::PROTOCOL_ERROR,
                    "HEADERS on a stream the client did not open (RFC 9113 5.1, 8.4)",
                ));
            }
            return match self.closed.get(id) {
                Some(Closed::ResetByUs) => Ok(()),
                Some(Closed::ResetByPeer) => {
                    Err(stream(id, ErrorCode::STREAM_CLOSED, "HEADERS on a reset stream (RFC 9113 5.1)"))
                }
                _ => Err(conn(ErrorCode::STREAM_CLOSED, "HEADERS on a closed stream (RFC 9113 5.1)")),
            };
        };
        if self_dependent {
            return Err(stream(
                id,
                ErrorCode::PROTOCOL_ERROR,
                "a stream cannot depend on itself (RFC 9113 5.3.1)",
            ));
        }
        if s.peer_head {
            return self.on_trailers(id, fields, end_stream, too_large);
        }
        if too_large {
            self.stats.defences.header_list_too_large += 1;
            return Err(stream(
                id,
                ErrorCode::PROTOCOL_ERROR,
                "response over SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 6.5.2)",
            ));
        }
        let info =
            fields::validate_response(&fields).map_err(|m| stream(id, ErrorCode::PROTOCOL_ERROR, m.0))?;
        if info.status < 200 {
            if end_stream {
                return Err(stream(
                    id,
                    ErrorCode::PROTOCOL_ERROR,
                    "an informational response with END_STREAM (RFC 9113 8.1)",
                ));
            }
            if info.status == 101 {
                return Err(stream(
                    id,
                    ErrorCode::PROTOCOL_ERROR,
                    "101 (Switching Protocols) in HTTP/2 (RFC 9113 8.6)",
                ));
            }
            self.events.push(Event::Response { stream_id: id, fields, info, end_stream: false });
            return Ok(());
        }
        // What the content-length of a response without content describes is not in DATA
        // frames (RFC 9110 8.6, 9.3.2; RFC 9113 8.1.1).
        let no_content = s.head_request || info.status == 204 || info.status == 304;
        let length = if no_content { Some(0) } else { info.content_length };
        if end_stream && length.is_some_and(|n| n > 0) {
            return Err(stream(
                id,
                ErrorCode::PROTOCOL_ERROR,
                "END_STREAM on HEADERS with a non-zero content-length (RFC 9113 8.1.1)",
            ));
        }
        if let Some(s) = self.streams.get_mut(&id) {
            s.peer_head = true;
            s.content_length = length;
        }
        if let Some(n) = length {
            self.scheduler.expect_length(id, n);
        }
        self.events.push(Event::Response { stream_id: id, fields, info, end_stream });
        if end_stream {
            if self.scheduler.end_stream(id).is_some() {
                self.events.push(Event::ReadDone { stream_id: id, fin: true });
            }
            self.peer_ended(id);
        }
        Ok(())
    }

    /// A GOAWAY in the client role: the streams above its last stream id were not processed
    /// and never will be (§6.8); they close, reported as refused (safe to retry elsewhere,
    /// §8.7), after the GoAway event.
    pub(super) fn unprocessed_streams(&mut self, last_stream_id: u32) {
        let mut ids: Vec<u32> = self.streams.keys().copied().filter(|&id| id > last_stream_id).collect();
        ids.sort_unstable();
        for id in ids {
            self.close_stream(id, Closed::ResetByPeer);
            self.events.push(Event::StreamReset { stream_id: id, code: ErrorCode::REFUSED_STREAM });
        }
    }
}

/// Checks a request's fields before they are encoded: the pseudo-header fields first and per
/// RFC 9113 8.3.1, the regular ones as strictly as a response's.
fn check_request(fields: &[(&[u8], &[u8])]) -> Result<fields::RequestInfo, SendError> {
    let pseudo = fields.iter().take_while(|(name, _)| name.first() == Some(&b':')).count();
    let mut list = HeaderList::new();
    // ok: pseudo <= fields.len() (it counts a prefix of them).
    for &(name, value) in &fields[..pseudo] {
        list.push(name, value);
    }
    for &(name, value) in &fields[pseudo..] {
        if name.first() == Some(&b':') {
            return Err(SendError::Misuse("pseudo-header fields must come first (RFC 9113 8.3)"));
        }
        fields::validate_request_field(name, value).map_err(SendError::Misuse)?;
        if name == b"content-length" {
            list.push(name, value);
        }
    }
    fields::validate_request(&list).map_err(|m| SendError::Misuse(m.0))
}
