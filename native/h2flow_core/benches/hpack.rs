//! Decoding request header blocks (HPACK, RFC 7541), in header blocks per second: a browser's
//! first request on a fresh connection (every field a literal that enters the dynamic table),
//! and a page load of 100 requests on one connection (mostly dynamic-table references, a new
//! `:path` literal each), each with and without Huffman-coded strings.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use h2flow_core::hpack::{Decoder, HeaderList};

use common::*;

const PAGE_LOAD: usize = 100;

/// The requests of a page load: the document, then its subresources.
fn page_load() -> Vec<Vec<(String, String)>> {
    (0..PAGE_LOAD)
        .map(|i| {
            let path = match i {
                0 => "/".to_string(),
                i if i % 3 == 0 => format!("/static/css/site-{i:03}.css?v=4f2a9c1e"),
                i if i % 3 == 1 => format!("/static/js/chunk-{i:03}.8b3d41e7.js"),
                i => format!("/static/img/photo-{i:03}.webp"),
            };
            let mut fields = browser_request(&path);
            if i > 0 {
                // Subresource fetches differ from the navigation in a few fields.
                for (name, value) in fields.iter_mut() {
                    match name.as_str() {
                        "sec-fetch-mode" => *value = "no-cors".to_string(),
                        "sec-fetch-dest" => *value = "script".to_string(),
                        "accept" => *value = "*/*".to_string(),
                        "priority" => *value = "u=1".to_string(),
                        _ => {}
                    }
                }
                fields.retain(|(n, _)| n != "sec-fetch-user" && n != "upgrade-insecure-requests");
            }
            fields
        })
        .collect()
}

fn decoder() -> Decoder {
    Decoder::new(4096, 64 * 1024)
}

fn decode_blocks(blocks: &[Vec<u8>], list: &mut HeaderList) -> usize {
    let mut d = decoder();
    let mut fields = 0;
    for block in blocks {
        d.decode(black_box(block), list).expect("a valid block");
        fields += list.len();
    }
    fields
}

fn bench(c: &mut Criterion) {
    let requests = page_load();
    let mut g = c.benchmark_group("hpack");
    for huffman in [false, true] {
        let mut enc = ClientEncoder::new(huffman);
        let blocks: Vec<Vec<u8>> = requests.iter().map(|r| enc.encode(r)).collect();

        // The blocks decode to exactly the fields they were made from.
        let mut d = decoder();
        let mut list = HeaderList::new();
        for (block, request) in blocks.iter().zip(&requests) {
            d.decode(block, &mut list).expect("a valid block");
            let got: Vec<(&[u8], &[u8])> = list.iter().collect();
            let want: Vec<(&[u8], &[u8])> =
                request.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
            assert_eq!(got, want);
        }

        let coding = if huffman { "huffman" } else { "raw" };
        let page_bytes: usize = blocks.iter().map(Vec::len).sum();
        eprintln!(
            "hpack/{coding}: first request {} fields in {} bytes; page load of {PAGE_LOAD} \
             requests {page_bytes} bytes",
            requests[0].len(),
            blocks[0].len()
        );

        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("first_request_{coding}"), |b| {
            b.iter(|| decode_blocks(&blocks[..1], &mut list))
        });
        g.throughput(Throughput::Elements(PAGE_LOAD as u64));
        g.bench_function(format!("page_load_{PAGE_LOAD}_{coding}"), |b| {
            b.iter(|| decode_blocks(&blocks, &mut list))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
