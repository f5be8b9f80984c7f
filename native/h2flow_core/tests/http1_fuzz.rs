//! A randomized soak of the HTTP/1.1 engine, in the spirit of `fuzz_soak.rs`, kept short for
//! `cargo test`.
//!
//! Each case draws a configuration and a valid client byte stream (GET, HEAD, OPTIONS,
//! uploads by Content-Length or chunked with extensions and trailers, HTTP/1.0 with and
//! without keep-alive, `Expect: 100-continue`, empty lines, absolute-form targets, an h2c
//! upgrade), usually mutates it (bytes flipped, replaced by CR, LF, SP, `:`, `;` and the like,
//! ranges deleted or repeated, framing fields inserted, truncation), and feeds it split at
//! random points, only while the engine wants input, interleaved with what an application
//! does (registered reads with their periods, consume, discard, respond with every framing and
//! with bounded sends, trailers, abort, shutdown, flush, time).
//!
//! Checked after every call: no panic; unconsumed body bytes ≤ `max_body_buffer` plus one
//! read; input held ≤ `max_header_section` plus one read; pipelined requests ≤
//! `max_pipelined`; events in order (ids increasing, no data after the end, nothing for an
//! unknown request). At the end: the output parses as HTTP/1.1 responses (the last one cut
//! short only when the connection closes); and for an unmutated stream, no refusal, every
//! request announced once and in order, and every body byte intact.
//!
//! Duration: H2FLOW_H1_FUZZ_SECS (default 3). Seed: H2FLOW_H1_FUZZ_SEED (hex; default fixed;
//! `random` draws one). A failing case is reported with its seed and number.

mod common_h1fuzz;
mod common_http1;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use common_h1fuzz::{check_output, generate, mutate, random_config};
use common_http1::Rng;
use h2flow_core::http1::{Config, Connection, Event, ReadStatus, Sent};

const DEFAULT_SECS: f64 = 3.0;
const DEFAULT_SEED: u64 = 0x4831_5eed;
const MAX_READ: usize = 4096;

#[derive(Default)]
struct AppReq {
    head: bool,
    http10: bool,
    body: Vec<u8>,
    body_ended: bool,
    held: u64,
    /// None: no final head yet; Some(remaining content-length, if any).
    streaming: Option<Option<u64>>,
    done: bool,
    waiting: bool,
    cancelled: bool,
    /// A registered read: its length and what it was handed.
    reading: Option<(u64, u64)>,
    discarded: bool,
}

struct Case {
    conn: Connection,
    now: Instant,
    cfg: Config,
    reqs: BTreeMap<u64, AppReq>,
    last_id: u64,
    written: Vec<u8>,
    rejected: u64,
    last_refusal: Option<h2flow_core::http1::Rejected>,
    upgraded: bool,
}

impl Case {
    fn events(&mut self, input: &[u8]) {
        for e in self.conn.take_events() {
            match e {
                Event::Request { id, version, fields, end_stream, .. } => {
                    assert!(id > self.last_id, "ids increase");
                    self.last_id = id;
                    let head = fields.get(b":method") == Some(b"HEAD");
                    let http10 = version == h2flow_core::http1::Version::Http10;
                    let r = AppReq { head, http10, body_ended: end_stream, ..AppReq::default() };
                    assert!(self.reqs.insert(id, r).is_none());
                }
                Event::Data { id, data, end_stream } => {
                    let r = self.reqs.get_mut(&id).expect("data for an announced request");
                    assert!(!r.body_ended, "data after the end");
                    assert!(!r.discarded, "data after a discard");
                    r.body.extend_from_slice(data.resolve(input));
                    match r.reading.as_mut() {
                        Some((_, handed)) => *handed += data.len() as u64,
                        None => r.held += data.len() as u64,
                    }
                    r.body_ended = end_stream;
                }
                Event::ReadDone { id, fin } => {
                    let r = self.reqs.get_mut(&id).expect("read_done for an announced request");
                    let (length, handed) = r.reading.take().expect("read_done without a read");
                    if fin {
                        assert!(r.body_ended, "read_done fin before the end of the body");
                    } else {
                        assert!(handed >= length || r.done, "read_done more: {handed} of {length}");
                    }
                }
                Event::Trailers { id, .. } => {
                    let r = self.reqs.get_mut(&id).expect("trailers for an announced request");
                    assert!(!r.body_ended, "trailers after the end");
                    r.body_ended = true;
                }
                Event::Writable { id } => {
                    if let Some(r) = self.reqs.get_mut(&id) {
                        r.waiting = false;
                    }
                }
                Event::Cancelled { id } => {
                    let r = self.reqs.get_mut(&id).expect("cancelled request was announced");
                    r.cancelled = true;
                }
                Event::Upgrade(_) => self.upgraded = true,
            }
        }
    }

    fn check(&self, max_read: usize) {
        let c = &self.conn;
        assert!(c.buffered() <= self.cfg.max_body_buffer + max_read as u64, "buffered {}", c.buffered());
        assert!(c.held_input() <= self.cfg.max_header_section + max_read, "held {}", c.held_input());
        assert!(c.pipelined() <= self.cfg.max_pipelined);
        let held: u64 = self.reqs.values().filter(|r| !r.done && !r.cancelled).map(|r| r.held).sum();
        assert!(c.buffered() <= held, "engine {} app {}", c.buffered(), held);
    }

    fn flush(&mut self) {
        let out = self.conn.flush(self.now);
        self.written.extend_from_slice(&out);
        self.events(&[]);
    }

    /// One step of the application on a random request.
    fn act(&mut self, rng: &mut Rng, strict: bool) {
        let open: Vec<u64> =
            self.reqs.iter().filter(|(_, r)| !r.done && !r.cancelled).map(|(&id, _)| id).collect();
        if open.is_empty() {
            return;
        }
        let id = open[rng.below(open.len() as u64) as usize];
        let r = self.reqs.get_mut(&id).unwrap();
        if rng.chance(30) && r.held > 0 {
            let n = 1 + rng.below(r.held);
            r.held -= n;
            self.conn.consume(id, n).expect("consume");
            return;
        }
        if rng.chance(20) {
            let length = rng.below(4000);
            let status = self.conn.read(id, length);
            if std::env::var("H2FLOW_H1_FUZZ_TRACE").is_ok() {
                println!("read {id} {length}: {status:?}");
            }
            match status {
                Some(ReadStatus::Fin) => {
                    assert!(r.body_ended, "fin before the end of the body");
                    r.reading = None;
                }
                Some(ReadStatus::More) => {
                    assert!(r.held >= length, "more with {} of {length}", r.held);
                    r.reading = None;
                }
                Some(ReadStatus::Wait) => {
                    assert!(!r.body_ended);
                    r.reading = Some((length, r.held));
                }
                None => {}
            }
            r.held = 0;
            return;
        }
        if rng.chance(5) {
            assert_eq!(self.conn.read_timeout(id), r.reading.is_some());
            r.reading = None;
            return;
        }
        if rng.chance(5) {
            let _ = self.conn.read_body(id).expect("read_body");
            return;
        }
        if strict && !r.body_ended {
            if r.reading.is_none() && self.conn.read(id, u64::MAX) == Some(ReadStatus::Wait) {
                r.reading = Some((u64::MAX, r.held));
            }
            r.held = 0;
            return;
        }
        if !strict && rng.chance(3) {
            self.conn.discard(id);
            r.discarded = !r.body_ended;
            r.held = 0;
            r.reading = None;
            return;
        }
        if !strict && rng.chance(2) {
            self.conn.abort(id);
            r.done = true;
            return;
        }
        if r.waiting {
            return;
        }
        match r.streaming {
            None => {
                if rng.chance(10) {
                    let s = self.conn.send_headers(id, &[(b":status", b"103"), (b"link", b"</a>")], false);
                    assert!(s.is_ok());
                    return;
                }
                let status: &[u8] = match rng.below(10) {
                    0 => b"204",
                    1 => b"304",
                    2 => b"404",
                    _ => b"200",
                };
                let len = rng.below(3000);
                // Strict: a length for HTTP/1.0, so that the connection is kept.
                let with_length = rng.chance(50) || (strict && r.http10);
                let len_s = len.to_string();
                let mut fields: Vec<(&[u8], &[u8])> = vec![(b":status", status)];
                if with_length {
                    fields.push((b"content-length", len_s.as_bytes()));
                }
                let end = with_length && len == 0;
                if self.conn.send_headers(id, &fields, end).expect("send_headers") == Sent::StreamClosed {
                    r.cancelled = true;
                    return;
                }
                r.streaming = Some(with_length.then_some(len));
                r.done = end;
            }
            Some(remaining) => {
                let n = match remaining {
                    Some(rem) => rng.below(rem + 1),
                    None => rng.below(2000),
                };
                let end = match remaining {
                    Some(rem) => n == rem,
                    None => rng.chance(30),
                };
                let data = vec![b'r'; n as usize];
                if remaining.is_none() && end && rng.chance(30) {
                    self.conn.send_data(id, &data, false).expect("send_data");
                    self.conn.send_headers(id, &[(b"x-trailer", b"1")], true).expect("trailers");
                } else if rng.chance(50) {
                    match self.conn.send_body(id, &data, end).expect("send_body") {
                        Sent::Accepted { taken, blocked } => {
                            let taken = taken as u64;
                            assert!(taken <= n);
                            r.waiting = blocked;
                            r.streaming = Some(remaining.map(|rem| rem - taken));
                            r.done = end && taken == n;
                        }
                        Sent::StreamClosed => r.cancelled = true,
                        Sent::Queued(_) => panic!("send_body answers Accepted"),
                    }
                    return;
                } else {
                    match self.conn.send_data(id, &data, end).expect("send_data") {
                        Sent::Queued(q) if q >= self.cfg.max_send_queue && !end => r.waiting = true,
                        Sent::Queued(_) => {}
                        Sent::StreamClosed => r.cancelled = true,
                        Sent::Accepted { .. } => panic!("send_data answers Queued"),
                    }
                }
                r.streaming = Some(remaining.map(|rem| rem - n));
                r.done = end;
            }
        }
    }
}

#[derive(Default)]
struct Totals {
    cases: u64,
    mutated: u64,
    bytes: u64,
    requests: u64,
    responses: u64,
    refusals: BTreeMap<&'static str, u64>,
    upgrades: u64,
    continues: u64,
    cancelled: u64,
}

fn run_case(seed: u64, case: u64, totals: &mut Totals) {
    let mut rng = Rng(seed ^ case.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mutated = rng.chance(75);
    let cfg = random_config(&mut rng, !mutated);
    let generated = generate(&mut rng);
    let mut bytes = generated.bytes.clone();
    if mutated {
        mutate(&mut rng, &mut bytes);
    }
    let strict = !mutated;
    let start = Instant::now();
    let mut c = Case {
        conn: Connection::new(cfg.clone(), start).unwrap(),
        now: start,
        cfg,
        reqs: BTreeMap::new(),
        last_id: 0,
        written: Vec::new(),
        rejected: 0,
        last_refusal: None,
        upgraded: false,
    };
    let max_read = 1 + rng.below(MAX_READ as u64) as usize;
    let trace = std::env::var("H2FLOW_H1_FUZZ_TRACE").is_ok();
    if trace {
        println!(
            "config {:?}\nmax_read {max_read}, mutated {mutated}\ninput {:?}",
            c.cfg,
            String::from_utf8_lossy(&bytes)
        );
    }
    let mut sent = 0;
    let mut steps = 0;
    while steps < 20_000 {
        steps += 1;
        let roll = rng.below(100);
        if roll < 40 && c.conn.wants_input() && sent < bytes.len() {
            let n = (1 + rng.below(max_read as u64) as usize).min(bytes.len() - sent);
            let input = &bytes[sent..sent + n];
            sent += n;
            if trace {
                println!("recv {n} (buffered {}, held {})", c.conn.buffered(), c.conn.held_input());
            }
            if let Err(e) = c.conn.recv(input, c.now) {
                c.rejected += 1;
                c.last_refusal = Some(e);
            }
            c.events(input);
        } else if roll < 75 {
            c.act(&mut rng, strict);
            c.events(&[]);
        } else if roll < 92 {
            c.flush();
        } else if roll < 99 {
            c.now += Duration::from_millis(if strict { rng.below(5) } else { rng.below(3000) });
            if let Err(e) = c.conn.check_timeouts(c.now) {
                c.rejected += 1;
                c.last_refusal = Some(e);
            }
            c.events(&[]);
        } else if !strict && rng.chance(20) {
            c.conn.shutdown();
            c.events(&[]);
        }
        if trace {
            println!(
                "step {steps} roll {roll}: {:?} buffered {} held {}",
                c.conn,
                c.conn.buffered(),
                c.conn.held_input()
            );
        }
        c.check(max_read);
        let idle = c.reqs.values().all(|r| r.done || r.cancelled);
        let settled = idle && !c.conn.has_output() && !c.conn.has_pending_input();
        if settled && (sent == bytes.len() || c.conn.is_closing()) {
            break;
        }
    }
    c.flush();
    let heads: Vec<bool> = c.reqs.values().filter(|r| !r.cancelled).map(|r| r.head).collect();
    let (finals, truncated) = check_output(&c.written, &heads).unwrap_or_else(|e| {
        panic!("invalid output ({e}), heads {heads:?}: {:?}", String::from_utf8_lossy(&c.written))
    });
    assert!(!truncated || c.conn.is_closing(), "a response was cut short on a connection that stays open");
    if strict {
        assert_eq!(
            c.rejected,
            0,
            "valid input refused: {:?} {:?}",
            c.last_refusal,
            String::from_utf8_lossy(&bytes)
        );
        assert!(steps < 20_000, "stalled: {:?}", c.conn);
        let expected = &generated.bodies;
        assert_eq!(c.reqs.len(), expected.len(), "every request announced");
        for (i, (id, r)) in c.reqs.iter().enumerate() {
            assert_eq!(*id, i as u64 + 1);
            assert!(r.body_ended, "request {id}: body ended");
            assert_eq!(r.body, expected[i], "request {id}: body intact");
        }
        if !c.upgraded {
            assert_eq!(finals, expected.len(), "every request answered");
        }
    }
    let st = c.conn.stats();
    totals.cases += 1;
    totals.mutated += mutated as u64;
    totals.bytes += sent as u64;
    totals.requests += st.requests;
    totals.responses += finals as u64;
    totals.upgrades += st.upgrades;
    totals.continues += st.continues_sent;
    totals.cancelled += st.cancelled;
    for kind in h2flow_core::http1::Reject::ALL {
        if st.rejected(kind) > 0 {
            *totals.refusals.entry(kind.name()).or_default() += st.rejected(kind);
        }
    }
}

#[test]
fn http1_fuzz_soak() {
    let secs: f64 =
        std::env::var("H2FLOW_H1_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SECS);
    let seed = match std::env::var("H2FLOW_H1_FUZZ_SEED").ok().as_deref() {
        None => DEFAULT_SEED,
        Some("random") => {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            t.as_nanos() as u64 ^ (std::process::id() as u64) << 32
        }
        Some(hex) => u64::from_str_radix(hex.trim_start_matches("0x"), 16).expect("hex seed"),
    };
    let only: Option<u64> = std::env::var("H2FLOW_H1_FUZZ_CASE").ok().and_then(|s| s.parse().ok());
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut totals = Totals::default();
    let mut case = only.unwrap_or(0);
    loop {
        if catch_unwind(AssertUnwindSafe(|| run_case(seed, case, &mut totals))).is_err() {
            panic!("case {case} failed: replay with H2FLOW_H1_FUZZ_SEED={seed:x} H2FLOW_H1_FUZZ_CASE={case}");
        }
        case += 1;
        if only.is_some() || Instant::now() >= deadline {
            break;
        }
    }
    let t = &totals;
    println!(
        "http1 fuzz: seed {seed:x}, {} cases ({} mutated), {} bytes fed, {} requests, {} responses parsed, \
         {} upgrades, {} 100-continues, {} cancelled\nrefusals: {:?}",
        t.cases,
        t.mutated,
        t.bytes,
        t.requests,
        t.responses,
        t.upgrades,
        t.continues,
        t.cancelled,
        t.refusals
    );
    assert!(only.is_some() || t.cases > 100, "only {} cases ran", t.cases);
}
