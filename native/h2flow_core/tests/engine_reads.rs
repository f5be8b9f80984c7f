//! Reads (scheduler rule 8): the engine decides what a waiting reader gets and credits it at
//! hand-off, with `cowboy_req:read_body/2`'s semantics; a discarded body is credited as it
//! arrives and ended with RST_STREAM NO_ERROR once the response is complete (RFC 9113 8.1).

mod common_engine;
use common_engine::*;
use h2flow_core::scheduler::ReadStatus;
use h2flow_core::ErrorCode;

const KIB: usize = 1024;

fn datas_of(ev: &[Ev], id: u32) -> usize {
    ev.iter()
        .filter_map(|e| match e {
            Ev::Data { stream_id, data, .. } if *stream_id == id => Some(data.len()),
            _ => None,
        })
        .sum()
}

#[test]
fn a_read_takes_what_arrived_and_waits_for_more_until_its_length() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, None)).unwrap();
    let ev = h.recv(&data(1, &[1; 1000], false)).unwrap();
    // Reported, but not the application's yet: still counted against the windows.
    assert_eq!(datas_of(&ev, 1), 1000);
    assert_eq!(h.conn.buffered(), 1000);
    assert_eq!(h.conn.read(1, 5000), Some(ReadStatus::Wait));
    assert_eq!(h.conn.buffered(), 0, "handed over: consumed");
    let ev = h.recv(&data(1, &[2; 3000], false)).unwrap();
    assert_eq!(datas_of(&ev, 1), 3000);
    assert!(!ev.iter().any(|e| matches!(e, Ev::ReadDone { .. })), "4000 < 5000: {ev:?}");
    assert_eq!(h.conn.buffered(), 0, "a waiting read takes bytes as they arrive");
    let ev = h.recv(&data(1, &[3; 2000], false)).unwrap();
    assert_eq!(ev.last(), Some(&Ev::ReadDone { stream_id: 1, fin: false }), "{ev:?}");
    // No read: bytes stay buffered, and a read of 100 takes all of them at once (as Cowboy).
    h.recv(&data(1, &[4; 700], false)).unwrap();
    assert_eq!(h.conn.buffered(), 700);
    assert_eq!(h.conn.read(1, 100), Some(ReadStatus::More));
    assert_eq!(h.conn.buffered(), 0);
    // The end of the body completes a waiting read.
    assert_eq!(h.conn.read(1, 8_000_000), Some(ReadStatus::Wait));
    let ev = h.recv(&data(1, b"end", true)).unwrap();
    assert_eq!(ev.last(), Some(&Ev::ReadDone { stream_id: 1, fin: true }), "{ev:?}");
    // After the end, a read says so at once.
    assert_eq!(h.conn.read(1, 10), Some(ReadStatus::Fin));
}

#[test]
fn trailers_end_a_waiting_read_and_a_period_ends_it_with_what_it_has() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, None)).unwrap();
    assert_eq!(h.conn.read(1, 8_000_000), Some(ReadStatus::Wait));
    h.recv(&data(1, &[1; 10], false)).unwrap();
    assert!(h.conn.read_timeout(1), "a registered read");
    assert!(!h.conn.read_timeout(1), "it completed");
    // The next read waits again; trailers end the body.
    assert_eq!(h.conn.read(1, 8_000_000), Some(ReadStatus::Wait));
    let ev = h.recv(&headers(1, &[("x-checksum", "1")], true)).unwrap();
    assert!(ev.contains(&Ev::ReadDone { stream_id: 1, fin: true }), "{ev:?}");
    // A request without a body, a reset stream and a stream that never was.
    h.recv(&get(3)).unwrap();
    assert_eq!(h.conn.read(3, 10), Some(ReadStatus::Fin));
    h.recv(&post(5, None)).unwrap();
    h.recv(&rst_stream(5, ErrorCode::CANCEL.0)).unwrap();
    assert_eq!(h.conn.read(5, 10), None);
    assert_eq!(h.conn.read(7, 10), None);
}

#[test]
fn a_waiting_reader_is_credited_at_hand_off_and_never_stalls() {
    // A 1 MiB body read with the default length: the client gets window as the reader takes
    // the bytes, without the application consuming anything itself.
    let mut c = Client::new(Harness::established(default_config()));
    let id = c.open_post(Some(1024 * KIB));
    c.deliver();
    assert_eq!(c.h.conn.read(id, 8_000_000), Some(ReadStatus::Wait));
    let mut done = false;
    for _ in 0..100 {
        c.send_some(64 * KIB, false);
        let input = std::mem::take(&mut c.input);
        let ev = c.h.recv(&input).unwrap();
        if ev.contains(&Ev::ReadDone { stream_id: id, fin: true }) {
            done = true;
            break;
        }
        let out = c.h.flush();
        c.read(&out);
    }
    assert!(done, "the upload stalled");
    assert_eq!(c.h.conn.buffered(), 0);
}

#[test]
fn a_discarded_body_is_credited_as_it_arrives_and_reset_after_the_response() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, None)).unwrap();
    h.recv(&body(1, 200 * KIB, false)).unwrap();
    assert_eq!(h.conn.buffered(), 200 * KIB as u64);
    h.conn.discard(1);
    assert_eq!(h.conn.buffered(), 0);
    let ev = h.recv(&body(1, 50 * KIB, false)).unwrap();
    assert_eq!(datas_of(&ev, 1), 0, "no Data for a discarded body: {ev:?}");
    assert_eq!(h.conn.buffered(), 0);
    let out = h.flush();
    assert!(window_updates(&out).iter().any(|&(id, _)| id == 1), "the peer keeps its window: {out:?}");
    // The response ends: the rest of the body is not wanted.
    h.conn.send_headers(1, &[(b":status", b"200")], true).unwrap();
    assert_eq!(resets(&h.flush()), vec![(1, ErrorCode::NO_ERROR.0)]);
}

#[test]
fn discarding_after_the_response_ended_resets_at_once() {
    let mut h = Harness::established(default_config());
    h.recv(&post(1, None)).unwrap();
    h.conn.send_headers(1, &[(b":status", b"204")], true).unwrap();
    h.flush();
    h.conn.discard(1);
    assert_eq!(resets(&h.flush()), vec![(1, ErrorCode::NO_ERROR.0)]);
    // A body that ended is not reset.
    h.recv(&post(3, None)).unwrap();
    h.recv(&data(3, b"x", true)).unwrap();
    h.conn.discard(3);
    h.conn.send_headers(3, &[(b":status", b"204")], true).unwrap();
    assert!(resets(&h.flush()).is_empty());
}

/// RFC 9110 10.1.1: a client that sent `expect: 100-continue` may wait for `100 Continue`
/// before it sends the body; the first read sends it (as Cowboy's `read_body` does), and only
/// while no response has gone out.
#[test]
fn the_first_read_of_a_request_expecting_100_continue_sends_100() {
    let mut h = Harness::established(default_config());
    let fields: Vec<(String, String)> =
        [post_fields("/", "5"), vec![("expect".into(), "100-continue".into())]].concat();
    h.recv(&headers_owned(1, &fields, false)).unwrap();
    assert!(h.flush().is_empty(), "nothing before the application reads");
    assert_eq!(h.conn.read(1, 8_000_000), Some(ReadStatus::Wait));
    let out = h.flush();
    assert!(out.iter().any(|f| matches!(f, Out::Headers { stream_id: 1, end_stream: false, .. })), "{out:?}");
    let blocks = ResponseDecoder::new().decode(&out);
    assert_eq!(blocks.len(), 1, "{out:?}");
    assert_eq!(blocks[0].1, vec![(":status".to_string(), "100".to_string())]);
    // Once only.
    h.recv(&data(1, b"he", false)).unwrap();
    h.conn.read(1, 8_000_000);
    assert!(h.flush().iter().all(|f| !matches!(f, Out::Headers { .. })));
    // A response that went out before the first read: no 100.
    h.recv(&headers_owned(3, &fields, false)).unwrap();
    h.conn.send_headers(3, &[(b":status", b"413")], true).unwrap();
    h.flush();
    h.conn.read(3, 10);
    assert!(h.flush().iter().all(|f| !matches!(f, Out::Headers { .. })));
}
