//! The randomized, mutation-based soak of the engine in the client role (the server role's is
//! tests/fuzz_soak.rs; they share tests/common_fuzz).
//!
//! Each case draws a client configuration and a plan of requests, which the application opens
//! before anything arrives (GET, HEAD, POST with a body); then a valid server byte stream for
//! them (tests/common_fuzz/server_gen.rs: informational and final responses, bodies within the
//! client's windows with padding, trailers, CONTINUATION-split header blocks using the HPACK
//! dynamic table and Huffman coding, resets, GOAWAY, PING, probe acknowledgements, SETTINGS
//! changes, WINDOW_UPDATE for the uploads, PRIORITY, unknown frames), usually mutated as in the
//! server soak, fed split at random points with the calls a client application makes
//! interleaved (read, read_timeout, consume, send_body and trailers on its uploads, new
//! requests, reset_stream, flush, check_timeouts, goaway, misuse) on a synthetic clock.
//!
//! After every call: no panic; bytes buffered ≤ the connection window and equal to what the
//! application was reported and has not had handed over; every window within range; streams
//! opened only within the server's SETTINGS_MAX_CONCURRENT_STREAMS and the client's own limit
//! (a request beyond them is `Wait`, after a GOAWAY `Closed`); responses valid (`:status`,
//! 1xx never ending a stream, DATA only after the final head); every flush parses as frames
//! that respect the server's settings, starting with the connection preface and SETTINGS with
//! SETTINGS_ENABLE_PUSH 0, requests on increasing odd streams the application opened, valid
//! request header blocks, nothing after our RST_STREAM, a GOAWAY naming stream 0; the shadow
//! of the server agrees with the engine's windows and acknowledgements; an unmutated stream
//! sees no error and every response byte intact.
//!
//! Duration: H2FLOW_FUZZ_SECS (default 15). Seed and replay as in tests/fuzz_soak.rs
//! (H2FLOW_FUZZ_SEED, H2FLOW_FUZZ_CASE, H2FLOW_FUZZ_TRACE).

mod common_fuzz;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use common_fuzz::{
    body_byte, case_seed, env_secs, env_seed, frame_boundary, generate_responses, mutate, random_config,
    Output, Plan, Rng, Shadow, MAX_WINDOW,
};
use h2flow_core::scheduler::ReadStatus;
use h2flow_core::{fields, Config, Connection, ErrorCode, Event, Payload, Request, Sent};

const DEFAULT_SECS: f64 = 15.0;
const DEFAULT_SEED: u64 = 0xc11e_4832;

#[derive(Default)]
struct AppReq {
    /// Response bytes reported and not handed over to a read, nor consumed.
    buffered: u64,
    offset: u64,
    alive: bool,
    head: bool,
    final_seen: bool,
    peer_ended: bool,
    /// Our request is complete (END_STREAM sent).
    app_ended: bool,
    reading: Option<(u64, u64)>,
}

#[derive(Default)]
struct Totals {
    cases: u64,
    valid_cases: u64,
    bytes: u64,
    recv_calls: u64,
    api_calls: u64,
    requests: u64,
    responses: u64,
    body_bytes: u64,
    waits: u64,
    closed_cases: u64,
    errors: BTreeMap<String, u64>,
}

struct Case<'t> {
    conn: Connection,
    cfg: Config,
    now: Instant,
    rng: Rng,
    valid: bool,
    fed: Vec<u8>,
    shadow: Shadow,
    out: Output,
    app: BTreeMap<u32, AppReq>,
    totals: &'t mut Totals,
    trace: bool,
    /// The application called goaway().
    goaway_called: bool,
}

const GET: [(&[u8], &[u8]); 4] =
    [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"example.com"), (b":path", b"/")];

impl Case<'_> {
    fn check(&mut self) {
        let c = &self.conn;
        let sched = c.scheduler();
        let buffered: u64 = self.app.values().map(|s| s.buffered).sum();
        assert_eq!(c.buffered(), buffered, "engine's buffered bytes vs what the application holds");
        assert!(c.buffered() <= sched.connection_window() as u64, "buffered past the connection window");
        assert!((0..=MAX_WINDOW).contains(&c.send_window()), "connection send window {}", c.send_window());
        assert!((0..=MAX_WINDOW).contains(&sched.connection_remaining()));
        // The flow-control balance: every byte of the window is the peer's to send, buffered,
        // or credit owed; none is credited twice or lost.
        assert_eq!(
            sched.connection_remaining() + c.buffered() as i64 + sched.connection_pending() as i64,
            sched.connection_window() as i64,
            "connection window balance"
        );
        for &id in self.app.keys() {
            if let Some(w) = c.stream_send_window(id) {
                assert!((-(1 << 31)..=MAX_WINDOW).contains(&w), "stream {id} send window {w}");
            }
        }
        assert!(c.open_streams() <= self.cfg.max_concurrent_streams as usize, "over our own limit");
        if !c.is_closed() {
            assert_eq!(c.stats().bytes_received, self.fed.len() as u64);
        }
    }

    fn flush(&mut self) {
        let buf = self.conn.flush(self.now);
        self.totals.api_calls += 1;
        self.out.check(&buf, &self.shadow);
        self.shadow.flushed();
        self.events(&[]);
        let st = self.conn.stats();
        assert_eq!(st.bytes_sent, self.out.bytes);
        assert_eq!(st.data_bytes_sent as i64, self.out.data_total);
        if self.conn.is_closed() {
            self.out.finished = true;
            return;
        }
        let sh = &self.shadow;
        assert_eq!(self.out.settings_acks, sh.settings_in, "one SETTINGS ACK per SETTINGS");
        assert_eq!(self.out.ping_acks, sh.pings_in, "one PING ACK per PING");
        assert_eq!(self.conn.send_window(), 65_535 + sh.conn_credit - self.out.data_total);
        assert_eq!(
            self.conn.scheduler().connection_remaining(),
            65_535 + self.out.conn_credit - sh.data_in,
            "the server's view of our connection window"
        );
        for &id in self.app.keys() {
            if let Some(w) = self.conn.stream_send_window(id) {
                let credit = sh.stream_credit.get(&id).copied().unwrap_or(0);
                let sent = self.out.data_sent.get(&id).copied().unwrap_or(0);
                assert_eq!(w, sh.iws + credit - sent, "stream {id} send window");
            }
        }
    }

    fn recv(&mut self, chunk: &[u8]) {
        let was_closed = self.conn.is_closed();
        if !was_closed {
            self.fed.extend_from_slice(chunk);
        }
        self.totals.recv_calls += 1;
        let r = self.conn.recv(chunk, self.now);
        if self.trace {
            eprintln!("recv {} bytes: {r:?}", chunk.len());
        }
        if let Err(e) = &r {
            assert!(e.is_connection_error() && self.conn.is_closed(), "{e:?}");
            assert!(e.message().contains("RFC") || e.message().contains("CVE"), "{e}");
            assert!(!self.valid, "a valid stream got {e}");
            *self.totals.errors.entry(e.to_string()).or_default() += 1;
        }
        assert!(!was_closed || r.is_ok());
        let frames: u64 = self.conn.stats().frames_received.iter().sum();
        self.shadow.advance(&self.fed, frames, self.cfg.max_frame_size);
        self.events(chunk);
    }

    fn events(&mut self, input: &[u8]) {
        for e in self.conn.take_events() {
            if self.trace {
                eprintln!("  {e:?}");
            }
            self.event(e, input);
        }
        self.check();
    }

    fn event(&mut self, e: Event, input: &[u8]) {
        let valid = self.valid;
        match e {
            Event::Response { stream_id: id, fields, info, end_stream } => {
                assert!(fields::validate_response(&fields).is_ok_and(|i| i == info), "invalid response");
                let s = self.app.get_mut(&id).expect("a response to a request never made");
                assert!(s.alive && !s.final_seen, "a response on stream {id} after its final one");
                assert!(info.status >= 200 || !end_stream, "a 1xx ended stream {id}");
                s.final_seen = info.status >= 200;
                s.peer_ended = end_stream;
                self.totals.responses += 1;
            }
            Event::Data { stream_id: id, data, end_stream } => {
                if let Payload::Input { start, len } = data {
                    assert!(start + len <= input.len());
                }
                let bytes = data.resolve(input);
                let s = self.app.get_mut(&id).expect("Data for an unknown stream");
                assert!(s.alive && s.final_seen && !s.peer_ended, "Data on stream {id} out of place");
                assert!(!s.head || bytes.is_empty(), "content in a response to HEAD");
                if valid {
                    for (i, &b) in bytes.iter().enumerate() {
                        assert_eq!(b, body_byte(id, s.offset + i as u64), "body byte {} of {id}", s.offset);
                    }
                }
                match s.reading.as_mut() {
                    Some((handed, _)) => *handed += bytes.len() as u64,
                    None => s.buffered += bytes.len() as u64,
                }
                s.offset += bytes.len() as u64;
                s.peer_ended = end_stream;
                self.totals.body_bytes += bytes.len() as u64;
            }
            Event::Trailers { stream_id: id, fields } => {
                assert!(fields::validate_trailers(&fields).is_ok());
                let s = self.app.get_mut(&id).expect("Trailers for an unknown stream");
                assert!(s.alive && s.final_seen && !s.peer_ended);
                s.peer_ended = true;
            }
            Event::StreamReset { stream_id: id, .. } | Event::StreamError { stream_id: id, .. } => {
                if let Event::StreamError { message, .. } = &e {
                    assert!(!valid, "a valid stream got {e:?}");
                    *self.totals.errors.entry(message.clone()).or_default() += 1;
                }
                let s = self.app.get_mut(&id).expect("a reset of an unknown stream");
                assert!(s.alive, "stream {id} reset twice");
                s.alive = false;
                s.buffered = 0;
                s.reading = None;
            }
            Event::ReadDone { stream_id: id, fin } => {
                let s = self.app.get_mut(&id).expect("ReadDone for an unknown stream");
                let (handed, length) = s.reading.take().expect("ReadDone without a read");
                assert!(if fin { s.peer_ended } else { handed >= length });
            }
            Event::SendTimeout { stream_id: id } => {
                assert!(!valid);
                let s = self.app.get_mut(&id).expect("SendTimeout for an unknown stream");
                s.alive = false;
                s.buffered = 0;
                s.reading = None;
            }
            Event::GoAway { .. } | Event::SendWindowOpen { .. } => {}
            Event::Headers { .. } => panic!("a client engine reported a request: {e:?}"),
        }
    }

    fn pick(&mut self, f: impl Fn(&AppReq) -> bool) -> Option<u32> {
        let ids: Vec<u32> = self.app.iter().filter(|(_, s)| f(s)).map(|(&id, _)| id).collect();
        (!ids.is_empty()).then(|| self.rng.pick(&ids))
    }

    /// Opens a request; checks the outcome against the limits and the connection's state.
    fn request(&mut self, head: bool, body: bool) {
        let mut fields = GET.to_vec();
        if head {
            fields[0].1 = b"HEAD";
        } else if body {
            fields[0].1 = b"POST";
        }
        let open = self.conn.open_streams();
        let limit = self.shadow.max_concurrent.min(self.cfg.max_concurrent_streams) as usize;
        let closing = self.conn.is_closed() || self.goaway_called || self.goaway_seen();
        let r = self.conn.send_request(&fields, !body);
        if self.trace {
            eprintln!("send_request(head {head}, body {body}): {r:?}");
        }
        match r {
            Ok(Request::Opened(id)) => {
                assert!(!closing && open < limit, "opened stream {id} with {open} open of {limit}");
                self.out.requests.insert(id);
                let s = AppReq { alive: true, head, app_ended: !body, ..Default::default() };
                self.app.insert(id, s);
                self.totals.requests += 1;
            }
            Ok(Request::Wait) => {
                assert!(!closing && open >= limit, "Wait with {open} open of {limit}");
                self.totals.waits += 1;
            }
            Ok(Request::Closed) => assert!(closing, "Closed on an open connection"),
            Err(e) => panic!("a valid request refused: {e}"),
        }
    }

    fn goaway_seen(&self) -> bool {
        self.conn.stats().frames_received[h2flow_core::frame::kind::GOAWAY as usize] > 0
    }

    fn act(&mut self) {
        self.totals.api_calls += 1;
        match self.rng.below(100) {
            0..=19 => self.read(),
            20 => {
                if let Some(id) = self.pick(|s| s.reading.is_some()) {
                    assert!(self.conn.read_timeout(id));
                    self.app.get_mut(&id).expect("stream").reading = None;
                }
            }
            21..=29 => self.consume(),
            30..=44 => self.upload(),
            45..=49 => self.trailers(),
            50..=54 => {
                let (head, body) = (self.rng.chance(20), self.rng.chance(30));
                self.request(head, body)
            }
            55..=57 => self.reset(),
            58..=74 => self.flush(),
            75..=77 => self.misuse(),
            78..=82 => {
                if self.conn.check_timeouts(self.now).is_err() {
                    assert!(!self.valid && self.conn.is_closed());
                }
            }
            83 => {
                self.conn.goaway(ErrorCode::NO_ERROR, b"");
                self.goaway_called = true;
            }
            _ => {
                let ms = if self.valid { self.rng.below(5) } else { self.rng.pick(&[0, 10, 1_000, 11_000]) };
                self.now += Duration::from_millis(ms);
            }
        }
        self.events(&[]);
    }

    fn read(&mut self) {
        let Some(id) = self.pick(|s| s.reading.is_none()) else { return };
        let length = self.rng.pick(&[0, 1, 100, 16_384, 1_000_000]);
        let r = self.conn.read(id, length);
        if self.trace {
            eprintln!("read({id}, {length}): {r:?}");
        }
        let s = self.app.get_mut(&id).expect("stream");
        let handed = std::mem::take(&mut s.buffered);
        match r {
            Some(ReadStatus::Fin) => assert!(s.peer_ended, "read of {id} ended before its body"),
            Some(ReadStatus::More) => assert!(handed >= length),
            Some(ReadStatus::Wait) => {
                assert!(!s.peer_ended && handed < length.max(1));
                s.reading = Some((handed, length));
            }
            None => assert!(!s.alive || self.conn.is_closed() || s.peer_ended, "read of live {id} refused"),
        }
    }

    fn consume(&mut self) {
        let Some(id) = self.pick(|s| s.buffered > 0) else { return };
        let n = self.rng.below(self.app[&id].buffered + 1);
        if self.trace {
            eprintln!("consume({id}, {n})");
        }
        self.conn.consume(id, n).expect("consume what was reported");
        self.app.get_mut(&id).expect("stream").buffered -= n;
    }

    fn upload(&mut self) {
        let Some(id) = self.pick(|s| s.alive && !s.app_ended) else { return };
        let n = self.rng.pick(&[0, 1, 1000, 16_384, 70_000]);
        let end = self.rng.chance(30);
        match self.conn.send_body(id, &vec![9; n], end) {
            Ok(Sent::Accepted { taken, .. }) => {
                assert!(taken <= n);
                if taken == n && end {
                    self.app.get_mut(&id).expect("stream").app_ended = true;
                }
            }
            Ok(Sent::StreamClosed) => assert!(self.conn.is_closed() || self.conn.stream_state(id).is_none()),
            other => panic!("send_body on {id}: {other:?}"),
        }
    }

    fn trailers(&mut self) {
        let Some(id) = self.pick(|s| s.alive && !s.app_ended) else { return };
        match self.conn.send_headers(id, &[(b"x-sum", b"1")], true) {
            Ok(Sent::Queued(_)) => self.app.get_mut(&id).expect("stream").app_ended = true,
            Ok(Sent::StreamClosed) => {}
            other => panic!("trailers on {id}: {other:?}"),
        }
    }

    fn reset(&mut self) {
        let Some(id) = self.pick(|s| s.alive) else { return };
        let r = self.conn.reset_stream(id, ErrorCode::CANCEL);
        if self.trace {
            eprintln!("reset_stream({id}): {r:?}");
        }
        let s = self.app.get_mut(&id).expect("stream");
        s.alive = false;
        s.reading = None;
        match r {
            // What it held is released, whether the stream was open or already gone (both ends
            // done, or the connection failed): a caller that gives up reads no more.
            Ok(Sent::Queued(_) | Sent::StreamClosed) => s.buffered = 0,
            other => panic!("reset of {id}: {other:?}"),
        }
    }

    fn misuse(&mut self) {
        let before = self.conn.stats().frames_sent;
        type Fields<'a> = &'a [(&'a [u8], &'a [u8])];
        let missing: Fields = &[(b":method", b"GET"), (b":path", b"/")];
        let upper: Fields = &[(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"Bad", b"1")];
        let late: Fields = &[(b"x", b"1"), (b":method", b"GET")];
        let bad = self.rng.pick(&[missing, upper, late]);
        assert!(self.conn.send_request(bad, true).is_err(), "misuse accepted: {bad:?}");
        assert!(self.conn.send_data(2, b"x", false).is_err(), "DATA on an even stream accepted");
        assert_eq!(self.conn.stats().frames_sent, before, "misuse wrote frames");
    }

    fn run(&mut self, plan: &Plan, input: &[u8]) {
        for &(head, body) in &plan.requests {
            self.request(head, body);
        }
        self.flush();
        let mut pos = 0;
        while pos < input.len() {
            let left = input.len() - pos;
            let n = match self.rng.below(5) {
                0 => self.rng.range(1, 9) as usize,
                1 => self.rng.range(1, 2000) as usize,
                2 => frame_boundary(&input[pos..]).unwrap_or(left),
                _ => left,
            }
            .clamp(1, left);
            self.recv(&input[pos..pos + n]);
            pos += n;
            for _ in 0..self.rng.below(6) {
                self.act();
            }
        }
        // Wrap-up: every response byte reported is read.
        let ids: Vec<u32> = self.app.keys().copied().collect();
        for id in ids {
            let n = self.app[&id].buffered;
            self.conn.consume(id, n).expect("final consume");
            self.app.get_mut(&id).expect("stream").buffered = 0;
            self.check();
        }
        self.flush();
        assert_eq!(self.conn.buffered(), 0);
        if self.valid {
            assert!(!self.conn.is_closed(), "a valid stream closed the connection");
        }
        self.totals.closed_cases += self.conn.is_closed() as u64;
    }
}

fn make_case(seed: u64, index: u64) -> (Config, Plan, Vec<u8>, bool, Rng) {
    let mut rng = Rng::new(case_seed(seed, index));
    let valid = rng.chance(15);
    let cfg = random_config(&mut rng, valid);
    let plan = Plan::random(&mut rng, cfg.max_concurrent_streams);
    let scenario = generate_responses(&mut rng, &cfg, &plan, !valid);
    let input = if valid {
        scenario.bytes()
    } else {
        let other = generate_responses(&mut rng, &cfg, &plan, true);
        mutate(&mut rng, &scenario.frames, &other.frames)
    };
    (cfg, plan, input, valid, rng)
}

#[test]
fn client_soak() {
    let seed = env_seed(DEFAULT_SEED);
    let secs = env_secs(DEFAULT_SECS);
    let only: Option<u64> = std::env::var("H2FLOW_FUZZ_CASE").ok().and_then(|s| s.parse().ok());
    let trace = std::env::var("H2FLOW_FUZZ_TRACE").is_ok();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut totals = Totals::default();
    let mut index = only.unwrap_or(0);
    loop {
        let (cfg, plan, input, valid, rng) = make_case(seed, index);
        totals.cases += 1;
        totals.valid_cases += valid as u64;
        totals.bytes += input.len() as u64;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let now = Instant::now();
            let conn = Connection::new_client(cfg.clone(), now).expect("random_config is valid");
            let mut case = Case {
                conn,
                cfg,
                now,
                rng,
                valid,
                fed: Vec::new(),
                shadow: Shadow::of_server(),
                out: Output::of_client(),
                app: BTreeMap::new(),
                totals: &mut totals,
                trace,
                goaway_called: false,
            };
            case.run(&plan, &input);
        }));
        if result.is_err() {
            panic!(
                "client case {index} failed (valid: {valid}); replay with H2FLOW_FUZZ_SEED={seed:x} \
                 H2FLOW_FUZZ_CASE={index} H2FLOW_FUZZ_TRACE=1"
            );
        }
        index += 1;
        if only.is_some() || Instant::now() >= deadline {
            break;
        }
    }
    let t = &totals;
    println!(
        "fuzz_soak_client: seed {seed:x}, {secs} s: {} inputs ({} unmutated), {} MB fed in {} recv calls, \
         {} application calls; {} requests ({} waited), {} responses, {} body bytes; {} connections \
         ended by an error",
        t.cases,
        t.valid_cases,
        t.bytes / 1_000_000,
        t.recv_calls,
        t.api_calls,
        t.requests,
        t.waits,
        t.responses,
        t.body_bytes,
        t.closed_cases
    );
    let mut errors: Vec<_> = t.errors.iter().collect();
    errors.sort_by(|a, b| b.1.cmp(a.1));
    for (e, n) in errors.iter().take(40) {
        println!("    {n:>8}  {e}");
    }
    assert!(t.cases > 0);
}
