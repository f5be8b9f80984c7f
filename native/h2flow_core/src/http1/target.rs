//! The request-target (RFC 9112 §3.2) as HTTP/2 pseudo-header fields (RFC 9113 §8.3.1): the
//! four forms, each allowed only where the RFC allows it, and the Host rules.

use super::error::{reject, Reject, Rejected};
use super::Config;
use crate::hpack::HeaderList;

/// Characters of a Host value: reg-name, IP-literal and port (RFC 3986 §3.2.2), no userinfo.
pub(super) fn is_host_char(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'%'
        )
}

/// The request target as HTTP/2 pseudo-header fields (RFC 9112 §3.2, §3.3; RFC 9113 §8.3.1).
pub(super) fn push_pseudo_headers(
    fields: &mut HeaderList,
    method: &str,
    target: &str,
    host: Option<&[u8]>,
    cfg: &Config,
) -> Result<(), Rejected> {
    const BAD_AUTHORITY: Rejected =
        reject(Reject::BadTarget, "invalid authority in the request-target (RFC 9112 3.2.2, 3.2.3)");
    let target = target.as_bytes();
    let default_scheme: &[u8] = if cfg.secure { b"https" } else { b"http" };
    let host = host.filter(|h| !h.is_empty());
    fields.push(b":method", method.as_bytes());
    if method == "CONNECT" {
        // authority-form: host ":" port, nothing else (RFC 9112 3.2.3).
        if !target.contains(&b':') || !target.iter().all(|&c| is_host_char(c)) {
            return Err(reject(
                Reject::BadTarget,
                "a CONNECT request-target must be host:port (authority-form, RFC 9112 3.2.3)",
            ));
        }
        fields.push(b":authority", target);
        return Ok(());
    }
    if target.first() == Some(&b'/') {
        fields.push(b":scheme", default_scheme);
        if let Some(h) = host {
            fields.push(b":authority", h);
        }
        fields.push(b":path", target);
        return Ok(());
    }
    if target == b"*" {
        if method != "OPTIONS" {
            return Err(reject(Reject::BadTarget, "asterisk-form is only for OPTIONS (RFC 9112 3.2.4)"));
        }
        fields.push(b":scheme", default_scheme);
        if let Some(h) = host {
            fields.push(b":authority", h);
        }
        fields.push(b":path", b"*");
        return Ok(());
    }
    // absolute-form (RFC 9112 3.2.2): the target's authority wins over Host.
    let Some(sep) = target.windows(3).position(|w| w == b"://") else {
        return Err(reject(Reject::BadTarget, "invalid request-target (RFC 9112 3.2)"));
    };
    let (scheme, rest) = target.split_at(sep);
    // ok: sep + 3 <= target.len(), since windows(3) found "://" at sep.
    let rest = &rest[3..];
    let scheme = scheme.to_ascii_lowercase();
    if scheme != b"http" && scheme != b"https" {
        return Err(reject(
            Reject::BadTarget,
            "absolute-form with a scheme other than http(s) (RFC 9112 3.2.2)",
        ));
    }
    let end = rest.iter().position(|&c| c == b'/' || c == b'?').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || !authority.iter().all(|&c| is_host_char(c)) {
        return Err(BAD_AUTHORITY);
    }
    fields.push(b":scheme", &scheme);
    fields.push(b":authority", authority);
    match path.first() {
        None => fields.push(b":path", b"/"),
        Some(b'?') => {
            let mut p = Vec::with_capacity(path.len() + 1);
            p.push(b'/');
            p.extend_from_slice(path);
            fields.push(b":path", &p);
        }
        Some(_) => fields.push(b":path", path),
    }
    Ok(())
}
