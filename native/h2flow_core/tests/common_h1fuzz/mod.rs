//! Inputs and output checks for the HTTP/1.1 soak (tests/http1_fuzz.rs): valid client byte
//! streams with the bodies they carry, mutations, configurations, and a lenient parser of what
//! the engine wrote.
#![allow(dead_code)]

use h2flow_core::http1::Config;

use crate::common_http1::{find, Rng};

pub struct Generated {
    pub bytes: Vec<u8>,
    /// Expected body per request id (1-based order).
    pub bodies: Vec<Vec<u8>>,
}

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len() as u64) as usize]
}

fn random_body(rng: &mut Rng) -> Vec<u8> {
    let n = match rng.below(4) {
        0 => 0,
        1 => rng.below(20),
        2 => rng.below(3000),
        _ => rng.below(300),
    };
    (0..n).map(|_| rng.below(256) as u8).collect()
}

pub fn generate(rng: &mut Rng) -> Generated {
    let mut bytes = Vec::new();
    let mut bodies = Vec::new();
    if rng.chance(5) {
        // An h2c upgrade (only the first request may upgrade), then the start of the HTTP/2
        // connection preface.
        bytes.extend(
            b"GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
              HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        );
        return Generated { bytes, bodies };
    }
    let count = 1 + rng.below(8);
    for i in 0..count {
        if rng.chance(10) {
            bytes.extend(b"\r\n");
        }
        let http10 = rng.chance(12);
        let method = pick(rng, &["GET", "GET", "HEAD", "POST", "PUT", "OPTIONS"]);
        let target = match rng.below(10) {
            0 if method == "OPTIONS" => "*".to_string(),
            1 => format!("http://example.com:8080/abs/{i}?x=1"),
            _ => format!("/path/{i}?q={}", rng.below(1000)),
        };
        let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        let mut head = format!("{method} {target} {version}\r\n");
        if !http10 || rng.chance(50) {
            head.push_str(pick(
                rng,
                &["Host: example.com\r\n", "host: a:1\r\n", "HOST: [::1]:8080\r\n", "Host:\r\n"],
            ));
        }
        for _ in 0..rng.below(4) {
            head.push_str(&format!("X-F{}: v{} \t\r\n", rng.below(100), rng.below(1_000_000)));
        }
        let last = i + 1 == count;
        let mut keep = true;
        if http10 {
            if rng.chance(60) && !last {
                head.push_str("Connection: keep-alive\r\n");
            } else {
                keep = false;
            }
        } else if last && rng.chance(20) {
            head.push_str("Connection: close\r\n");
        }
        let body = if method == "POST" || method == "PUT" { random_body(rng) } else { Vec::new() };
        let chunked = !http10 && !body.is_empty() && rng.chance(50);
        if !body.is_empty() && rng.chance(20) && !http10 {
            head.push_str("Expect: 100-continue\r\n");
        }
        if chunked {
            head.push_str("Transfer-Encoding: chunked\r\n");
        } else if !body.is_empty() || rng.chance(30) {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        bytes.extend(head.as_bytes());
        if chunked {
            let mut rest = &body[..];
            while !rest.is_empty() {
                let n = (1 + rng.below(700) as usize).min(rest.len());
                let zeros = if rng.chance(10) { "00" } else { "" };
                let ext = match rng.below(6) {
                    0 => ";a=b",
                    1 => " ; name = \"quoted \\\" value\"",
                    2 => ";flag",
                    _ => "",
                };
                bytes.extend(format!("{zeros}{n:x}{ext}\r\n").as_bytes());
                bytes.extend(&rest[..n]);
                bytes.extend(b"\r\n");
                rest = &rest[n..];
            }
            bytes.extend(b"0\r\n");
            if rng.chance(30) {
                bytes.extend(b"Checksum: 1\r\nX-T: two\r\n");
            }
            bytes.extend(b"\r\n");
        } else {
            bytes.extend(&body);
        }
        bodies.push(body);
        if !keep {
            break;
        }
    }
    Generated { bytes, bodies }
}

pub fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    const BYTES: &[u8] = b"\r\n \t:;=\",0fx\x00\x7f\xff-+";
    const STRINGS: &[&str] = &[
        "\r\n",
        "Transfer-Encoding: chunked\r\n",
        "Content-Length: 3\r\n",
        "Content-Length: 99999\r\n",
        "0\r\n\r\n",
        "Expect: 100-continue\r\n",
        "Connection: close\r\n",
        "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABk\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        " ",
        "\n",
    ];
    for _ in 0..1 + rng.below(4) {
        if bytes.is_empty() {
            return;
        }
        let at = rng.below(bytes.len() as u64) as usize;
        match rng.below(6) {
            0 => bytes[at] = rng.below(256) as u8,
            1 => bytes[at] = BYTES[rng.below(BYTES.len() as u64) as usize],
            2 => {
                let end = (at + 1 + rng.below(8) as usize).min(bytes.len());
                bytes.drain(at..end);
            }
            3 => {
                let end = (at + 1 + rng.below(40) as usize).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            4 => {
                let s = STRINGS[rng.below(STRINGS.len() as u64) as usize];
                bytes.splice(at..at, s.bytes());
            }
            _ => bytes.truncate(at),
        }
    }
}

/// Small limits half of the time; for an unmutated stream only those that must not refuse it.
pub fn random_config(rng: &mut Rng, strict: bool) -> Config {
    let mut cfg = Config::default();
    if rng.chance(50) {
        cfg.max_body_buffer = 1 + rng.below(4096);
        cfg.max_pipelined = 1 + rng.below(4) as usize;
        cfg.max_send_queue = 1 + rng.below(2048);
        cfg.max_discard = rng.below(2000);
    }
    if !strict && rng.chance(50) {
        cfg.max_chunk_line = 8 + rng.below(64) as usize;
        cfg.max_headers = 2 + rng.below(10) as usize;
        cfg.max_request_line = 40 + rng.below(100) as usize;
        cfg.max_header_section = cfg.max_request_line + rng.below(600) as usize;
        cfg.max_upgrade_body = rng.below(100);
        cfg.h2c_upgrade = rng.chance(70);
    }
    cfg
}

/// Parses the output as HTTP/1.1 responses; returns the final responses and whether the last
/// one was cut short.
pub fn check_output(mut out: &[u8], heads: &[bool]) -> Result<(usize, bool), String> {
    let mut finals = 0;
    while !out.is_empty() {
        let mut slots = [httparse::EMPTY_HEADER; 128];
        let mut r = httparse::Response::new(&mut slots);
        let n = match r.parse(out).map_err(|e| format!("invalid head: {e}"))? {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => return Ok((finals, true)),
        };
        let status = r.code.unwrap_or(0);
        let header =
            |name: &str| r.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
        let chunked = header("transfer-encoding").is_some();
        let length =
            header("content-length").map(|v| std::str::from_utf8(v).unwrap().parse::<usize>().unwrap());
        if chunked && length.is_some() {
            return Err("both framings".into());
        }
        out = &out[n..];
        if status == 101 {
            return Ok((finals, false));
        }
        if status < 200 {
            continue;
        }
        let head = heads.get(finals).copied().unwrap_or(false);
        finals += 1;
        if head || status == 204 || status == 304 {
            continue;
        }
        if chunked {
            loop {
                let Some(e) = find(out, b"\r\n") else { return Ok((finals, true)) };
                let size = usize::from_str_radix(std::str::from_utf8(&out[..e]).unwrap(), 16)
                    .map_err(|_| format!("chunk size {:?}", String::from_utf8_lossy(&out[..e])))?;
                out = &out[e + 2..];
                if size == 0 {
                    // The trailer section ends with an empty line.
                    let end = if out.starts_with(b"\r\n") {
                        Some(2)
                    } else {
                        find(out, b"\r\n\r\n").map(|t| t + 4)
                    };
                    let Some(end) = end else { return Ok((finals, true)) };
                    out = &out[end..];
                    break;
                }
                if out.len() < size + 2 {
                    return Ok((finals, true));
                }
                if &out[size..size + 2] != b"\r\n" {
                    return Err("chunk not followed by CRLF".into());
                }
                out = &out[size + 2..];
            }
        } else if let Some(len) = length {
            if out.len() < len {
                return Ok((finals, true));
            }
            out = &out[len..];
        } else {
            out = &[];
        }
    }
    Ok((finals, false))
}
