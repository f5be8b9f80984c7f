//! Decoding a DATA-heavy stream: 16 MiB of request body in 16 KiB DATA frames (the default
//! SETTINGS_MAX_FRAME_SIZE), through `frame::decode` alone and through `Connection::recv` with
//! a consumer that hands every byte back at once and flushes after each read, as the
//! connection process does. Target (issue 6): at least 2 GB/s.

mod common;

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use h2flow_core::frame::{self, Frame, DEFAULT_MAX_FRAME_SIZE};
use h2flow_core::{Config, Connection};

use common::*;

const BODY: usize = 16 * 1024 * 1024;
const FRAME: usize = 16 * 1024;
/// 16 uploads of 1 MiB, one after the other: each fits the default stream window's credit
/// cycle, and together they cross the 1 MiB connection window many times.
const STREAMS: usize = 16;

fn data_frames() -> Vec<u8> {
    let payload = vec![0x5a; FRAME];
    let mut out = Vec::with_capacity(BODY + BODY / FRAME * frame::HEADER_LEN);
    for i in 0..BODY / FRAME {
        data(&mut out, 1, &payload, i == BODY / FRAME - 1);
    }
    out
}

/// The client's bytes after the handshake: per stream a POST with a content-length, then its
/// body in 16 KiB DATA frames.
fn uploads() -> Vec<u8> {
    let mut enc = ClientEncoder::new(true);
    let per_stream = BODY / STREAMS;
    let payload = vec![0x5a; FRAME];
    let mut out = Vec::new();
    for s in 0..STREAMS {
        let id = 1 + 2 * s as u32;
        let block = enc.encode(&h2load_request("POST", "/echo", Some(per_stream)));
        headers(&mut out, id, &block, false);
        for i in 0..per_stream / FRAME {
            data(&mut out, id, &payload, i == per_stream / FRAME - 1);
        }
    }
    out
}

/// Cuts `input` after every `per_read` frames.
fn frame_aligned(input: &[u8], per_read: usize) -> Vec<&[u8]> {
    let mut ends = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        pos += frame::frame_len(&input[pos..]).expect("whole frames");
        ends.push(pos);
    }
    let mut start = 0;
    ends.chunks(per_read)
        .map(|group| {
            let end = group[group.len() - 1];
            let read = &input[start..end];
            start = end;
            read
        })
        .collect()
}

fn decode_all(buf: &[u8]) -> usize {
    let (mut pos, mut bytes) = (0, 0);
    while let Ok(Some((f, len))) = frame::decode(&buf[pos..], DEFAULT_MAX_FRAME_SIZE) {
        if let Frame::Data(d) = f {
            bytes += black_box(d.data).len();
        }
        pos += len;
    }
    bytes
}

/// Feeds the chunks to the connection, consuming and flushing after each as the server does.
fn receive(mut conn: Connection, chunks: &[&[u8]]) -> u64 {
    let now = Instant::now();
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut bytes = 0;
    for chunk in chunks {
        conn.recv(chunk, now).expect("a valid upload");
        bytes += consume_all(&mut conn, chunk, &mut events);
        conn.flush_into(now, &mut out);
        out.clear();
    }
    bytes
}

fn bench(c: &mut Criterion) {
    let frames = data_frames();
    assert_eq!(decode_all(&frames), BODY, "every DATA frame decodes");

    let input = uploads();
    // Socket-sized reads (frames straddle reads and are reassembled), and reads cut at frame
    // boundaries (four frames per read: every payload a range of the input, nothing copied).
    let cut = chunks(&input, READ_CHUNK);
    let aligned = frame_aligned(&input, 4);
    for variant in [&cut, &aligned] {
        assert_eq!(receive(open_connection(Config::default()), variant), BODY as u64);
    }

    let mut g = c.benchmark_group("data");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(frames.len() as u64));
    g.bench_function("frame_decode_16MiB", |b| b.iter(|| decode_all(black_box(&frames))));

    g.throughput(Throughput::Bytes(input.len() as u64));
    for (name, variant) in [("recv_16MiB_64KiB_reads", &cut), ("recv_16MiB_frame_aligned_reads", &aligned)] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || open_connection(Config::default()),
                |conn| receive(conn, variant),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
