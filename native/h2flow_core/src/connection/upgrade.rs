//! Starting an HTTP/2 connection from an HTTP/1.1 `Upgrade: h2c` (RFC 7540 §3.2).
//!
//! After `101 Switching Protocols` the server's first frame is its connection preface
//! (SETTINGS), which [`Connection::new`] queues as usual; the client's SETTINGS from
//! `HTTP2-Settings` apply as if received in a SETTINGS frame, without an acknowledgement (the
//! 101 is one, §3.2.1); the request that carried the upgrade is stream 1, half-closed (remote)
//! since it was sent whole over HTTP/1.1, and is announced with the usual events. The client
//! then sends its connection preface, which `recv` expects as on any connection.

use std::time::Instant;

use super::{send::SendState, Connection, Event, Payload, Stream};
use crate::config::Config;
use crate::fields;
use crate::frame::{self, kind, setting, Frame};
use crate::hpack::HeaderList;
use crate::stream::{Closed, State};

/// The stream an upgraded request is (RFC 7540 §3.2).
const UPGRADE_STREAM: u32 = 1;

impl Connection {
    /// An HTTP/2 connection continuing an h2c upgrade: `settings` are the client's decoded
    /// `HTTP2-Settings`, `fields` the request as HTTP/2 fields (pseudo-header fields first, no
    /// connection-specific field), `body` its body. The events announce stream 1 (`Headers`,
    /// then `Data` with the body); the server preface is queued for the first flush.
    ///
    /// An invalid SETTINGS value or request is the caller's bug (the HTTP/1.1 engine declines
    /// such upgrades); a request larger than `max_header_list_size` is answered 431.
    pub fn from_upgrade(
        cfg: Config,
        now: Instant,
        settings: &[(u16, u32)],
        fields: HeaderList,
        body: Vec<u8>,
    ) -> Result<Connection, &'static str> {
        let mut conn = Connection::new(cfg, now)?;
        if settings.len() > conn.cfg.max_settings_entries as usize {
            return Err("too many parameters in HTTP2-Settings");
        }
        let mut encoded = Vec::new();
        frame::Settings::encode_params(settings, &mut encoded);
        if !matches!(frame::decode(&encoded, frame::MAX_MAX_FRAME_SIZE), Ok(Some((Frame::Settings(_), _)))) {
            return Err("invalid SETTINGS value in HTTP2-Settings (RFC 9113 6.5.2)");
        }
        for &(id, value) in settings {
            match id {
                setting::HEADER_TABLE_SIZE => conn.encoder.set_peer_table_size(value),
                setting::INITIAL_WINDOW_SIZE => {
                    conn.set_peer_initial_window(value).map_err(|_| "invalid SETTINGS_INITIAL_WINDOW_SIZE")?
                }
                setting::MAX_FRAME_SIZE => conn.peer.max_frame_size = value,
                _ => {}
            }
        }
        let info = fields::validate_request(&fields).map_err(|m| m.0)?;
        conn.last_client_id = UPGRADE_STREAM;
        conn.last_accepted_id = UPGRADE_STREAM;
        if fields.list_size() > conn.cfg.max_header_list_size as usize {
            conn.stats.defences.header_list_too_large += 1;
            let mut block = Vec::new();
            conn.encoder.encode([(&b":status"[..], &b"431"[..])], &mut block);
            conn.stats.count_sent(kind::HEADERS);
            let max = conn.peer.max_frame_size;
            frame::encode_header_block(UPGRADE_STREAM, &block, true, max, &mut conn.output);
            conn.closed.insert(UPGRADE_STREAM, Closed::EndStream);
            return Ok(conn);
        }
        // Nothing more arrives on stream 1, so there is no receive window to manage: its body
        // came outside HTTP/2 flow control, bounded by the HTTP/1.1 engine.
        conn.scheduler.open_stream(UPGRADE_STREAM, info.content_length, true);
        let send = SendState::new(conn.peer.initial_window_size);
        let stream = Stream {
            state: State::HalfClosedRemote,
            content_length: info.content_length,
            received: body.len() as u64,
            announced: true,
            // The body came with the upgrade: nothing to wait for.
            expect_continue: false,
            peer_head: true,
            head_request: false,
            send,
        };
        conn.streams.insert(UPGRADE_STREAM, stream);
        conn.stats.streams_opened += 1;
        conn.stats.peak_open_streams = conn.stats.peak_open_streams.max(1);
        conn.stats.data_bytes_received += body.len() as u64;
        let end_stream = body.is_empty();
        conn.events.push(Event::Headers { stream_id: UPGRADE_STREAM, fields, info, end_stream });
        if !end_stream {
            conn.events.push(Event::Data {
                stream_id: UPGRADE_STREAM,
                data: Payload::Owned(body),
                end_stream: true,
            });
        }
        Ok(conn)
    }
}
