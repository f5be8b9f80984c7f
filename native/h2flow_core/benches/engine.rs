//! The engine's request path, in requests per second: 100 concurrent requests on one connection
//! (70 GETs, 30 POSTs of 1 KiB, as h2load sends them: Huffman-coded, dynamic-table references
//! after the first), fed in socket-sized reads; every request is answered with `send_headers` +
//! `send_data` (a small body), request bodies are consumed, and everything goes out in one
//! `flush` per read, as the connection process does.

mod common;

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use h2flow_core::{Config, Connection, Event, Sent};

use common::*;

const REQUESTS: usize = 100;
const POST_BODY: usize = 1024;

fn burst() -> Vec<u8> {
    let mut enc = ClientEncoder::new(true);
    let body = vec![b'x'; POST_BODY];
    let mut out = Vec::new();
    for i in 0..REQUESTS {
        let id = 1 + 2 * i as u32;
        if i % 10 < 7 {
            headers(&mut out, id, &enc.encode(&h2load_request("GET", "/", None)), true);
        } else {
            let block = enc.encode(&h2load_request("POST", "/echo", Some(POST_BODY)));
            headers(&mut out, id, &block, false);
            data(&mut out, id, &body, true);
        }
    }
    out
}

fn respond(conn: &mut Connection, id: u32, body: &[u8]) {
    let len = body.len().to_string();
    let fields: [(&[u8], &[u8]); 3] =
        [(b":status", b"200"), (b"content-type", b"text/plain"), (b"content-length", len.as_bytes())];
    conn.send_headers(id, &fields, false).expect("a valid response");
    let sent = conn.send_data(id, body, true).expect("a valid response");
    assert!(matches!(sent, Sent::Queued(0)), "the windows take the whole small body");
}

/// Serves every request of the reads; returns the bytes written.
fn serve(mut conn: Connection, reads: &[&[u8]]) -> usize {
    let now = Instant::now();
    let mut events: Vec<Event> = Vec::new();
    let mut out = Vec::new();
    let mut written = 0;
    for read in reads {
        conn.recv(read, now).expect("valid requests");
        events.extend(conn.drain_events());
        for event in events.drain(..) {
            match event {
                Event::Headers { stream_id, end_stream: true, .. } => respond(&mut conn, stream_id, b"hello"),
                Event::Data { stream_id, data, end_stream } => {
                    let n = black_box(data.resolve(read)).len() as u64;
                    conn.consume(stream_id, n).expect("consumed what was received");
                    if end_stream {
                        respond(&mut conn, stream_id, b"1024");
                    }
                }
                _ => {}
            }
        }
        conn.flush_into(now, &mut out);
        written += out.len();
        out.clear();
    }
    assert_eq!(conn.open_streams(), 0, "every request was answered");
    written
}

fn bench(c: &mut Criterion) {
    let input = burst();
    let reads = chunks(&input, READ_CHUNK);
    eprintln!("engine: {REQUESTS} requests in {} bytes, {} read(s)", input.len(), reads.len());
    assert!(serve(open_connection(Config::default()), &reads) > 0);

    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(REQUESTS as u64));
    g.bench_function("recv_flush_100_mixed_requests", |b| {
        b.iter_batched(
            || open_connection(Config::default()),
            |conn| serve(conn, &reads),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
