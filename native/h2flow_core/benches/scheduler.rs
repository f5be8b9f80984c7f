//! The WINDOW_UPDATE scheduler with 1,000 receiving streams: the application consumes what each
//! stream buffered, then one `flush` decides the credits. Two cases: 1 KiB per stream (only the
//! connection credit is due) and 128 KiB per stream (half the default stream window: a credit
//! is due on every stream, 1,001 WINDOW_UPDATEs).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use h2flow_core::{Scheduler, SchedulerConfig};

const STREAMS: u32 = 1000;

/// A scheduler whose 1,000 streams each buffered `per_stream` bytes.
fn loaded(per_stream: u32) -> Scheduler {
    // A connection window 1.5 times what the streams buffer: it takes all of it, and the
    // consumed bytes pass the half-window threshold, so the connection credit is due too.
    let window = (per_stream as u64 * STREAMS as u64 * 3 / 2).max(1 << 20) as u32;
    let cfg = SchedulerConfig {
        initial_connection_window: window,
        max_connection_window: window,
        ..SchedulerConfig::default()
    };
    let mut s = Scheduler::new(cfg);
    let _ = s.take_initial_credit();
    for i in 0..STREAMS {
        let id = 1 + 2 * i;
        s.open_stream(id, None, false);
        s.on_data(id, per_stream, per_stream, false).expect("within the windows");
    }
    s
}

fn consume_flush(mut s: Scheduler, per_stream: u32) -> (Scheduler, usize) {
    for i in 0..STREAMS {
        s.consume(1 + 2 * i, per_stream as u64).expect("consumed what was received");
    }
    let mut credits = 0;
    s.flush(|id, increment| {
        black_box((id, increment));
        credits += 1;
    });
    (s, credits)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("scheduler");
    g.throughput(Throughput::Elements(STREAMS as u64));
    for (name, per_stream, credits) in [
        ("consume_flush_1000_streams_1KiB", 1024, 1),
        ("consume_flush_1000_streams_128KiB", 128 * 1024, 1001),
    ] {
        assert_eq!(consume_flush(loaded(per_stream), per_stream).1, credits, "{name}");
        g.bench_function(name, |b| {
            b.iter_batched(|| loaded(per_stream), |s| consume_flush(s, per_stream), BatchSize::SmallInput)
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
