//! The generator of server byte streams, for the client role's soak: the frames a correct
//! server sends to a client that opened the requests of a [`Plan`] (informational and final
//! responses, bodies within the client's windows, trailers, resets, GOAWAY, PING, SETTINGS
//! changes, WINDOW_UPDATE for the uploads, PRIORITY, unknown frames), or ones with malformed
//! responses to be mutated further.

use std::collections::BTreeMap;

use h2flow_core::frame::{kind, setting};
use h2flow_core::hpack::Encoder;
use h2flow_core::Config;

use super::*;

/// The requests the client application opens before any server byte arrives: streams 1, 3, 5...
pub struct Plan {
    /// Per request: HEAD (its response has no content), and whether it has a body to upload.
    pub requests: Vec<(bool, bool)>,
}

impl Plan {
    pub fn random(rng: &mut Rng, max: u32) -> Plan {
        let n = rng.range(1, max.clamp(1, 12) as u64);
        let requests = (0..n)
            .map(|_| match rng.below(6) {
                0 => (true, false),
                1 | 2 => (false, true),
                _ => (false, false),
            })
            .collect();
        Plan { requests }
    }

    pub fn id(i: usize) -> u32 {
        2 * i as u32 + 1
    }
}

/// A response being sent.
struct Response {
    head: bool,
    final_sent: bool,
    content_length: Option<u64>,
    target: u64,
    sent: u64,
    /// The client's receive window for the stream, as far as the server knows.
    window: i64,
    /// The client still uploads on this stream (WINDOW_UPDATE on it makes sense).
    uploading: bool,
}

struct Gen<'a> {
    rng: &'a mut Rng,
    malformed: bool,
    enc: Encoder,
    frames: Vec<Vec<u8>>,
    responses: BTreeMap<u32, Response>,
    conn_window: i64,
    /// Credit given to the client's uploads (the client's send windows stay within 2^31-1).
    conn_credit: i64,
    stream_credit: BTreeMap<u32, i64>,
    iws: i64,
    goaway: Option<u32>,
    pings: u32,
    probes: u16,
    settings: u32,
}

/// Generates a server byte stream for a client configured with `cfg` that opened `plan`'s
/// requests: valid, or with some malformed responses (well-formed HPACK) if `malformed`.
pub fn generate_responses(rng: &mut Rng, cfg: &Config, plan: &Plan, malformed: bool) -> Scenario {
    // The client's SETTINGS and initial credit precede its requests: the server knows them.
    let stream_window = cfg.window.initial_stream_window as i64;
    let mut g = Gen {
        rng,
        malformed,
        enc: Encoder::new(),
        frames: Vec::new(),
        responses: BTreeMap::new(),
        conn_window: cfg.window.initial_connection_window.max(65_535) as i64,
        conn_credit: 0,
        stream_credit: BTreeMap::new(),
        iws: 65_535,
        goaway: None,
        pings: 0,
        probes: 0,
        settings: 0,
    };
    g.first_settings(plan.requests.len() as u32);
    g.enc.set_peer_table_size(cfg.header_table_size);
    for (i, &(head, upload)) in plan.requests.iter().enumerate() {
        let target = match g.rng.below(8) {
            0 => 0,
            1..=5 => g.rng.range(1, 3000),
            _ => g.rng.range(3000, 200_000),
        };
        let content_length = g.rng.chance(50).then_some(target);
        let r = Response {
            head,
            final_sent: false,
            content_length,
            target: if head { 0 } else { target },
            sent: 0,
            window: stream_window,
            uploading: upload,
        };
        g.responses.insert(Plan::id(i), r);
    }
    let steps = g.rng.range(1, 80);
    let ack_at = g.rng.pick(&[0, 0, 1, 5]);
    for step in 0..steps {
        if step == ack_at {
            g.frames.push(frame(kind::SETTINGS, ACK, 0, &[]));
        }
        g.step();
    }
    if ack_at >= steps {
        g.frames.push(frame(kind::SETTINGS, ACK, 0, &[]));
    }
    // Most responses finish.
    let ids: Vec<u32> = g.responses.keys().copied().collect();
    for id in ids {
        if g.rng.chance(85) {
            g.finish(id);
        }
    }
    Scenario { frames: g.frames }
}

impl Gen<'_> {
    fn first_settings(&mut self, opened: u32) {
        let mut params = Vec::new();
        for _ in 0..self.rng.below(6) {
            let p = match self.rng.below(7) {
                0 => (setting::HEADER_TABLE_SIZE, self.rng.pick(&[0, 64, 4096, 65_536])),
                1 => (setting::ENABLE_PUSH, 0),
                // A server that allows fewer streams than the client opened would refuse some.
                2 => (setting::MAX_CONCURRENT_STREAMS, opened.max(self.rng.pick(&[1, 2, 100, u32::MAX]))),
                3 | 4 => (setting::INITIAL_WINDOW_SIZE, self.rng.pick(&[0, 1, 100, 65_535, 1 << 20])),
                5 => (setting::MAX_FRAME_SIZE, self.rng.pick(&[16_384, 20_000, 1 << 20])),
                _ => (setting::MAX_HEADER_LIST_SIZE, self.rng.pick(&[100, 65_536])),
            };
            if p.0 == setting::INITIAL_WINDOW_SIZE {
                self.iws = p.1 as i64;
            }
            params.push(p);
        }
        self.frames.push(settings_frame(&params));
    }

    fn step(&mut self) {
        match self.rng.below(100) {
            0..=29 => self.head_or_data(),
            30..=49 => {
                if let Some(id) = self.some_response() {
                    self.data(id);
                }
            }
            50..=59 => {
                if let Some(id) = self.some_response() {
                    self.finish(id);
                }
            }
            60..=62 => {
                if let Some(id) = self.some_response() {
                    self.reset(id);
                }
            }
            63..=67 => self.ping(),
            68..=72 => self.probe_ack(),
            73..=77 => self.window_update(),
            78..=80 => self.settings_change(),
            81..=83 => self.priority(),
            84..=86 => self.unknown_frame(),
            87 => self.goaway(),
            _ => self.head_or_data(),
        }
    }

    fn some_response(&mut self) -> Option<u32> {
        let ids: Vec<u32> = self.responses.keys().copied().collect();
        (!ids.is_empty()).then(|| self.rng.pick(&ids))
    }

    fn head_or_data(&mut self) {
        let Some(id) = self.some_response() else { return };
        if self.responses[&id].final_sent {
            self.data(id);
        } else {
            self.head(id, true);
        }
    }

    /// An informational response now and then (if `informational`), else the final one.
    fn head(&mut self, id: u32, informational: bool) {
        if informational && self.rng.chance(15) {
            let status = self.rng.pick(&["100", "103"]);
            let fields = vec![(b":status".to_vec(), status.as_bytes().to_vec())];
            self.block(id, fields, false);
            return;
        }
        let r = &self.responses[&id];
        let status = if r.head {
            self.rng.pick(&["200", "404"])
        } else {
            self.rng.pick(&["200", "200", "201", "500"])
        };
        let mut fields = vec![(b":status".to_vec(), status.as_bytes().to_vec())];
        if let Some(n) = r.content_length {
            fields.push((b"content-length".to_vec(), n.to_string().into_bytes()));
        }
        if self.rng.chance(60) {
            fields.push((b"content-type".to_vec(), b"application/octet-stream".to_vec()));
        }
        if self.rng.chance(30) {
            fields.push((b"set-cookie".to_vec(), b"id=0123456789abcdef0123456789".to_vec()));
        }
        if self.rng.chance(5) {
            fields.push((b"x-big".to_vec(), vec![b'b'; self.rng.pick(&[100, 3000, 20_000])]));
        }
        if self.malformed && self.rng.chance(20) {
            break_response(self.rng, &mut fields);
        }
        let end = r.target == 0 && self.rng.chance(60);
        self.block(id, fields, end);
        let r = self.responses.get_mut(&id).expect("response");
        r.final_sent = true;
        if end {
            self.responses.remove(&id);
        }
    }

    /// A header block as HEADERS + CONTINUATION frames, Huffman-coded and padded now and then.
    fn block(&mut self, id: u32, fields: Vec<(Vec<u8>, Vec<u8>)>, end_stream: bool) {
        let mut block = Vec::new();
        self.enc.encode(fields.iter().map(|(n, v)| (&n[..], &v[..])), &mut block);
        if self.rng.chance(40) {
            block = huffmanize(&block, self.rng);
        }
        let max_fragment = 16_384 - 256;
        let mut fragments: Vec<&[u8]> = block.chunks(max_fragment).collect();
        if fragments.is_empty() {
            fragments.push(&[]);
        }
        if fragments.len() == 1 && block.len() > 1 && self.rng.chance(20) {
            let cut = self.rng.range(1, block.len() as u64 - 1) as usize;
            fragments = vec![&block[..cut], &block[cut..]];
        }
        let mut flags = if end_stream { END_STREAM } else { 0 };
        if fragments.len() == 1 {
            flags |= END_HEADERS;
        }
        let mut payload = Vec::new();
        let pad = self.rng.chance(10).then(|| self.rng.pick(&[0u8, 3, 200]));
        if let Some(p) = pad {
            flags |= PADDED;
            payload.push(p);
        }
        payload.extend_from_slice(fragments[0]);
        payload.resize(payload.len() + pad.unwrap_or(0) as usize, 0);
        self.frames.push(frame(kind::HEADERS, flags, id, &payload));
        for (i, f) in fragments.iter().enumerate().skip(1) {
            let flags = if i + 1 == fragments.len() { END_HEADERS } else { 0 };
            self.frames.push(frame(kind::CONTINUATION, flags, id, f));
        }
    }

    /// One DATA frame within the client's windows, if the final response went out.
    fn data(&mut self, id: u32) {
        let Some(r) = self.responses.get(&id) else { return };
        if !r.final_sent {
            return self.head(id, true);
        }
        let left = r.target - r.sent;
        let room = r.window.min(self.conn_window).max(0) as u64;
        let padded = self.rng.chance(10) && room > 1;
        let pad = if padded { self.rng.pick(&[0u64, 1, 9]).min(room - 2) } else { 0 };
        let max = (room - if padded { pad + 1 } else { 0 }).min(16_384 - 256);
        let n = if self.rng.chance(30) { max.min(left) } else { self.rng.range(1, 5000).min(max).min(left) };
        if n == 0 {
            return;
        }
        let mut payload = Vec::new();
        let mut flags = 0;
        if padded {
            flags |= PADDED;
            payload.push(pad as u8);
        }
        payload.extend((0..n).map(|i| body_byte(id, r.sent + i)));
        payload.resize(payload.len() + pad as usize, 0);
        let end = n == left && self.rng.chance(50);
        if end {
            flags |= END_STREAM;
        }
        let flow = payload.len() as i64;
        self.frames.push(frame(kind::DATA, flags, id, &payload));
        self.conn_window -= flow;
        let r = self.responses.get_mut(&id).expect("response");
        r.window -= flow;
        r.sent += n;
        if end {
            self.responses.remove(&id);
        }
    }

    /// Sends the rest of a response if the windows allow, and ends it (empty DATA frame or
    /// trailers); a body that does not fit is abandoned with a reset.
    fn finish(&mut self, id: u32) {
        if !self.responses.get(&id).is_some_and(|r| r.final_sent) {
            self.head(id, false);
        }
        for _ in 0..64 {
            let Some(r) = self.responses.get(&id) else { return };
            if r.sent == r.target || r.window.min(self.conn_window) <= 0 {
                break;
            }
            self.data(id);
        }
        let Some(r) = self.responses.get(&id) else { return };
        if r.sent != r.target {
            return self.reset(id);
        }
        self.responses.remove(&id);
        if self.rng.chance(30) {
            let fields = vec![(b"x-checksum".to_vec(), b"0123abcd".to_vec())];
            self.block(id, fields, true);
        } else {
            self.frames.push(frame(kind::DATA, END_STREAM, id, &[]));
        }
    }

    fn reset(&mut self, id: u32) {
        let code: u32 = self.rng.pick(&[0x0, 0x2, 0x7, 0x8]);
        self.frames.push(frame(kind::RST_STREAM, 0, id, &code.to_be_bytes()));
        self.responses.remove(&id);
    }

    fn ping(&mut self) {
        if self.pings < 20 {
            self.pings += 1;
            let data = self.rng.bytes(8);
            self.frames.push(frame(kind::PING, 0, 0, &data));
        }
    }

    /// Acknowledges a round-trip probe the client will have sent by now, if any.
    fn probe_ack(&mut self) {
        self.probes += 1;
        let mut data = *b"h2flow\0\0";
        data[6..].copy_from_slice(&self.probes.to_be_bytes());
        self.frames.push(frame(kind::PING, ACK, 0, &data));
    }

    /// Credit for the client's uploads.
    fn window_update(&mut self) {
        let inc = self.rng.pick(&[1i64, 1000, 65_535, 1 << 20]);
        let uploading: Vec<u32> =
            self.responses.iter().filter(|(_, r)| r.uploading).map(|(&id, _)| id).collect();
        if uploading.is_empty() || self.rng.chance(40) {
            if 65_535 + self.conn_credit + inc <= MAX_WINDOW {
                self.conn_credit += inc;
                self.frames.push(frame(kind::WINDOW_UPDATE, 0, 0, &(inc as u32).to_be_bytes()));
            }
            return;
        }
        let id = self.rng.pick(&uploading);
        let credit = self.stream_credit.entry(id).or_insert(0);
        if self.iws.max(65_535) + *credit + inc <= MAX_WINDOW {
            *credit += inc;
            self.frames.push(frame(kind::WINDOW_UPDATE, 0, id, &(inc as u32).to_be_bytes()));
        }
    }

    fn settings_change(&mut self) {
        if self.settings > 6 {
            return;
        }
        self.settings += 1;
        let max_credit = self.stream_credit.values().copied().max().unwrap_or(0);
        let v = self.rng.pick(&[0u32, 100, 65_535, 1 << 20]);
        let mut params = vec![(setting::MAX_FRAME_SIZE, self.rng.pick(&[16_384, 30_000]))];
        if v as i64 + max_credit <= MAX_WINDOW {
            self.iws = v as i64;
            params.push((setting::INITIAL_WINDOW_SIZE, v));
        }
        self.frames.push(settings_frame(&params));
    }

    fn priority(&mut self) {
        let id = self.rng.pick(&[1, 3, 5, 7, 101]);
        let dep: u32 = if id == 1 { 3 } else { 1 };
        let mut payload = dep.to_be_bytes().to_vec();
        payload.push(16);
        self.frames.push(frame(kind::PRIORITY, 0, id, &payload));
    }

    fn unknown_frame(&mut self) {
        let t = self.rng.range(0x0a, 0xff) as u8;
        let n = self.rng.below(16) as usize;
        let payload = self.rng.bytes(n);
        self.frames.push(frame(t, 0, self.rng.pick(&[0, 1, 2, 3]), &payload));
    }

    /// GOAWAY: the streams above its last id were not processed, and get no more frames.
    fn goaway(&mut self) {
        if self.goaway.is_some() {
            return;
        }
        let last = self.rng.pick(&[0, 1, 3, 0x7fff_ffff]);
        self.goaway = Some(last);
        let mut payload = last.to_be_bytes().to_vec();
        payload.extend_from_slice(&0u32.to_be_bytes());
        self.frames.push(frame(kind::GOAWAY, 0, 0, &payload));
        self.responses.retain(|&id, _| id <= last);
    }
}

/// Breaks one rule of RFC 9113 8.3.2 (or RFC 9110 8.6) in a response's fields.
fn break_response(r: &mut Rng, fields: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    let s = |x: &str| x.as_bytes().to_vec();
    match r.below(6) {
        0 => fields.retain(|(n, _)| n != b":status"),
        1 => fields.push((s(":path"), s("/"))),
        2 => fields.push((s("connection"), s("close"))),
        3 => fields.push((s("content-length"), s("-1"))),
        4 => fields.insert(0, (s(":status"), s("2000"))),
        _ => fields.push((s("X-Upper"), s("1"))),
    }
}
