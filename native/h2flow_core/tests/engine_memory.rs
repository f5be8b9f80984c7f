//! Heap held by an idle connection: the engine's share of "memory per idle connection".
//!
//! A counting global allocator measures the bytes live after many connections complete the
//! handshake and go quiet; the bound keeps a regression (a table or buffer allocated up front)
//! from slipping in unnoticed.

mod common_engine;
use common_engine::*;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn an_idle_connection_after_the_handshake_and_one_request_holds_little_heap() {
    const N: usize = 200;
    let before = LIVE.load(Ordering::Relaxed);
    let mut conns = Vec::with_capacity(N);
    let vec_bytes = LIVE.load(Ordering::Relaxed) - before;
    for _ in 0..N {
        let mut h = Harness::established(default_config());
        h.recv(&get(1)).expect("request");
        h.conn.send_headers(1, &[(b":status", b"200")], false).expect("headers");
        h.conn.send_data(1, b"hello", true).expect("data");
        h.flush();
        h.written = Vec::new();
        conns.push(h);
    }
    let per_conn = (LIVE.load(Ordering::Relaxed) - before - vec_bytes) as usize / N;
    let inline = std::mem::size_of::<h2flow_core::Connection>();
    eprintln!("idle connection: {per_conn} bytes of heap besides the {inline} bytes of the struct");
    // 728 bytes measured (HPACK tables, the stream maps' first allocation, the closed-stream
    // ring); a buffer allocated up front per connection would show here.
    assert!(per_conn <= 2048, "{per_conn} bytes of heap per idle connection");
    assert!(inline <= 2048, "Connection is {inline} bytes");
    drop(conns);
}
