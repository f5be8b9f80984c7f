//! Receiving: the preface, frame reassembly across `recv` calls, and one handler per frame type
//! with the stream-state rules of RFC 9113 §5.1 and the defences.

use std::time::Instant;

use super::{Connection, Event, HeaderBlock, Payload, Phase, Role, Stream, PREFACE};
use crate::error::{conn, stream, Error, ErrorCode};
use crate::fields;
use crate::frame::{
    self, kind, Continuation, Data, Frame, GoAway, Head, Headers, Ping, PriorityFrame, RstStream,
};
use crate::frame::{setting, Settings, WindowUpdate, HEADER_LEN};
use crate::hpack::{DecodeError, HeaderList};
use crate::scheduler::{Arrival, ReadStatus, DEFAULT_WINDOW};
use crate::stream::{Closed, State};

const FIRST_FRAME_NOT_SETTINGS: &str =
    "the client preface must be followed by a SETTINGS frame (RFC 9113 3.4)";
const SERVER_PREFACE_NOT_SETTINGS: &str =
    "the server connection preface must be a SETTINGS frame (RFC 9113 3.4)";

/// Streams refused before the peer acknowledged our SETTINGS that do not count as a flood.
const PRE_ACK_REFUSALS: u32 = 1000;

impl Connection {
    pub(super) fn recv_inner(&mut self, input: &[u8], now: Instant) -> Result<(), Error> {
        let mut pos = 0;
        if let Phase::Preface(seen) = self.phase {
            let n = (PREFACE.len() - seen).min(input.len());
            // ok: seen < PREFACE.len() in this phase, and n fits both slices by construction.
            if input[..n] != PREFACE[seen..seen + n] {
                return Err(conn(ErrorCode::PROTOCOL_ERROR, "invalid connection preface (RFC 9113 3.4)"));
            }
            pos = n;
            if seen + n < PREFACE.len() {
                self.phase = Phase::Preface(seen + n);
                return Ok(());
            }
            self.phase = Phase::FirstSettings;
        }
        if !self.partial.is_empty() {
            // ok: pos <= input.len() here and below: it only advances past bytes that are in
            // `input` (the preface part, what complete_carried used, whole frames).
            pos += self.complete_carried(&input[pos..], now)?;
            if !self.partial.is_empty() {
                return Ok(());
            }
        }
        let max = self.cfg.max_frame_size;
        while pos < input.len() {
            let buf = &input[pos..];
            let Some(head) = Head::parse(buf) else { break };
            match frame::decode(buf, max) {
                Ok(Some((f, len))) => {
                    self.handle_frame(f, Some(input), now)?;
                    pos += len;
                }
                Ok(None) => break,
                Err(e) => {
                    self.handle_invalid_frame(head, e, now)?;
                    pos += HEADER_LEN + head.length as usize;
                }
            }
            if self.phase == Phase::Closed {
                return Ok(());
            }
        }
        // What is left is a partial frame, at most one max-size frame long: decode checked the
        // length as soon as the header was complete.
        self.partial.extend_from_slice(&input[pos..]);
        Ok(())
    }

    /// Adds input to the partial frame carried from the last call; processes it once whole.
    /// Returns how many input bytes were used.
    fn complete_carried(&mut self, input: &[u8], now: Instant) -> Result<usize, Error> {
        let mut used = 0;
        if self.partial.len() < HEADER_LEN {
            used = (HEADER_LEN - self.partial.len()).min(input.len());
            // ok: used <= input.len().
            self.partial.extend_from_slice(&input[..used]);
        }
        let Some(head) = Head::parse(&self.partial) else { return Ok(used) };
        if head.length > self.cfg.max_frame_size {
            return Err(conn(
                ErrorCode::FRAME_SIZE_ERROR,
                "frame exceeds SETTINGS_MAX_FRAME_SIZE (RFC 9113 4.2)",
            ));
        }
        let total = HEADER_LEN + head.length as usize;
        // What is held is less than one frame (recv_inner keeps only an incomplete frame).
        let n = total.saturating_sub(self.partial.len()).min(input.len() - used);
        // ok: used <= input.len() (it is a min with input.len()), and n <= input.len() - used.
        self.partial.extend_from_slice(&input[used..used + n]);
        used += n;
        if self.partial.len() < total {
            return Ok(used);
        }
        let partial = std::mem::take(&mut self.partial);
        let result = match frame::decode(&partial, self.cfg.max_frame_size) {
            Ok(Some((f, _))) => self.handle_frame(f, None, now),
            Ok(None) => Ok(()), // unreachable: the frame is complete
            Err(e) => self.handle_invalid_frame(head, e, now),
        };
        self.partial = partial;
        self.partial.clear();
        result.map(|()| used)
    }

    /// The codec rejected a complete frame: a connection error, or a stream error after which
    /// processing continues.
    fn handle_invalid_frame(&mut self, head: Head, e: Error, now: Instant) -> Result<(), Error> {
        self.stats.count_received(head.kind);
        self.expect_continuation(head.kind, head.stream_id)?;
        if self.phase == Phase::FirstSettings {
            // Whatever it is, a malformed frame is not the SETTINGS frame that must come first.
            return Err(self.first_frame_not_settings());
        }
        if e.is_connection_error() {
            return Err(e);
        }
        if head.kind != kind::PRIORITY && self.is_idle(head.stream_id) {
            return Err(conn(
                ErrorCode::PROTOCOL_ERROR,
                "frame other than HEADERS or PRIORITY on an idle stream (RFC 9113 5.1)",
            ));
        }
        self.check(Err(e), now)
    }

    /// §6.10: a header block must be followed by CONTINUATION frames of the same stream only.
    fn expect_continuation(&self, frame_kind: u8, stream_id: u32) -> Result<(), Error> {
        match &self.block {
            Some(b) if frame_kind != kind::CONTINUATION || stream_id != b.stream_id => Err(conn(
                ErrorCode::PROTOCOL_ERROR,
                "a header block must be followed by its CONTINUATION frames (RFC 9113 6.10)",
            )),
            _ => Ok(()),
        }
    }

    fn handle_frame(&mut self, f: Frame<'_>, input: Option<&[u8]>, now: Instant) -> Result<(), Error> {
        self.stats.count_received(f.kind());
        self.expect_continuation(f.kind(), f.stream_id())?;
        if self.phase == Phase::FirstSettings {
            match &f {
                Frame::Settings(s) if !s.ack => self.phase = Phase::Open,
                _ => return Err(self.first_frame_not_settings()),
            }
        }
        let result = match f {
            Frame::Data(d) => self.on_data(d, input, now),
            Frame::Headers(h) => self.on_headers(h, now),
            Frame::Continuation(c) => self.on_continuation(c, now),
            Frame::Priority(p) => self.on_priority(p),
            Frame::RstStream(r) => self.on_rst_stream(r, now),
            Frame::Settings(s) => self.on_settings(s),
            Frame::PushPromise(_) if self.role == Role::Client => Err(conn(
                ErrorCode::PROTOCOL_ERROR,
                "PUSH_PROMISE after SETTINGS_ENABLE_PUSH 0 (RFC 9113 6.5.2, 6.6)",
            )),
            Frame::PushPromise(_) => Err(conn(
                ErrorCode::PROTOCOL_ERROR,
                "a client cannot push: PUSH_PROMISE received (RFC 9113 8.4)",
            )),
            Frame::Ping(p) => self.on_ping(p, now),
            Frame::GoAway(g) => self.on_goaway(g, input),
            Frame::WindowUpdate(w) => self.on_window_update(w),
            Frame::Unknown(_) => Ok(()),
        };
        self.check(result, now)
    }

    /// Turns a stream error into RST_STREAM and goes on; passes connection errors up.
    fn check(&mut self, result: Result<(), Error>, now: Instant) -> Result<(), Error> {
        let Err(Error::Stream { stream_id, code, message }) = result else { return result };
        if self.is_idle(stream_id) {
            // Only PRIORITY gets here on an idle stream (a bad length, or a dependency on
            // itself). RST_STREAM must not be sent on an idle stream (RFC 9113 6.4) and a peer
            // would answer it with a connection error (5.1); a stream error may be treated as
            // a connection error instead (5.4.1).
            return Err(Error::Connection { code, message });
        }
        let announced = self.streams.get(&stream_id).is_some_and(|s| s.announced);
        let flood = !self.local_resets.take(now);
        if flood {
            // The GOAWAY replaces the RST_STREAM, but the stream is settled all the same: a
            // DATA frame that broke content-length was counted as buffered and never handed
            // over, and must not stay counted.
            self.stats.defences.reset_flood += 1;
            self.close_stream(stream_id, Closed::ResetByUs);
        } else {
            self.stats.count_stream_error(code);
            self.reset(stream_id, code);
        }
        if announced {
            self.events.push(Event::StreamError { stream_id, code, message: message.into_owned() });
        }
        if flood {
            return Err(conn(ErrorCode::ENHANCE_YOUR_CALM, "too many stream errors (CVE-2019-9514)"));
        }
        Ok(())
    }

    fn first_frame_not_settings(&self) -> Error {
        let message = match self.role {
            Role::Server => FIRST_FRAME_NOT_SETTINGS,
            Role::Client => SERVER_PREFACE_NOT_SETTINGS,
        };
        conn(ErrorCode::PROTOCOL_ERROR, message)
    }

    /// A stream the client has not opened yet (§5.1 "idle"); servers never open streams (no
    /// push, in either role), so every even id is idle too.
    pub(super) fn is_idle(&self, id: u32) -> bool {
        id > self.last_client_id || id.is_multiple_of(2)
    }

    fn on_data(&mut self, d: Data<'_>, input: Option<&[u8]>, now: Instant) -> Result<(), Error> {
        let id = d.stream_id;
        if self.is_idle(id) {
            return Err(conn(ErrorCode::PROTOCOL_ERROR, "DATA on an idle stream (RFC 9113 5.1)"));
        }
        let len = d.data.len() as u32;
        let receiving = self.streams.get(&id).is_some_and(|s| s.state.peer_may_send());
        // Every DATA frame counts against the connection window, whatever its stream (§6.9).
        let arrival = self.scheduler.on_data(id, d.flow_len(), len, d.end_stream && receiving)?;
        self.stats.data_bytes_received += len as u64;
        let Some(s) = self.streams.get_mut(&id) else {
            return match self.closed.get(id) {
                Some(Closed::ResetByUs) => Ok(()),
                Some(Closed::EndStream) => {
                    Err(conn(ErrorCode::STREAM_CLOSED, "DATA on a closed stream (RFC 9113 5.1)"))
                }
                _ => Err(stream(id, ErrorCode::STREAM_CLOSED, "DATA on a closed stream (RFC 9113 5.1, 6.1)")),
            };
        };
        if !receiving {
            return Err(stream(id, ErrorCode::STREAM_CLOSED, "DATA after END_STREAM (RFC 9113 5.1, 6.1)"));
        }
        if !s.peer_head {
            return Err(stream(
                id,
                ErrorCode::PROTOCOL_ERROR,
                "DATA before the response HEADERS (RFC 9113 8.1)",
            ));
        }
        s.received += len as u64;
        if let Some(cl) = s.content_length {
            if s.received > cl || (d.end_stream && s.received != cl) {
                return Err(stream(
                    id,
                    ErrorCode::PROTOCOL_ERROR,
                    "DATA does not match content-length (RFC 9113 8.1.1)",
                ));
            }
        }
        let empty = len == 0 && !d.end_stream;
        if empty && !self.empty_frames.take(now) {
            self.stats.defences.empty_frames += 1;
            return Err(conn(ErrorCode::ENHANCE_YOUR_CALM, "too many empty DATA frames (CVE-2019-9518)"));
        }
        if arrival != Arrival::Dropped && !empty {
            let data = match input {
                Some(input) => Payload::Input {
                    start: d.data.as_ptr() as usize - input.as_ptr() as usize,
                    len: len as usize,
                },
                None => Payload::Owned(d.data.to_vec()),
            };
            self.events.push(Event::Data { stream_id: id, data, end_stream: d.end_stream });
        }
        if let Arrival::Completes(status) = arrival {
            self.events.push(Event::ReadDone { stream_id: id, fin: status == ReadStatus::Fin });
        }
        if d.end_stream {
            self.peer_ended(id);
        }
        Ok(())
    }

    /// The peer sent END_STREAM on an open stream.
    pub(super) fn peer_ended(&mut self, id: u32) {
        if let Some(s) = self.streams.get_mut(&id) {
            match s.state {
                State::Open => s.state = State::HalfClosedRemote,
                State::HalfClosedLocal => self.finish_stream(id),
                State::HalfClosedRemote => {}
            }
        }
    }

    fn on_headers(&mut self, h: Headers<'_>, now: Instant) -> Result<(), Error> {
        let self_dependent = h.priority.is_some_and(|p| p.dependency == h.stream_id);
        if h.end_headers {
            return self.on_header_block(h.stream_id, h.fragment, h.end_stream, self_dependent, now);
        }
        if h.fragment.len() > self.cfg.max_header_block_size as usize {
            return Err(self.continuation_flood());
        }
        self.block = Some(HeaderBlock {
            stream_id: h.stream_id,
            end_stream: h.end_stream,
            self_dependent,
            frames: 1,
            buf: h.fragment.to_vec(),
        });
        Ok(())
    }

    fn on_continuation(&mut self, c: Continuation<'_>, now: Instant) -> Result<(), Error> {
        let Some(b) = self.block.as_mut() else {
            return Err(conn(
                ErrorCode::PROTOCOL_ERROR,
                "CONTINUATION without a preceding HEADERS (RFC 9113 6.10)",
            ));
        };
        b.frames += 1;
        if b.frames > 1 + self.cfg.max_continuation_frames
            || b.buf.len() + c.fragment.len() > self.cfg.max_header_block_size as usize
        {
            return Err(self.continuation_flood());
        }
        b.buf.extend_from_slice(c.fragment);
        if !c.end_headers {
            return Ok(());
        }
        let Some(b) = self.block.take() else { return Ok(()) };
        self.on_header_block(b.stream_id, &b.buf, b.end_stream, b.self_dependent, now)
    }

    fn continuation_flood(&mut self) -> Error {
        self.stats.defences.continuation_flood += 1;
        conn(
            ErrorCode::ENHANCE_YOUR_CALM,
            "header block with too many CONTINUATION frames or bytes (CVE-2024-27316)",
        )
    }

    /// A complete header block: HPACK-decoded first in every case, so the decoder stays in step
    /// with the peer's encoder even for a block we then refuse or ignore.
    fn on_header_block(
        &mut self,
        id: u32,
        block: &[u8],
        end_stream: bool,
        self_dependent: bool,
        now: Instant,
    ) -> Result<(), Error> {
        let mut fields = HeaderList::new();
        let too_large = match self.decoder.decode(block, &mut fields) {
            Ok(()) => false,
            Err(DecodeError::HeaderListTooLarge) => true,
            Err(DecodeError::Compression(msg)) => return Err(conn(ErrorCode::COMPRESSION_ERROR, msg)),
        };
        if self.role == Role::Client {
            return self.on_response_block(id, fields, end_stream, self_dependent, too_large);
        }
        if self.streams.contains_key(&id) {
            return self.on_trailers(id, fields, end_stream, too_large);
        }
        if id.is_multiple_of(2) {
            return Err(conn(
                ErrorCode::PROTOCOL_ERROR,
                "a client opened an even-numbered stream (RFC 9113 5.1.1)",
            ));
        }
        if id <= self.last_client_id {
            return match self.closed.get(id) {
                Some(Closed::ResetByUs) => Ok(()),
                Some(Closed::ResetByPeer) => {
                    Err(stream(id, ErrorCode::STREAM_CLOSED, "HEADERS on a reset stream (RFC 9113 5.1)"))
                }
                Some(Closed::EndStream) => {
                    Err(conn(ErrorCode::STREAM_CLOSED, "HEADERS on a closed stream (RFC 9113 5.1)"))
                }
                None => Err(conn(
                    ErrorCode::PROTOCOL_ERROR,
                    "new stream identifier not greater than all previous ones (RFC 9113 5.1.1)",
                )),
            };
        }
        self.last_client_id = id;
        if self.goaway_sent.is_some_and(|last| id > last) {
            // §6.8: streams above the last id of our GOAWAY are ignored, and so are the frames
            // that follow on them (remembered like a stream we reset: nothing to answer).
            self.closed.insert(id, Closed::ResetByUs);
            return Ok(());
        }
        if self_dependent {
            return Err(stream(
                id,
                ErrorCode::PROTOCOL_ERROR,
                "a stream cannot depend on itself (RFC 9113 5.3.1)",
            ));
        }
        if too_large {
            self.stats.defences.header_list_too_large += 1;
            return self.reject_with_status(id, b"431", end_stream, now);
        }
        if self.streams.len() >= self.cfg.max_concurrent_streams as usize {
            self.refuse(id, now);
            return Ok(());
        }
        let info =
            fields::validate_request(&fields).map_err(|m| stream(id, ErrorCode::PROTOCOL_ERROR, m.0))?;
        if end_stream && info.content_length.is_some_and(|n| n > 0) {
            return Err(stream(
                id,
                ErrorCode::PROTOCOL_ERROR,
                "END_STREAM on HEADERS with a non-zero content-length (RFC 9113 8.1.1)",
            ));
        }
        let stream_window = self.scheduler.stream_window();
        // Until the peer acknowledges our SETTINGS it may use the default window (§6.9.2).
        let peer_window = if self.settings_acked { stream_window } else { stream_window.max(DEFAULT_WINDOW) };
        self.scheduler.open_stream_with_window(id, info.content_length, end_stream, peer_window);
        let state = if end_stream { State::HalfClosedRemote } else { State::Open };
        let send = super::send::SendState::new(self.peer.initial_window_size);
        self.streams.insert(
            id,
            Stream {
                state,
                content_length: info.content_length,
                received: 0,
                announced: true,
                expect_continue: info.expect_continue && !end_stream,
                peer_head: true,
                head_request: false,
                send,
            },
        );
        self.last_accepted_id = id;
        self.stats.streams_opened += 1;
        self.stats.peak_open_streams = self.stats.peak_open_streams.max(self.streams.len() as u64);
        self.events.push(Event::Headers { stream_id: id, fields, info, end_stream });
        Ok(())
    }

    pub(super) fn on_trailers(
        &mut self,
        id: u32,
        fields: HeaderList,
        end_stream: bool,
        too_large: bool,
    ) -> Result<(), Error> {
        let Some(s) = self.streams.get(&id) else { return Ok(()) };
        if !s.state.peer_may_send() {
            return Err(stream(id, ErrorCode::STREAM_CLOSED, "HEADERS after END_STREAM (RFC 9113 5.1)"));
        }
        if !end_stream {
            return Err(stream(
                id,
                ErrorCode::PROTOCOL_ERROR,
                "a second HEADERS frame without END_STREAM (RFC 9113 8.1)",
            ));
        }
        if too_large {
            self.stats.defences.header_list_too_large += 1;
            return Err(stream(
                id,
                ErrorCode::PROTOCOL_ERROR,
                "trailers over SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 6.5.2)",
            ));
        }
        fields::validate_trailers(&fields).map_err(|m| stream(id, ErrorCode::PROTOCOL_ERROR, m.0))?;
        if s.content_length.is_some_and(|cl| cl != s.received) {
            return Err(stream(
                id,
                ErrorCode::PROTOCOL_ERROR,
                "body shorter than content-length (RFC 9113 8.1.1)",
            ));
        }
        let done = self.scheduler.end_stream(id);
        self.events.push(Event::Trailers { stream_id: id, fields });
        if done.is_some() {
            self.events.push(Event::ReadDone { stream_id: id, fin: true });
        }
        self.peer_ended(id);
        Ok(())
    }

    /// Answers a request we will not serve with a bare status, without involving the
    /// application, and closes the stream (with RST_STREAM NO_ERROR if the body is still coming,
    /// §8.1). Like the resets its errors make us send, it counts toward the reset-flood defence
    /// (CVE-2019-9514): the peer makes us write it.
    fn reject_with_status(
        &mut self,
        id: u32,
        status: &[u8],
        request_ended: bool,
        now: Instant,
    ) -> Result<(), Error> {
        if !self.local_resets.take(now) {
            self.stats.defences.reset_flood += 1;
            self.closed.insert(id, Closed::ResetByUs);
            return Err(conn(ErrorCode::ENHANCE_YOUR_CALM, "too many stream errors (CVE-2019-9514)"));
        }
        let mut block = Vec::new();
        self.encoder.encode([(&b":status"[..], status)], &mut block);
        self.stats.count_sent(kind::HEADERS);
        frame::encode_header_block(id, &block, true, self.peer.max_frame_size, &mut self.output);
        if request_ended {
            self.closed.insert(id, Closed::EndStream);
        } else {
            self.reset(id, ErrorCode::NO_ERROR);
        }
        Ok(())
    }

    /// A stream over the concurrency limit (§5.1.2): REFUSED_STREAM, so the client may retry it.
    /// A peer that keeps doing this after acknowledging the limit gets a GOAWAY that still lets
    /// the streams we accepted finish.
    fn refuse(&mut self, id: u32, now: Instant) {
        self.write_frame(Frame::RstStream(RstStream {
            stream_id: id,
            error_code: ErrorCode::REFUSED_STREAM,
        }));
        self.stats.streams_refused += 1;
        self.closed.insert(id, Closed::ResetByUs);
        // Before it acknowledged our SETTINGS the peer may not know the limit: a generous
        // allowance, so that an honest burst is refused, not cut off, but not an unbounded one.
        let excused = !self.settings_acked && {
            self.refused_before_ack += 1;
            self.refused_before_ack <= PRE_ACK_REFUSALS
        };
        if !excused && !self.refused_streams.take(now) {
            self.stats.defences.refused_stream_flood += 1;
            if self.goaway_sent.is_none() {
                let last = self.last_accepted_id;
                self.send_goaway(
                    last,
                    ErrorCode::ENHANCE_YOUR_CALM,
                    b"too many streams over the advertised limit",
                );
            }
        }
    }

    fn on_priority(&mut self, p: PriorityFrame) -> Result<(), Error> {
        // §5.3.2: priority signals are ignored, but a self-dependency is still an error.
        if p.priority.dependency == p.stream_id {
            return Err(stream(
                p.stream_id,
                ErrorCode::PROTOCOL_ERROR,
                "a stream cannot depend on itself (RFC 9113 5.3.1)",
            ));
        }
        Ok(())
    }

    fn on_rst_stream(&mut self, r: RstStream, now: Instant) -> Result<(), Error> {
        let id = r.stream_id;
        if self.is_idle(id) {
            return Err(conn(ErrorCode::PROTOCOL_ERROR, "RST_STREAM on an idle stream (RFC 9113 6.4)"));
        }
        let Some(s) = self.streams.get(&id) else { return Ok(()) };
        let announced = s.announced;
        // Rapid Reset costs a server the work of every request the client cancels; a server's
        // resets cost a client nothing it did not ask for.
        if self.role == Role::Server && !self.peer_resets.take(now) {
            self.stats.defences.rapid_reset += 1;
            return Err(conn(ErrorCode::ENHANCE_YOUR_CALM, "too many stream resets (CVE-2023-44487)"));
        }
        self.stats.streams_reset_by_peer += 1;
        self.close_stream(id, Closed::ResetByPeer);
        if announced {
            self.events.push(Event::StreamReset { stream_id: id, code: r.error_code });
        }
        Ok(())
    }

    fn on_settings(&mut self, s: Settings<'_>) -> Result<(), Error> {
        if s.ack {
            if self.settings_unacked.pop_front().is_some() && !self.settings_acked {
                self.settings_acked = true;
                self.decoder.header_table_size_acked();
                self.scheduler.initial_window_acked();
            }
            return Ok(());
        }
        if s.len() > self.cfg.max_settings_entries as usize {
            self.stats.defences.settings_flood += 1;
            return Err(conn(
                ErrorCode::ENHANCE_YOUR_CALM,
                "too many parameters in one SETTINGS frame (CVE-2019-9515)",
            ));
        }
        if !self.peer.seen {
            // No limit until the peer says otherwise (§6.5.2); until its first SETTINGS, a
            // client assumes the usual 100.
            self.peer.seen = true;
            self.peer.max_concurrent_streams = u32::MAX;
        }
        // §6.5.3: values are processed in the order they appear.
        for (id, value) in s.params() {
            match id {
                setting::HEADER_TABLE_SIZE => self.encoder.set_peer_table_size(value),
                setting::INITIAL_WINDOW_SIZE => self.set_peer_initial_window(value)?,
                setting::MAX_FRAME_SIZE => self.peer.max_frame_size = value,
                setting::MAX_CONCURRENT_STREAMS => self.peer.max_concurrent_streams = value,
                setting::ENABLE_PUSH if value != 0 && self.role == Role::Client => {
                    return Err(conn(
                        ErrorCode::PROTOCOL_ERROR,
                        "a server set SETTINGS_ENABLE_PUSH to 1 (RFC 9113 6.5.2)",
                    ))
                }
                _ => {}
            }
        }
        self.owe_ack()?;
        self.stats.count_sent(kind::SETTINGS);
        Settings::encode_ack(&mut self.output);
        Ok(())
    }

    /// Counts one more acknowledgement owed before it is written: the one beyond the limit is
    /// answered with the GOAWAY alone, so at most `max_queued_acks` are queued per flush.
    fn owe_ack(&mut self) -> Result<(), Error> {
        self.queued_acks += 1;
        if self.queued_acks > self.cfg.max_queued_acks {
            self.stats.defences.ack_flood += 1;
            return Err(conn(
                ErrorCode::ENHANCE_YOUR_CALM,
                "too many PING or SETTINGS frames to acknowledge (CVE-2019-9512)",
            ));
        }
        Ok(())
    }

    fn on_ping(&mut self, p: Ping, now: Instant) -> Result<(), Error> {
        if p.ack {
            if self.probe_payload == Some(p.data) {
                self.probe_payload = None;
                let growth = self.scheduler.ping_acked(now);
                if let Some(window) = growth.stream_window {
                    self.write_settings(&[(setting::INITIAL_WINDOW_SIZE, window)], now);
                }
            }
            return Ok(());
        }
        self.owe_ack()?;
        self.write_frame(Frame::Ping(Ping { ack: true, data: p.data }));
        Ok(())
    }

    fn on_goaway(&mut self, g: GoAway<'_>, input: Option<&[u8]>) -> Result<(), Error> {
        self.goaway_received = Some(g.last_stream_id);
        let debug = match input {
            Some(input) => Payload::Input {
                start: g.debug_data.as_ptr() as usize - input.as_ptr() as usize,
                len: g.debug_data.len(),
            },
            None => Payload::Owned(g.debug_data.to_vec()),
        };
        self.events.push(Event::GoAway { last_stream_id: g.last_stream_id, code: g.error_code, debug });
        if self.role == Role::Client {
            self.unprocessed_streams(g.last_stream_id);
        }
        Ok(())
    }

    fn on_window_update(&mut self, w: WindowUpdate) -> Result<(), Error> {
        let id = w.stream_id;
        if id == 0 {
            self.conn_stalled = false;
            return self.send_window.increase(w.increment).map_err(|_| {
                conn(ErrorCode::FLOW_CONTROL_ERROR, "connection window above 2^31-1 (RFC 9113 6.9.1)")
            });
        }
        if self.is_idle(id) {
            return Err(conn(ErrorCode::PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream (RFC 9113 5.1)"));
        }
        let Some(s) = self.streams.get_mut(&id) else {
            return match self.closed.get(id) {
                Some(Closed::ResetByPeer) => Err(stream(
                    id,
                    ErrorCode::STREAM_CLOSED,
                    "WINDOW_UPDATE on a reset stream (RFC 9113 5.1)",
                )),
                _ => Ok(()),
            };
        };
        s.send.window.increase(w.increment).map_err(|_| {
            stream(id, ErrorCode::FLOW_CONTROL_ERROR, "stream window above 2^31-1 (RFC 9113 6.9.1)")
        })?;
        self.make_ready(id);
        Ok(())
    }
}
