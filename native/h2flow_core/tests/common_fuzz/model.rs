//! What the soaks (tests/fuzz_soak.rs, tests/fuzz_soak_client.rs) check the engine against: a
//! shadow of the peer, built from the frames the engine counted as received, and a checker of
//! everything the engine writes, in either role.

use std::collections::{BTreeMap, HashMap, HashSet};

use h2flow_core::frame::{self, kind, setting, Frame, Head, HEADER_LEN, MAX_MAX_FRAME_SIZE};
use h2flow_core::hpack::{Decoder, HeaderList};

use super::PREFACE;

// ---------------------------------------------------------------------------------------------
// The client, as the engine saw it: the frames it counted as received, decoded again.

#[derive(Default)]
pub struct Shadow {
    /// Where the next frame starts in everything fed to the engine; `None` until the preface.
    pub pos: Option<usize>,
    pub frames: u64,
    pub iws: i64,
    /// The largest SETTINGS_MAX_FRAME_SIZE in force at some point since the last flush: the
    /// most any frame of the next flush may carry.
    pub max_frame: u32,
    pub max_frame_now: u32,
    pub conn_credit: i64,
    pub stream_credit: HashMap<u32, i64>,
    pub data_in: i64,
    pub settings_in: u64,
    pub pings_in: u64,
    /// Every stream id a client frame named, those it opened with HEADERS, and those it
    /// ended (END_STREAM at the end of a header block or on DATA, or RST_STREAM).
    pub named: HashSet<u32>,
    pub opened: HashSet<u32>,
    pub ended: HashSet<u32>,
    /// The stream of a header block whose END_HEADERS has not arrived, and its END_STREAM.
    pub block: Option<(u32, bool)>,
    /// The peer's SETTINGS_MAX_CONCURRENT_STREAMS (a client assumes 100 until its first
    /// SETTINGS, which without the parameter lifts the limit).
    pub max_concurrent: u32,
    pub settings_seen: bool,
}

impl Shadow {
    pub fn new() -> Shadow {
        Shadow {
            iws: 65_535,
            max_frame: 16_384,
            max_frame_now: 16_384,
            max_concurrent: 100,
            ..Default::default()
        }
    }

    /// The shadow of a server: its frames start at once (no preface).
    pub fn of_server() -> Shadow {
        Shadow { pos: Some(0), ..Shadow::new() }
    }

    /// Decodes the frames the engine has counted since the last call.
    pub fn advance(&mut self, input: &[u8], engine_frames: u64, max_frame_size: u32) {
        if self.pos.is_none() {
            if input.len() < PREFACE.len() || &input[..PREFACE.len()] != PREFACE {
                assert_eq!(engine_frames, 0, "frames counted before a complete preface");
                return;
            }
            self.pos = Some(PREFACE.len());
        }
        let mut pos = self.pos.unwrap_or_default();
        while self.frames < engine_frames {
            let buf = &input[pos.min(input.len())..];
            let head = Head::parse(buf).expect("the engine counted a frame whose header it has not received");
            match frame::decode(buf, max_frame_size) {
                Ok(Some((f, len))) => {
                    self.apply(&f);
                    pos += len;
                }
                Ok(None) => panic!("the engine counted a frame it has not received in full: {head:?}"),
                Err(_) => {
                    self.named.insert(head.stream_id);
                    pos += HEADER_LEN + head.length as usize;
                }
            }
            self.frames += 1;
        }
        self.pos = Some(pos);
    }

    fn apply(&mut self, f: &Frame<'_>) {
        let id = f.stream_id();
        self.named.insert(id);
        match f {
            Frame::Settings(s) if !s.ack => {
                self.settings_in += 1;
                if !self.settings_seen {
                    self.settings_seen = true;
                    self.max_concurrent = u32::MAX;
                }
                for (k, v) in s.params() {
                    match k {
                        setting::MAX_CONCURRENT_STREAMS => self.max_concurrent = v,
                        setting::INITIAL_WINDOW_SIZE => self.iws = v as i64,
                        setting::MAX_FRAME_SIZE => {
                            self.max_frame_now = v;
                            self.max_frame = self.max_frame.max(v);
                        }
                        _ => {}
                    }
                }
            }
            Frame::Ping(p) if !p.ack => self.pings_in += 1,
            Frame::WindowUpdate(w) if id == 0 => self.conn_credit += w.increment as i64,
            Frame::WindowUpdate(w) => *self.stream_credit.entry(id).or_default() += w.increment as i64,
            Frame::Data(d) => {
                self.data_in += d.flow_len() as i64;
                if d.end_stream {
                    self.ended.insert(id);
                }
            }
            Frame::Headers(h) => {
                self.opened.insert(id);
                if h.end_headers {
                    if h.end_stream {
                        self.ended.insert(id);
                    }
                } else {
                    self.block = Some((id, h.end_stream));
                }
            }
            Frame::Continuation(c) if c.end_headers => {
                if let Some((id, true)) = self.block.take() {
                    self.ended.insert(id);
                }
            }
            Frame::RstStream(_) => {
                self.ended.insert(id);
            }
            _ => {}
        }
    }

    /// A flush went out: from now on only the current SETTINGS_MAX_FRAME_SIZE holds.
    pub fn flushed(&mut self) {
        self.max_frame = self.max_frame_now;
    }
}

// ---------------------------------------------------------------------------------------------
// What the engine wrote, checked frame by frame: a server's responses, or a client's requests.

#[derive(Default)]
pub struct ServerStream {
    pub final_sent: bool,
    pub ended: bool,
    pub reset: bool,
}

pub struct Output {
    pub decoder: Decoder,
    pub started: bool,
    /// A header block being assembled: stream, END_STREAM, bytes.
    pub block: Option<(u32, bool, Vec<u8>)>,
    pub streams: HashMap<u32, ServerStream>,
    pub data_sent: HashMap<u32, i64>,
    pub data_total: i64,
    pub conn_credit: i64,
    pub frames: [u64; kind::COUNT + 1],
    pub bytes: u64,
    pub flushes: u64,
    pub settings_acks: u64,
    pub ping_acks: u64,
    /// RST_STREAM frames we sent, by code (stream errors on streams the application never saw
    /// show up only here).
    pub resets: BTreeMap<u32, u64>,
    pub goaway_last: Option<u32>,
    /// The engine was closed at a flush: nothing more may be written.
    pub finished: bool,
    /// A client's output: requests on the streams the application opened (`requests`), in
    /// increasing order, after the connection preface.
    pub client: bool,
    pub requests: HashSet<u32>,
    pub last_request: u32,
}

impl Output {
    pub fn new() -> Output {
        Output {
            decoder: Decoder::new(4096, u32::MAX),
            started: false,
            block: None,
            streams: HashMap::new(),
            data_sent: HashMap::new(),
            data_total: 0,
            conn_credit: 0,
            frames: [0; kind::COUNT + 1],
            bytes: 0,
            flushes: 0,
            settings_acks: 0,
            ping_acks: 0,
            resets: BTreeMap::new(),
            goaway_last: None,
            finished: false,
            client: false,
            requests: HashSet::new(),
            last_request: 0,
        }
    }

    /// The checker of a client's output.
    pub fn of_client() -> Output {
        Output { client: true, ..Output::new() }
    }

    pub fn check(&mut self, mut buf: &[u8], shadow: &Shadow) {
        if buf.is_empty() {
            return;
        }
        assert!(!self.finished, "output after the connection error's flush");
        self.bytes += buf.len() as u64;
        self.flushes += 1;
        if self.client && !self.started {
            assert!(buf.starts_with(PREFACE), "a client's output starts with the connection preface");
            buf = &buf[PREFACE.len()..];
        }
        while !buf.is_empty() {
            let (f, len) = match frame::decode(buf, MAX_MAX_FRAME_SIZE) {
                Ok(Some(x)) => x,
                Ok(None) => panic!("flush ended inside a frame"),
                Err(e) => panic!("the server wrote an invalid frame: {e}"),
            };
            assert!(
                len - HEADER_LEN <= shadow.max_frame as usize,
                "a {}-octet frame over the peer's SETTINGS_MAX_FRAME_SIZE {}",
                len - HEADER_LEN,
                shadow.max_frame
            );
            self.frame(&f, shadow);
            buf = &buf[len..];
        }
        assert!(self.block.is_none(), "flush ended inside a header block");
    }

    fn frame(&mut self, f: &Frame<'_>, shadow: &Shadow) {
        let id = f.stream_id();
        self.frames[(f.kind() as usize).min(kind::COUNT)] += 1;
        if !self.started {
            assert!(matches!(f, Frame::Settings(s) if !s.ack), "the preface is not SETTINGS: {f:?}");
            if let (true, Frame::Settings(s)) = (self.client, f) {
                assert_eq!(s.params().next(), Some((setting::ENABLE_PUSH, 0)), "push not disabled");
            }
            self.started = true;
        }
        if let Some((block_id, _, _)) = &self.block {
            assert!(
                matches!(f, Frame::Continuation(_)) && id == *block_id,
                "a header block interrupted by {f:?} (RFC 9113 6.10)"
            );
        }
        if id != 0 {
            assert!(id % 2 == 1, "a frame on an even stream: {f:?}");
            if self.client {
                assert!(self.requests.contains(&id), "a frame on stream {id} the application never opened");
            } else {
                assert!(shadow.named.contains(&id), "a frame on stream {id} the client never named");
            }
            // A late frame on a stream we reset (or forgot) may be answered with RST_STREAM
            // again (RFC 9113 5.1: a stream error STREAM_CLOSED); nothing else.
            let s = self.streams.entry(id).or_default();
            assert!(
                !s.reset || matches!(f, Frame::RstStream(_)),
                "a frame after our RST_STREAM on stream {id}: {f:?}"
            );
        }
        match f {
            Frame::Settings(s) if s.ack => self.settings_acks += 1,
            Frame::Settings(_) => {}
            Frame::Ping(p) if p.ack => self.ping_acks += 1,
            Frame::Ping(p) => assert_eq!(&p.data[..6], b"h2flow"),
            Frame::WindowUpdate(w) if id == 0 => self.conn_credit += w.increment as i64,
            Frame::WindowUpdate(_) => {
                let opened =
                    if self.client { self.requests.contains(&id) } else { shadow.opened.contains(&id) };
                assert!(opened, "WINDOW_UPDATE on a stream never opened: {id}");
                assert!(!shadow.ended.contains(&id), "WINDOW_UPDATE on stream {id} the peer ended");
            }
            Frame::RstStream(r) => {
                self.streams.entry(id).or_default().reset = true;
                *self.resets.entry(r.error_code.0).or_default() += 1;
            }
            Frame::GoAway(g) => {
                assert!(!self.client || g.last_stream_id == 0, "a client's GOAWAY names a stream: {g:?}");
                assert!(
                    self.goaway_last.is_none_or(|last| g.last_stream_id <= last),
                    "GOAWAY last stream id went up (RFC 9113 6.8)"
                );
                self.goaway_last = Some(g.last_stream_id);
            }
            Frame::Data(d) => {
                let s = self.streams.entry(id).or_default();
                assert!(s.final_sent, "DATA before the response HEADERS on stream {id}");
                assert!(!s.ended, "DATA after END_STREAM on stream {id}");
                s.ended = d.end_stream;
                assert!(d.pad_len.is_none());
                *self.data_sent.entry(id).or_default() += d.data.len() as i64;
                self.data_total += d.data.len() as i64;
            }
            Frame::Headers(h) => {
                if self.client {
                    if !self.streams.get(&id).is_some_and(|s| s.final_sent) {
                        assert!(id > self.last_request, "stream {id} opened after {}", self.last_request);
                        self.last_request = id;
                    }
                } else {
                    assert!(shadow.opened.contains(&id), "HEADERS on stream {id} the client never opened");
                }
                assert!(!self.streams.entry(id).or_default().ended, "HEADERS after END_STREAM on {id}");
                self.block = Some((id, h.end_stream, h.fragment.to_vec()));
                if h.end_headers {
                    self.end_block();
                }
            }
            Frame::Continuation(c) => {
                let b = self.block.as_mut().expect("CONTINUATION without HEADERS");
                b.2.extend_from_slice(c.fragment);
                if c.end_headers {
                    self.end_block();
                }
            }
            other => panic!("the engine must not write {other:?}"),
        }
    }

    fn end_block(&mut self) {
        let Some((id, end_stream, block)) = self.block.take() else { return };
        let mut list = HeaderList::new();
        self.decoder.decode(&block, &mut list).expect("the server wrote an undecodable header block");
        let s = self.streams.entry(id).or_default();
        if s.final_sent {
            assert!(end_stream, "trailers without END_STREAM on {id}");
            assert!(list.iter().all(|(n, _)| !n.starts_with(b":")), "pseudo-header in trailers");
        } else if self.client {
            assert!(h2flow_core::fields::validate_request(&list).is_ok(), "an invalid request: {list:?}");
            s.final_sent = true;
        } else {
            let mut it = list.iter();
            let status = match it.next() {
                Some((b":status", v)) => v.to_vec(),
                other => panic!("response without :status first: {other:?}"),
            };
            assert!(it.all(|(n, _)| !n.starts_with(b":")), "a second pseudo-header in a response");
            if status[0] == b'1' {
                assert!(!end_stream, "an informational response with END_STREAM");
            } else {
                s.final_sent = true;
            }
        }
        s.ended |= end_stream;
    }
}
