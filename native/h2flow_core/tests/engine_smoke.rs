mod common_engine;
use common_engine::*;

#[test]
fn preface_settings_and_a_get() {
    let mut h = Harness::new(default_config());
    let first = h.flush();
    assert!(matches!(first[0], Out::Settings { ack: false, .. }));
    assert_eq!(first[1], Out::WindowUpdate { stream_id: 0, increment: 1024 * 1024 - 65_535 });
    let mut input = PREFACE.to_vec();
    input.extend(settings(&[]));
    input.extend(headers(1, &request_fields("GET", "/"), true));
    let events = h.recv(&input).unwrap();
    assert!(matches!(&events[0], Ev::Headers { stream_id: 1, end_stream: true, .. }), "{events:?}");
    h.conn.send_headers(1, &[(b":status", b"200")], false).unwrap();
    h.conn.send_data(1, b"hello", true).unwrap();
    let out = h.flush();
    assert_eq!(out[0], Out::Settings { ack: true, params: vec![] });
    assert!(matches!(out[1], Out::Headers { stream_id: 1, end_stream: false, .. }));
    assert_eq!(out[2], Out::Data { stream_id: 1, len: 5, end_stream: true });
    assert_eq!(h.conn.open_streams(), 0);
}

#[test]
fn upload_64_by_16k_needs_no_window_update() {
    let mut h = Harness::established(default_config());
    let body = vec![7u8; 16 * 1024];
    let mut input = Vec::new();
    for i in 0..64u32 {
        let id = 2 * i + 1;
        let mut f = request_fields("POST", "/echo");
        let len = body.len().to_string();
        f.push(("content-length", &len));
        input.extend(headers(id, &f, false));
        input.extend(data(id, &body, true));
    }
    let events = h.recv(&input).unwrap();
    let datas = events.iter().filter(|e| matches!(e, Ev::Data { end_stream: true, .. })).count();
    assert_eq!(datas, 64);
    assert_eq!(h.conn.buffered(), 64 * 16 * 1024);
    for i in 0..64u32 {
        h.conn.consume(2 * i + 1, 16 * 1024).unwrap();
    }
    h.flush();
    assert_eq!(h.conn.buffered(), 0);
    let (c, s) = h.window_updates_written();
    assert_eq!(s, 0);
    assert!(c <= 2, "connection window updates: {c}");
}
