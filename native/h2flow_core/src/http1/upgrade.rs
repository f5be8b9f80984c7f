//! The HTTP/1.1 `Upgrade: h2c` handshake (RFC 7540 §3.2; RFC 9113 deprecates it, but
//! `curl --http2` and some proxies still use it).
//!
//! A request upgrades when all of these hold; otherwise it is served over HTTP/1.1 (RFC 9110
//! §7.8 lets a server ignore Upgrade):
//! - the option is on and the connection is cleartext (RFC 7540 §3.2: h2c is not for TLS);
//! - HTTP/1.1, `Upgrade` lists `h2c`, `Connection` lists `Upgrade` and `HTTP2-Settings`;
//! - exactly one `HTTP2-Settings` field (§3.2.1: "MUST NOT upgrade ... if this header field is
//!   not present or if more than one is present"), base64url without padding decoding to a
//!   valid SETTINGS payload;
//! - the request converts to a valid HTTP/2 request (RFC 9113 §8.2, §8.3);
//! - its body, if any, has a Content-Length of at most `max_upgrade_body` (it is read whole
//!   before the switch: §3.2 "Requests that contain a payload body MUST be sent in their
//!   entirety before the client can send HTTP/2 frames");
//! - no other request is waiting for its response (the 101 must be the next thing written).

use super::head::{list, BodyKind, H2c};
use super::{Config, Version};
use crate::fields;
use crate::frame::{self, kind, Head};
use crate::hpack::HeaderList;

/// Everything the HTTP/2 engine needs to continue after `101 Switching Protocols`
/// ([`crate::Connection::from_upgrade`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgrade {
    /// The client's SETTINGS from `HTTP2-Settings`, in order.
    pub settings: Vec<(u16, u32)>,
    /// The request as HTTP/2 fields (pseudo-header fields first, no connection-specific
    /// fields): stream 1.
    pub fields: HeaderList,
    /// The request body (at most `max_upgrade_body` bytes).
    pub body: Vec<u8>,
    /// Bytes read beyond the request: the start of the client's HTTP/2 connection preface.
    pub rest: crate::connection::Payload,
}

/// Fields that are about one HTTP/1.1 connection and have no place in HTTP/2
/// (RFC 9113 §8.2.2), plus Host, which `:authority` carries (§8.3.1).
const HOP_BY_HOP: [&[u8]; 7] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
    b"http2-settings",
    b"host",
];

/// Decides whether a request that asked for h2c may upgrade.
pub(super) fn check_h2c(
    h1_fields: &HeaderList,
    connection_options: &[&[u8]],
    version: Version,
    body: BodyKind,
    settings_fields: usize,
    settings_value: &[u8],
    cfg: &Config,
) -> H2c {
    let option = |name: &[u8]| connection_options.iter().any(|o| o.eq_ignore_ascii_case(name));
    let body_ok = match body {
        BodyKind::None => true,
        BodyKind::Length(n) => n <= cfg.max_upgrade_body,
        BodyKind::Chunked => false,
    };
    if !cfg.h2c_upgrade
        || cfg.secure
        || version != Version::Http11
        || !option(b"upgrade")
        || !option(b"http2-settings")
        || settings_fields != 1
        || !body_ok
    {
        return H2c::Declined;
    }
    let Some(payload) = base64url_decode(settings_value) else { return H2c::Declined };
    let Some(settings) = decode_settings(&payload) else { return H2c::Declined };
    let mut h2 = HeaderList::new();
    for (name, value) in h1_fields.iter() {
        let hop =
            HOP_BY_HOP.contains(&name) || connection_options.iter().any(|o| o.eq_ignore_ascii_case(name));
        // TE is allowed in HTTP/2 only as "trailers" (RFC 9113 8.2.2).
        let te = name == b"te" && !list(value).all(|v| v.eq_ignore_ascii_case(b"trailers"));
        if !hop && !te {
            h2.push(name, value);
        }
    }
    if fields::validate_request(&h2).is_err() {
        return H2c::Declined;
    }
    H2c::Accepted { settings, fields: h2 }
}

/// A SETTINGS payload, checked like a SETTINGS frame (RFC 9113 §6.5); `None` if invalid.
pub fn decode_settings(payload: &[u8]) -> Option<Vec<(u16, u32)>> {
    let length = u32::try_from(payload.len()).ok()?;
    let head = Head { length, kind: kind::SETTINGS, flags: 0, stream_id: 0 };
    match frame::decode_payload(head, payload) {
        Ok(frame::Frame::Settings(s)) => Some(s.params().collect()),
        _ => None,
    }
}

/// base64url (RFC 4648 §5) without padding, as `HTTP2-Settings` carries it (RFC 7540 §3.2.1);
/// trailing `=` padding is tolerated. `None` on any other character or an impossible length.
pub fn base64url_decode(s: &[u8]) -> Option<Vec<u8>> {
    let s = match s {
        [rest @ .., b'=', b'='] | [rest @ .., b'='] => rest,
        _ => s,
    };
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
