//! The generator of client byte streams: valid ones, whose every request, body and control
//! frame a correct server must accept, or ones with malformed requests to be mutated further.

use std::collections::{BTreeMap, BTreeSet};

use h2flow_core::frame::{kind, setting};
use h2flow_core::hpack::Encoder;
use h2flow_core::Config;

use super::*;

/// A request body the client is still sending.
struct Upload {
    content_length: Option<u64>,
    /// Body bytes it will send in all.
    target: u64,
    sent: u64,
    /// The client's send window for the stream (what the server advertised; the generator
    /// does not see the server's WINDOW_UPDATE frames, so this is a lower bound).
    window: i64,
}

/// A valid client byte stream, as frames; `frames[0]` is the preface.
pub struct Scenario {
    pub frames: Vec<Vec<u8>>,
}

impl Scenario {
    pub fn bytes(&self) -> Vec<u8> {
        self.frames.concat()
    }
}

struct Gen<'a> {
    rng: &'a mut Rng,
    cfg: &'a Config,
    /// Now and then a request breaks the field rules of RFC 9113 8.2, 8.3 (for streams that
    /// will be mutated anyway).
    malformed: bool,
    enc: Encoder,
    frames: Vec<Vec<u8>>,
    next_id: u32,
    uploads: BTreeMap<u32, Upload>,
    /// Streams the client opened and did not reset (WINDOW_UPDATE on them is fine).
    opened: Vec<u32>,
    reset_by_client: BTreeSet<u32>,
    conn_window: i64,
    /// Our SETTINGS_INITIAL_WINDOW_SIZE and the credit we gave each stream: the server's send
    /// windows must stay within 2^31-1 (RFC 9113 6.9.1).
    iws: i64,
    stream_credit: BTreeMap<u32, i64>,
    conn_credit: i64,
    /// The window new streams get from the server.
    new_stream_window: i64,
    acked: bool,
    goaway_sent: bool,
    probes: u16,
    resets: u32,
    pings: u32,
    settings: u32,
}

/// Generates a client byte stream for a server configured with `cfg`: valid, or with some
/// malformed requests (well-formed HPACK, so the dynamic table stays in step) if `malformed`.
pub fn generate(rng: &mut Rng, cfg: &Config, malformed: bool) -> Scenario {
    let initial_conn = cfg.window.initial_connection_window.max(65_535) as i64;
    let mut g = Gen {
        rng,
        cfg,
        malformed,
        enc: Encoder::new(),
        frames: vec![PREFACE.to_vec()],
        next_id: 1,
        uploads: BTreeMap::new(),
        opened: Vec::new(),
        reset_by_client: BTreeSet::new(),
        conn_window: initial_conn,
        iws: 65_535,
        stream_credit: BTreeMap::new(),
        conn_credit: 0,
        new_stream_window: 65_535,
        acked: false,
        goaway_sent: false,
        probes: 0,
        resets: 0,
        pings: 0,
        settings: 0,
    };
    g.first_settings();
    let ack_after = g.rng.pick(&[0, 0, 1, 3, 10]);
    let steps = g.rng.range(1, 60);
    for step in 0..steps {
        if step == ack_after {
            g.ack();
        }
        g.step();
    }
    if !g.acked && g.rng.chance(70) {
        g.ack();
    }
    // Most streams finish their bodies.
    let ids: Vec<u32> = g.uploads.keys().copied().collect();
    for id in ids {
        if g.rng.chance(80) {
            g.finish_upload(id);
        }
    }
    if g.rng.chance(15) {
        g.goaway();
    }
    Scenario { frames: g.frames }
}

impl Gen<'_> {
    fn first_settings(&mut self) {
        let mut params = Vec::new();
        for _ in 0..self.rng.below(6) {
            let p = match self.rng.below(8) {
                0 => (setting::HEADER_TABLE_SIZE, self.rng.pick(&[0, 1, 64, 256, 4096, 8192, u32::MAX])),
                1 => (setting::ENABLE_PUSH, self.rng.pick(&[0, 1])),
                2 => (setting::MAX_CONCURRENT_STREAMS, self.rng.pick(&[0, 1, 100, u32::MAX])),
                3 | 4 => (setting::INITIAL_WINDOW_SIZE, self.iws_value()),
                5 => (setting::MAX_FRAME_SIZE, self.rng.pick(&[16_384, 16_385, 65_536, (1 << 24) - 1])),
                6 => (setting::MAX_HEADER_LIST_SIZE, self.rng.pick(&[0, 100, 65_536, u32::MAX])),
                _ => (self.rng.pick(&[0, 7, 8, 9, 0x10, 0xffff]), self.rng.pick(&[0, 1])),
            };
            if p.0 == setting::INITIAL_WINDOW_SIZE {
                self.iws = p.1 as i64;
            }
            params.push(p);
        }
        self.frames.push(settings_frame(&params));
    }

    fn iws_value(&mut self) -> u32 {
        self.rng.pick(&[0, 1, 2, 100, 16_383, 65_535, 1 << 20, MAX_WINDOW as u32])
    }

    /// Acknowledges the server's SETTINGS: its stream window applies from now on (RFC 9113
    /// 6.9.2, to open streams too), and its table size (RFC 7541 4.2).
    fn ack(&mut self) {
        if self.acked {
            return;
        }
        self.acked = true;
        self.frames.push(frame(kind::SETTINGS, ACK, 0, &[]));
        let advertised = self.cfg.window.initial_stream_window as i64;
        let delta = advertised - 65_535;
        for u in self.uploads.values_mut() {
            u.window += delta;
        }
        self.new_stream_window = advertised;
        self.enc.set_peer_table_size(self.cfg.header_table_size);
    }

    fn step(&mut self) {
        match self.rng.below(100) {
            0..=19 => self.open_get(),
            20..=34 => self.open_upload(),
            35..=59 => {
                if let Some(id) = self.some_upload() {
                    self.send_body(id);
                }
            }
            60..=64 => {
                if let Some(id) = self.some_upload() {
                    self.finish_upload(id);
                }
            }
            65..=68 => self.reset_one(),
            69..=72 => self.ping(),
            73..=76 => self.window_update(),
            77..=79 => self.priority(),
            80..=83 => self.settings_change(),
            84..=86 => self.unknown_frame(),
            87..=88 => {
                // An extra acknowledgement, as for the SETTINGS adaptive growth sends.
                if self.acked {
                    self.frames.push(frame(kind::SETTINGS, ACK, 0, &[]));
                }
            }
            89..=91 => self.table_size_change(),
            _ => self.probe_ack(),
        }
    }

    fn some_upload(&mut self) -> Option<u32> {
        let ids: Vec<u32> = self.uploads.keys().copied().collect();
        (!ids.is_empty()).then(|| self.rng.pick(&ids))
    }

    fn new_id(&mut self) -> Option<u32> {
        if self.goaway_sent || self.next_id > 999 {
            return None;
        }
        // Now and then skip ids: they become idle-forever streams (RFC 9113 5.1.1).
        if self.rng.chance(5) {
            self.next_id += 2 * self.rng.range(1, 3) as u32;
        }
        let id = self.next_id;
        self.next_id += 2;
        self.opened.push(id);
        Some(id)
    }

    fn request_fields(&mut self, method: &'static str) -> Vec<(Vec<u8>, Vec<u8>)> {
        let r = &mut *self.rng;
        let s = |x: &str| x.as_bytes().to_vec();
        let mut pseudo: Vec<(Vec<u8>, Vec<u8>)> = if method == "CONNECT" {
            vec![(s(":method"), s(method)), (s(":authority"), s("example.com:443"))]
        } else {
            let path = match method {
                "OPTIONS" if r.chance(50) => s("*"),
                _ => match r.below(4) {
                    0 => s("/"),
                    1 => s("/index.html"),
                    2 => format!("/item/{}", r.below(20)).into_bytes(),
                    _ => format!("/search?q={}&page={}", r.next_u64(), r.below(3)).into_bytes(),
                },
            };
            let mut p = vec![
                (s(":method"), s(method)),
                (s(":scheme"), s(r.pick(&["https", "http"]))),
                (s(":path"), path),
            ];
            if r.chance(90) {
                p.push((s(":authority"), s(r.pick(&["example.com", "localhost:4000", "a.test"]))));
            }
            p
        };
        // Any order among pseudo-header fields is fine (RFC 9113 8.3).
        if r.chance(20) {
            pseudo.reverse();
        }
        let mut fields = pseudo;
        if r.chance(70) {
            fields.push((s("user-agent"), s("h2flow-fuzz/1.0")));
        }
        if r.chance(50) {
            fields.push((s("accept"), s(r.pick(&["*/*", "text/html", "application/json"]))));
        }
        if r.chance(30) {
            fields.push((s("cookie"), s(r.pick(&["a=1", "session=0123456789abcdef0123456789"]))));
        }
        if r.chance(30) {
            fields.push((s("x-request-id"), format!("{:016x}", r.next_u64()).into_bytes()));
        }
        if r.chance(10) {
            fields.push((s("te"), s("trailers")));
        }
        if r.chance(5) {
            let n = r.pick(&[100, 3000, 20_000]);
            fields.push((s("x-big"), vec![b'a' + (r.below(26) as u8); n]));
        }
        if self.malformed && r.chance(15) {
            break_fields(r, &mut fields);
        }
        fields
    }

    /// A header block as HEADERS + CONTINUATION frames, with padding and priority now and then.
    fn header_block(&mut self, id: u32, fields: &[(Vec<u8>, Vec<u8>)], end_stream: bool) {
        let mut block = Vec::new();
        self.enc.encode(fields.iter().map(|(n, v)| (&n[..], &v[..])), &mut block);
        if self.rng.chance(40) {
            block = huffmanize(&block, self.rng);
        }
        let max_fragment = 16_384 - 5 - 256;
        let mut cuts = Vec::new();
        let pieces = if self.rng.chance(25) { self.rng.range(2, 5) } else { 1 };
        for _ in 1..pieces {
            cuts.push(self.rng.below(block.len() as u64 + 1) as usize);
        }
        cuts.push(0);
        cuts.push(block.len());
        // A block too long for one frame is cut into frame-sized pieces too.
        let mut at = 0;
        while at + max_fragment < block.len() {
            at += max_fragment;
            cuts.push(at);
        }
        cuts.sort_unstable();
        let fragments: Vec<&[u8]> = cuts.windows(2).map(|w| &block[w[0]..w[1]]).collect();
        let mut flags = if end_stream { END_STREAM } else { 0 };
        if fragments.len() == 1 {
            flags |= END_HEADERS;
        }
        let mut payload = Vec::new();
        let pad = self.rng.chance(15).then(|| self.rng.pick(&[0u8, 1, 7, 255]));
        if let Some(p) = pad {
            flags |= PADDED;
            payload.push(p);
        }
        if self.rng.chance(15) {
            flags |= PRIORITY;
            let mut dep = self.rng.pick(&[0, 1, 3, id + 2, id.saturating_sub(2)]);
            if dep == id {
                dep = 0;
            }
            let exclusive = if self.rng.chance(30) { 0x8000_0000 } else { 0 };
            payload.extend_from_slice(&(dep | exclusive).to_be_bytes());
            payload.push(self.rng.below(256) as u8);
        }
        payload.extend_from_slice(fragments[0]);
        payload.resize(payload.len() + pad.unwrap_or(0) as usize, 0);
        self.frames.push(frame(kind::HEADERS, flags, id, &payload));
        for (i, f) in fragments.iter().enumerate().skip(1) {
            let flags = if i + 1 == fragments.len() { END_HEADERS } else { 0 };
            self.frames.push(frame(kind::CONTINUATION, flags, id, f));
        }
    }

    fn open_get(&mut self) {
        let Some(id) = self.new_id() else { return };
        let method = self.rng.pick(&["GET", "GET", "GET", "HEAD", "OPTIONS", "DELETE"]);
        let fields = self.request_fields(method);
        self.header_block(id, &fields, true);
    }

    fn open_upload(&mut self) {
        let Some(id) = self.new_id() else { return };
        let method = self.rng.pick(&["POST", "POST", "PUT", "CONNECT"]);
        let mut fields = self.request_fields(method);
        let target = match self.rng.below(10) {
            0 => 0,
            1..=6 => self.rng.range(1, 2000),
            7 | 8 => self.rng.range(2000, 70_000),
            _ => self.rng.range(70_000, 300_000),
        };
        let content_length = (method != "CONNECT" && self.rng.chance(60)).then_some(target);
        if let Some(n) = content_length {
            fields.push((b"content-length".to_vec(), n.to_string().into_bytes()));
        }
        self.header_block(id, &fields, false);
        self.stream_credit.insert(id, 0);
        let window = self.new_stream_window;
        self.uploads.insert(id, Upload { content_length, target, sent: 0, window });
    }

    /// One DATA frame within the windows (one of exactly the window left, now and then).
    fn send_body(&mut self, id: u32) {
        let u = &self.uploads[&id];
        let left = u.target - u.sent;
        let room = u.window.min(self.conn_window).max(0) as u64;
        let padded = self.rng.chance(15) && room > 0;
        let pad = if padded { self.rng.pick(&[0u64, 1, 10, 255]).min(room - 1) } else { 0 };
        let max = (room - if padded { pad + 1 } else { 0 }).min(16_384 - 256);
        let n = match self.rng.below(4) {
            0 => max.min(left),
            _ => self.rng.range(1, 4000).min(max).min(left),
        };
        if n == 0 && left > 0 {
            return;
        }
        let end = n == left && self.rng.chance(70);
        // Not even an empty DATA frame while the window is negative (RFC 9113 6.9.2).
        if n == 0 && (!end || u.window < 0) {
            return;
        }
        let mut payload = Vec::with_capacity(n as usize + pad as usize + 1);
        let mut flags = if end { END_STREAM } else { 0 };
        if padded {
            flags |= PADDED;
            payload.push(pad as u8);
        }
        payload.extend((0..n).map(|i| body_byte(id, u.sent + i)));
        payload.resize(payload.len() + pad as usize, 0);
        let flow = payload.len() as i64;
        self.frames.push(frame(kind::DATA, flags, id, &payload));
        self.conn_window -= flow;
        let u = self.uploads.get_mut(&id).expect("upload");
        u.window -= flow;
        u.sent += n;
        if end {
            self.uploads.remove(&id);
        }
    }

    /// Sends what is left of a body if the windows allow, then ends the stream: with an empty
    /// DATA frame, or with trailers.
    fn finish_upload(&mut self, id: u32) {
        for _ in 0..64 {
            let Some(u) = self.uploads.get(&id) else { return };
            if u.sent == u.target || u.window.min(self.conn_window) <= 0 {
                break;
            }
            self.send_body(id);
        }
        let Some(u) = self.uploads.get(&id) else { return };
        if u.content_length.is_some_and(|cl| cl != u.sent) {
            // Not enough window for the declared body: give up on it.
            self.reset(id);
            return;
        }
        let negative = u.window < 0;
        self.uploads.remove(&id);
        // Trailers are not flow-controlled: the only way to end a stream whose window went
        // negative (RFC 9113 6.9.2).
        if negative || self.rng.chance(40) {
            let fields = vec![
                (b"x-checksum".to_vec(), format!("{:08x}", self.rng.next_u64() as u32).into_bytes()),
                (b"x-trailer".to_vec(), b"done".to_vec()),
            ];
            self.header_block(id, &fields, true);
        } else {
            self.frames.push(frame(kind::DATA, END_STREAM, id, &[]));
        }
    }

    fn reset(&mut self, id: u32) {
        let code: u32 = self.rng.pick(&[0x0, 0x8, 0x2, 0x1234]);
        self.frames.push(frame(kind::RST_STREAM, 0, id, &code.to_be_bytes()));
        self.uploads.remove(&id);
        self.reset_by_client.insert(id);
        self.resets += 1;
    }

    fn reset_one(&mut self) {
        let live: Vec<u32> =
            self.opened.iter().copied().filter(|id| !self.reset_by_client.contains(id)).collect();
        if live.is_empty() || self.resets > 50 {
            return;
        }
        let id = self.rng.pick(&live);
        self.reset(id);
    }

    fn ping(&mut self) {
        if self.pings > 20 {
            return;
        }
        self.pings += 1;
        let data = self.rng.bytes(8);
        self.frames.push(frame(kind::PING, 0, 0, &data));
    }

    /// Acknowledges the round-trip probe the server will have sent by now, if any: its payloads
    /// are predictable, so a static stream can answer them.
    fn probe_ack(&mut self) {
        self.probes += 1;
        let mut data = *b"h2flow\0\0";
        data[6..].copy_from_slice(&self.probes.to_be_bytes());
        self.frames.push(frame(kind::PING, ACK, 0, &data));
    }

    fn window_update(&mut self) {
        let inc = self.rng.pick(&[1i64, 100, 16_384, 1 << 20, 1 << 30]);
        let live: Vec<u32> =
            self.opened.iter().copied().filter(|id| !self.reset_by_client.contains(id)).collect();
        if live.is_empty() || self.rng.chance(40) {
            if 65_535 + self.conn_credit + inc <= MAX_WINDOW {
                self.conn_credit += inc;
                self.frames.push(frame(kind::WINDOW_UPDATE, 0, 0, &(inc as u32).to_be_bytes()));
            }
            return;
        }
        let id = self.rng.pick(&live);
        let credit = self.stream_credit.entry(id).or_insert(0);
        if self.iws.max(65_535) + *credit + inc <= MAX_WINDOW {
            *credit += inc;
            self.frames.push(frame(kind::WINDOW_UPDATE, 0, id, &(inc as u32).to_be_bytes()));
        }
    }

    fn priority(&mut self) {
        // Any stream, idle ones included (RFC 9113 6.3), never depending on itself.
        let id = match self.rng.below(3) {
            0 if !self.opened.is_empty() => self.rng.pick(&self.opened),
            _ => self.next_id + 2 * self.rng.below(4) as u32,
        };
        let mut dep = self.rng.pick(&[0, 1, id + 2, id.saturating_sub(2)]);
        if dep == id {
            dep = 0;
        }
        let mut payload = dep.to_be_bytes().to_vec();
        payload.push(self.rng.below(256) as u8);
        self.frames.push(frame(kind::PRIORITY, 0, id, &payload));
    }

    /// A SETTINGS change mid-connection, one setting possibly several times (RFC 9113 6.5.3:
    /// applied in order).
    fn settings_change(&mut self) {
        if self.settings > 10 {
            return;
        }
        self.settings += 1;
        let mut params = Vec::new();
        let max_credit = self.stream_credit.values().copied().max().unwrap_or(0);
        for _ in 0..self.rng.range(1, 4) {
            match self.rng.below(4) {
                0 | 1 => {
                    let v = self.iws_value();
                    // Every stream's window must stay within 2^31-1 (RFC 9113 6.9.2).
                    if v as i64 + max_credit <= MAX_WINDOW {
                        self.iws = v as i64;
                        params.push((setting::INITIAL_WINDOW_SIZE, v));
                    }
                }
                2 => params.push((setting::MAX_FRAME_SIZE, self.rng.pick(&[16_384, 20_000, 1 << 20]))),
                _ => params.push((setting::HEADER_TABLE_SIZE, self.rng.pick(&[0, 100, 4096, 10_000]))),
            }
        }
        self.frames.push(settings_frame(&params));
    }

    /// Our encoder changes its dynamic table size, within what the server allows.
    fn table_size_change(&mut self) {
        let allowed = self.cfg.header_table_size.min(4096);
        let size = self.rng.pick(&[0, allowed / 2, allowed]);
        self.enc.set_peer_table_size(size);
    }

    fn unknown_frame(&mut self) {
        let t = self.rng.range(0x0a, 0xff) as u8;
        let id = self.rng.pick(&[0, 1, 2, self.next_id, 0x7fff_ffff]);
        let n = self.rng.below(20) as usize;
        let payload = self.rng.bytes(n);
        let flags = self.rng.below(256) as u8;
        self.frames.push(frame(t, flags, id, &payload));
    }

    fn goaway(&mut self) {
        let mut payload = 0u32.to_be_bytes().to_vec();
        payload.extend_from_slice(&self.rng.pick(&[0u32, 0x2, 0xb]).to_be_bytes());
        payload.extend_from_slice(b"bye");
        self.frames.push(frame(kind::GOAWAY, 0, 0, &payload));
        self.goaway_sent = true;
    }
}

/// Breaks one rule of RFC 9113 8.1.1-8.5 (or RFC 9110 8.6) in a request's fields.
fn break_fields(r: &mut Rng, fields: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    let s = |x: &str| x.as_bytes().to_vec();
    let pseudo = fields.iter().take_while(|(n, _)| n.starts_with(b":")).count();
    match r.below(12) {
        0 => fields.push((s("X-Upper"), s("1"))),
        1 => fields.push((s(r.pick(&["connection", "keep-alive", "transfer-encoding", "upgrade"])), s("x"))),
        2 => fields.push((s("te"), s("gzip"))),
        3 => fields.push((s(r.pick(&["x-a", "x b", "", "x:y"])), s(r.pick(&["a\rb", " lead", "ok", "a\0"])))),
        4 if pseudo > 0 => {
            // A pseudo-header field missing, emptied or repeated.
            let i = r.below(pseudo as u64) as usize;
            match r.below(3) {
                0 => {
                    fields.remove(i);
                }
                1 => fields[i].1.clear(),
                _ => {
                    let f = fields[i].clone();
                    fields.insert(i, f);
                }
            }
        }
        5 => fields.push((s(":authority"), s("late.example"))),
        6 => fields.insert(0, (s(r.pick(&[":status", ":foo", ":protocol"])), s("x"))),
        7 => fields.push((s("content-length"), s(r.pick(&["-1", "1x", "", "99999999999999999999"])))),
        8 => fields.extend([(s("content-length"), s("1")), (s("content-length"), s("2"))]),
        9 => {
            for f in fields.iter_mut().filter(|(n, _)| n == b":path") {
                f.1 = s(r.pick(&["*", "relative", "/a b"]));
            }
        }
        10 => {
            for f in fields.iter_mut().filter(|(n, _)| n == b":authority") {
                f.1 = s("user@host");
            }
        }
        _ => fields.retain(|(n, _)| n != b":authority"),
    }
}
