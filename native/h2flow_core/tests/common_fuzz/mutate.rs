//! Mutators: frame-level edits (delete, duplicate, repeat, swap, splice from another stream,
//! lying lengths, other types, flags and stream ids, truncation), then byte-level ones.

use h2flow_core::frame::kind;

use super::*;

/// Breaks a valid stream: frame-level edits (delete, duplicate, repeat, swap, splice from
/// another stream, bad lengths, types, flags, stream ids, truncation), then byte-level ones.
pub fn mutate(rng: &mut Rng, frames: &[Vec<u8>], other: &[Vec<u8>]) -> Vec<u8> {
    let mut fr: Vec<Vec<u8>> = frames.to_vec();
    for _ in 0..rng.geometric(50, 8) {
        mutate_frames(rng, &mut fr, other);
    }
    let mut bytes = fr.concat();
    if rng.chance(40) {
        let other_bytes = other.concat();
        for _ in 0..rng.geometric(40, 6) {
            mutate_bytes(rng, &mut bytes, &other_bytes);
        }
    }
    bytes
}

fn mutate_frames(rng: &mut Rng, fr: &mut Vec<Vec<u8>>, other: &[Vec<u8>]) {
    // frames[0] is the preface (the server's first SETTINGS for a client); rarely touched.
    if fr.len() < 2 {
        fr.push(frame(kind::SETTINGS, 0, 0, &[]));
    }
    let n = fr.len() as u64;
    let i = rng.range(1, n - 1) as usize;
    match rng.below(16) {
        0 => {
            fr.remove(i);
        }
        1 => {
            let f = fr[i].clone();
            fr.insert(i, f);
        }
        2 => {
            // A flood of one frame.
            let f = fr[i].clone();
            let times = rng.pick(&[2, 10, 100, 1200]).min(1 + 400_000 / f.len().max(1));
            for _ in 0..times {
                fr.insert(i, f.clone());
            }
        }
        3 => {
            let j = rng.range(1, n - 1) as usize;
            fr.swap(i, j);
        }
        4 => {
            let f = fr.remove(i);
            let j = rng.range(1, fr.len() as u64) as usize;
            fr.insert(j.min(fr.len()), f);
        }
        5 if other.len() > 1 => {
            let j = rng.range(1, other.len() as u64 - 1) as usize;
            let k = (j + rng.range(1, 8) as usize).min(other.len());
            for (x, f) in other[j..k].iter().enumerate() {
                fr.insert(i + x, f.clone());
            }
        }
        6 => {
            // A length field that lies.
            let f = &mut fr[i];
            if f.len() >= 9 {
                let len = u32::from_be_bytes([0, f[0], f[1], f[2]]) as i64;
                let new = match rng.below(4) {
                    0 => len + rng.range(1, 3) as i64,
                    1 => len - rng.range(1, 3) as i64,
                    2 => rng.pick(&[0, 1, 16_384, 16_385, (1 << 24) - 1]),
                    _ => rng.below(1 << 24) as i64,
                };
                let b = (new.clamp(0, (1 << 24) - 1) as u32).to_be_bytes();
                f[..3].copy_from_slice(&b[1..]);
            }
        }
        7 => {
            if fr[i].len() >= 9 {
                fr[i][3] = if rng.chance(70) { rng.below(11) as u8 } else { rng.below(256) as u8 };
            }
        }
        8 => {
            if fr[i].len() >= 9 {
                fr[i][4] = match rng.below(3) {
                    0 => 0,
                    1 => 0xff,
                    _ => fr[i][4] ^ (1 << rng.below(8)),
                };
            }
        }
        9 => {
            if fr[i].len() >= 9 {
                let id = u32::from_be_bytes([fr[i][5], fr[i][6], fr[i][7], fr[i][8]]);
                let small = rng.below(20) as u32;
                let new = rng.pick(&[
                    0,
                    1,
                    2,
                    id.wrapping_add(2),
                    id.wrapping_sub(2),
                    id.wrapping_add(1),
                    0x7fff_ffff,
                    id | 0x8000_0000,
                    small,
                ]);
                fr[i][5..9].copy_from_slice(&new.to_be_bytes());
            }
        }
        10 => {
            // Truncate a frame, fixing up its length field or not.
            let cut = rng.below(fr[i].len() as u64 + 1) as usize;
            fr[i].truncate(cut);
            if cut >= 9 && rng.chance(50) {
                let b = ((cut - 9) as u32).to_be_bytes();
                fr[i][..3].copy_from_slice(&b[1..]);
            }
        }
        11 => {
            // Payload bytes: pad lengths, HPACK, setting values, increments.
            let f = &mut fr[i];
            if f.len() > 9 {
                for _ in 0..rng.geometric(50, 4) {
                    let at = rng.range(9, f.len() as u64 - 1) as usize;
                    f[at] = match rng.below(4) {
                        0 => f[at] ^ (1 << rng.below(8)),
                        1 => rng.pick(&[0, 0x7f, 0x80, 0xff, 0x20, 0x3f, 0x40]),
                        _ => rng.below(256) as u8,
                    };
                }
            }
        }
        12 => {
            // A 32-bit field (WINDOW_UPDATE increment, RST_STREAM code, setting value,
            // dependency, GOAWAY last stream id) set to a boundary value.
            let f = &mut fr[i];
            if f.len() >= 13 {
                let at = 9 + rng.below(((f.len() - 13) as u64).min(6) + 1) as usize;
                let v: u32 = rng.pick(&[0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 65_535, 65_536]);
                f[at..at + 4].copy_from_slice(&v.to_be_bytes());
            }
        }
        13 => {
            // Frames of a different kind, built from scratch.
            let id = rng.pick(&[0, 1, 3, 5, 2]);
            let f = match rng.below(6) {
                0 => frame(kind::WINDOW_UPDATE, 0, id, &rng.pick(&[0u32, 1, 0x7fff_ffff]).to_be_bytes()),
                1 => frame(kind::RST_STREAM, 0, id, &[0, 0, 0, 8]),
                2 => {
                    let n = rng.below(100) as usize;
                    frame(kind::DATA, rng.below(2) as u8, id, &rng.bytes(n))
                }
                3 => frame(kind::CONTINUATION, rng.pick(&[0, END_HEADERS]), id, &rng.bytes(4)),
                // Floods of these trip the empty-frame defence (CVE-2019-9518).
                5 if rng.chance(50) => frame(kind::DATA, 0, id, &[]),
                4 => frame(kind::PUSH_PROMISE, END_HEADERS, id, &[0, 0, 0, 2, 0x82]),
                _ => settings_frame(&[(
                    rng.below(10) as u16,
                    rng.pick(&[0, 1, 65_535, 0x7fff_ffff, u32::MAX]),
                )]),
            };
            fr.insert(i, f);
        }
        14 => fr.truncate(i),
        _ => {
            // The preface itself (the server's first SETTINGS, for a client).
            if rng.chance(20) && !fr[0].is_empty() {
                let at = rng.below(PREFACE.len().min(fr[0].len()) as u64) as usize;
                fr[0][at] ^= 1 << rng.below(8);
            }
        }
    }
}

fn mutate_bytes(rng: &mut Rng, b: &mut Vec<u8>, other: &[u8]) {
    if b.is_empty() {
        b.push(0);
    }
    let len = b.len() as u64;
    // Mostly after the preface, so that the frames are reached.
    let lo = if len > 24 && rng.chance(95) { 24 } else { 0 };
    let at = rng.range(lo, len - 1) as usize;
    let span = (rng.geometric(70, 64) as usize).min(b.len() - at);
    match rng.below(8) {
        0 => b[at] ^= 1 << rng.below(8),
        1 => b[at] = rng.pick(&[0, 1, 0x7f, 0x80, 0xfe, 0xff]),
        2 => {
            let ins = rng.bytes(span);
            b.splice(at..at, ins);
        }
        3 => {
            b.drain(at..at + span);
        }
        4 => {
            let dup = b[at..at + span].to_vec();
            b.splice(at..at, dup);
        }
        5 => {
            let from = rng.below(len - span as u64 + 1) as usize;
            let src = b[from..from + span].to_vec();
            b[at..at + span].copy_from_slice(&src);
        }
        6 => b.truncate(at),
        _ => {
            if !other.is_empty() {
                let from = rng.below(other.len() as u64) as usize;
                let n = (rng.geometric(80, 400) as usize).min(other.len() - from);
                b.splice(at..at, other[from..from + n].iter().copied());
            }
        }
    }
}
