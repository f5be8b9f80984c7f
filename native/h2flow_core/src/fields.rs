//! HTTP field validation for HTTP/2 (RFC 9113 8.2, 8.3): what makes a decoded field section
//! malformed (8.1.1), and the few facts the engine needs from a valid request or response.
//!
//! Only the minimal checks RFC 9113 8.2.1 requires are applied to peer input (no full token
//! grammar): they are the ones that keep a field from being misread downstream, e.g. by an
//! HTTP/1.1 intermediary (request smuggling through CR, LF or NUL).

use crate::hpack::HeaderList;

/// Why a field section is malformed (RFC 9113 8.1.1): a stream error PROTOCOL_ERROR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub &'static str);

/// What the engine needs from a valid request header section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// The content-length field, which the engine checks against the DATA received (8.1.1).
    pub content_length: Option<u64>,
    /// A CONNECT request, extended (RFC 8441) or not.
    pub is_connect: bool,
    /// A response to HEAD has no content whatever its content-length says.
    pub method_is_head: bool,
    /// How many pseudo-header fields open the section (they all come first, 8.3).
    pub pseudo: usize,
    /// `expect: 100-continue`: the client may wait for a 100 before it sends the body
    /// (RFC 9110 10.1.1).
    pub expect_continue: bool,
}

/// What the engine needs from a valid response header section (client role).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseInfo {
    /// The `:status` code, 100 to 599.
    pub status: u16,
    /// The content-length field, if any (the engine checks it against the DATA received unless
    /// the response has no content: HEAD, 204, 304).
    pub content_length: Option<u64>,
    /// How many pseudo-header fields open the section (one: `:status`).
    pub pseudo: usize,
}

/// A valid request as the application sees it: the pseudo-header fields by name, the target
/// split at `?`, the authority (`:authority`, else `host`, RFC 9113 8.3.1), and the regular
/// fields with repeated names joined (`cookie` crumbs with "; ", others with ", ", 8.2.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead<'a> {
    pub method: &'a [u8],
    pub scheme: &'a [u8],
    pub authority: &'a [u8],
    pub path: &'a [u8],
    pub query: &'a [u8],
    pub content_length: Option<u64>,
    pub fields: Vec<(&'a [u8], std::borrow::Cow<'a, [u8]>)>,
}

impl<'a> RequestHead<'a> {
    /// The view of a section that [`validate_request`] accepted (with its `info`).
    pub fn new(list: &'a HeaderList, info: &RequestInfo) -> RequestHead<'a> {
        let mut head = RequestHead {
            method: b"",
            scheme: b"",
            authority: b"",
            path: b"",
            query: b"",
            content_length: info.content_length,
            fields: Vec::with_capacity(list.len().saturating_sub(info.pseudo)),
        };
        let mut target: &[u8] = b"";
        for (name, value) in list.iter().take(info.pseudo) {
            match name {
                b":method" => head.method = value,
                b":scheme" => head.scheme = value,
                b":authority" => head.authority = value,
                b":path" => target = value,
                _ => {}
            }
        }
        match target.iter().position(|&c| c == b'?') {
            // ok: i is an index of target.
            Some(i) => (head.path, head.query) = (&target[..i], &target[i + 1..]),
            None => head.path = target,
        }
        head.fields = joined(list.iter().skip(info.pseudo));
        if head.authority.is_empty() {
            if let Some((_, host)) = head.fields.iter().find(|(n, _)| *n == b"host") {
                head.authority = match host {
                    std::borrow::Cow::Borrowed(v) => v,
                    // Several host fields: a malformed request an HTTP/1 server would refuse;
                    // the authority stays empty rather than being a joined list.
                    std::borrow::Cow::Owned(_) => b"",
                };
            }
        }
        head
    }
}

/// Regular fields with repeated names joined, in order of first appearance (RFC 9113 8.2.3,
/// RFC 9110 5.3).
fn joined<'a>(
    fields: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Vec<(&'a [u8], std::borrow::Cow<'a, [u8]>)> {
    let mut out: Vec<(&[u8], std::borrow::Cow<[u8]>)> = Vec::new();
    let mut index: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::new();
    for (name, value) in fields {
        let at = if out.len() < 16 {
            out.iter().position(|(n, _)| *n == name)
        } else {
            if index.is_empty() {
                index = out.iter().enumerate().map(|(i, (n, _))| (*n, i)).collect();
            }
            index.get(name).copied()
        };
        match at.and_then(|i| out.get_mut(i)) {
            Some((_, joined)) => {
                let joined = joined.to_mut();
                joined.extend_from_slice(if name == b"cookie" { b"; " } else { b", " });
                joined.extend_from_slice(value);
            }
            None => {
                if !index.is_empty() {
                    index.insert(name, out.len());
                }
                out.push((name, std::borrow::Cow::Borrowed(value)));
            }
        }
    }
    out
}

/// Validates a request header section (RFC 9113 8.2, 8.3.1, 8.5; RFC 8441 4).
pub fn validate_request(list: &HeaderList) -> Result<RequestInfo, Malformed> {
    let mut method = None;
    let mut scheme = None;
    let mut authority = None;
    let mut path = None;
    let mut protocol = None;
    let mut regular_seen = false;
    let mut pseudo_fields = 0;
    let mut content_length = None;
    let mut expect_continue = false;

    for (name, value) in list.iter() {
        check_value(value)?;
        if let Some(pseudo) = name.strip_prefix(b":") {
            if regular_seen {
                return Err(Malformed("pseudo-header field after a regular field (RFC 9113 8.3)"));
            }
            let slot = match pseudo {
                b"method" => &mut method,
                b"scheme" => &mut scheme,
                b"authority" => &mut authority,
                b"path" => &mut path,
                // Extended CONNECT, refused below (RFC 8441 4).
                b"protocol" => &mut protocol,
                b"status" => {
                    return Err(Malformed("response pseudo-header field :status in a request (RFC 9113 8.3)"))
                }
                _ => return Err(Malformed("unknown pseudo-header field (RFC 9113 8.3)")),
            };
            if slot.replace(value).is_some() {
                return Err(Malformed("repeated pseudo-header field (RFC 9113 8.3)"));
            }
            pseudo_fields += 1;
        } else {
            regular_seen = true;
            check_regular_field(name, value)?;
            if name == b"content-length" {
                content_length = Some(merge_content_length(content_length, value)?);
            } else if name == b"expect" && value.eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            }
        }
    }

    let method = match method {
        None => return Err(Malformed("missing :method (RFC 9113 8.3.1)")),
        Some(b"") => return Err(Malformed("empty :method (RFC 9113 8.3.1)")),
        Some(m) => m,
    };
    let is_connect = method == b"CONNECT";
    if protocol.is_some() {
        // We never send SETTINGS_ENABLE_CONNECT_PROTOCOL, so no request may use it.
        return Err(Malformed(":protocol without SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 4)"));
    }
    if is_connect {
        // Plain CONNECT names only the authority to tunnel to (RFC 9113 8.5).
        if scheme.is_some() || path.is_some() {
            return Err(Malformed(":scheme or :path in a CONNECT request (RFC 9113 8.5)"));
        }
        if authority.is_none_or(|a| a.is_empty()) {
            return Err(Malformed("missing :authority in a CONNECT request (RFC 9113 8.5)"));
        }
    } else {
        // Every other request.
        let scheme = match scheme {
            None => return Err(Malformed("missing :scheme (RFC 9113 8.3.1)")),
            Some(b"") => return Err(Malformed("empty :scheme (RFC 9113 8.3.1)")),
            Some(s) => s,
        };
        let path = match path {
            None => return Err(Malformed("missing :path (RFC 9113 8.3.1)")),
            Some(b"") => return Err(Malformed("empty :path (RFC 9113 8.3.1)")),
            Some(p) => p,
        };
        if path == b"*" {
            if method != b"OPTIONS" {
                return Err(Malformed(":path \"*\" in a request that is not OPTIONS (RFC 9113 8.3.1)"));
            }
        } else if is_http(scheme) && !path.starts_with(b"/") {
            return Err(Malformed(":path does not start with \"/\" (RFC 9113 8.3.1)"));
        }
        if is_http(scheme) && authority.is_some_and(|a| a.contains(&b'@')) {
            return Err(Malformed("userinfo in :authority (RFC 9113 8.3.1)"));
        }
    }

    Ok(RequestInfo {
        content_length,
        is_connect,
        method_is_head: method == b"HEAD",
        pseudo: pseudo_fields,
        expect_continue,
    })
}

/// Validates a response header section, final or informational (RFC 9113 8.2, 8.3.2).
pub fn validate_response(list: &HeaderList) -> Result<ResponseInfo, Malformed> {
    let mut status = None;
    let mut regular_seen = false;
    let mut pseudo = 0;
    let mut content_length = None;
    for (name, value) in list.iter() {
        check_value(value)?;
        if name.starts_with(b":") {
            if regular_seen {
                return Err(Malformed("pseudo-header field after a regular field (RFC 9113 8.3)"));
            }
            if name != b":status" {
                return Err(Malformed(
                    "a response has no pseudo-header field other than :status (RFC 9113 8.3.2)",
                ));
            }
            if status.replace(value).is_some() {
                return Err(Malformed("repeated pseudo-header field (RFC 9113 8.3)"));
            }
            pseudo += 1;
        } else {
            regular_seen = true;
            check_regular_field(name, value)?;
            if name == b"content-length" {
                content_length = Some(merge_content_length(content_length, value)?);
            }
        }
    }
    let status = match status {
        None => return Err(Malformed("missing :status (RFC 9113 8.3.2)")),
        Some(&[a @ b'1'..=b'5', b, c]) if b.is_ascii_digit() && c.is_ascii_digit() => {
            (a - b'0') as u16 * 100 + (b - b'0') as u16 * 10 + (c - b'0') as u16
        }
        Some(_) => return Err(Malformed(":status is not a 3-digit code from 100 to 599 (RFC 9110 15)")),
    };
    Ok(ResponseInfo { status, content_length, pseudo })
}

/// Trailers: no pseudo-header fields at all (RFC 9113 8.1), plus the same field rules.
pub fn validate_trailers(list: &HeaderList) -> Result<(), Malformed> {
    for (name, value) in list.iter() {
        if name.starts_with(b":") {
            return Err(Malformed("pseudo-header field in trailers (RFC 9113 8.1)"));
        }
        check_value(value)?;
        check_regular_field(name, value)?;
    }
    Ok(())
}

/// For responses we send: checks our own application's fields before encoding. Stricter than
/// for peer input: names must be tokens (RFC 9110 5.1), so a typo fails here rather than in a
/// client. Pseudo-header fields are the engine's to write, not the application's.
pub fn validate_response_field(name: &[u8], value: &[u8]) -> Result<(), &'static str> {
    if name == b"te" {
        return Err("connection-specific field (RFC 9113 8.2.2)");
    }
    validate_local_field(name, value)
}

/// For requests we send (client role): the same checks as [`validate_response_field`], except
/// that `te: trailers` is allowed (RFC 9113 8.2.2).
pub fn validate_request_field(name: &[u8], value: &[u8]) -> Result<(), &'static str> {
    if name == b"te" && value != b"trailers" {
        return Err("te field with a value other than \"trailers\" (RFC 9113 8.2.2)");
    }
    validate_local_field(name, value)
}

fn validate_local_field(name: &[u8], value: &[u8]) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty field name (RFC 9113 8.2)");
    }
    if name.starts_with(b":") {
        return Err("pseudo-header fields are set by the engine, not by the application (RFC 9113 8.3)");
    }
    if name.iter().any(u8::is_ascii_uppercase) {
        return Err("uppercase field name (RFC 9113 8.2)");
    }
    if !name.iter().all(|&c| is_tchar(c)) {
        return Err("field name is not a token (RFC 9110 5.1)");
    }
    if is_connection_specific(name) {
        return Err("connection-specific field (RFC 9113 8.2.2)");
    }
    check_value(value).map_err(|Malformed(m)| m)
}

/// Rules for every field that is not a pseudo-header field (RFC 9113 8.2, 8.2.1, 8.2.2).
fn check_regular_field(name: &[u8], value: &[u8]) -> Result<(), Malformed> {
    if name.is_empty() {
        // An empty name is a well-known resource sink (CVE-2019-9516).
        return Err(Malformed("empty field name (RFC 9113 8.2)"));
    }
    for &c in name {
        if c.is_ascii_uppercase() {
            return Err(Malformed("uppercase field name (RFC 9113 8.2)"));
        }
        if c <= 0x20 || c >= 0x7f || c == b':' {
            return Err(Malformed("invalid character in field name (RFC 9113 8.2.1)"));
        }
    }
    if is_connection_specific(name) {
        return Err(Malformed("connection-specific field (RFC 9113 8.2.2)"));
    }
    if name == b"te" && !value.eq_ignore_ascii_case(b"trailers") {
        return Err(Malformed("te field with a value other than \"trailers\" (RFC 9113 8.2.2)"));
    }
    Ok(())
}

/// Field value rules (RFC 9113 8.2.1), for pseudo-header fields too.
fn check_value(value: &[u8]) -> Result<(), Malformed> {
    if value.iter().any(|&c| c == 0 || c == b'\r' || c == b'\n') {
        return Err(Malformed("NUL, CR or LF in a field value (RFC 9113 8.2.1)"));
    }
    let is_ws = |c: &u8| *c == b' ' || *c == b'\t';
    if value.first().is_some_and(is_ws) || value.last().is_some_and(is_ws) {
        return Err(Malformed("field value starts or ends with whitespace (RFC 9113 8.2.1)"));
    }
    Ok(())
}

fn is_connection_specific(name: &[u8]) -> bool {
    matches!(name, b"connection" | b"proxy-connection" | b"keep-alive" | b"transfer-encoding" | b"upgrade")
}

fn is_http(scheme: &[u8]) -> bool {
    scheme == b"http" || scheme == b"https"
}

/// Parses one content-length field and checks it against earlier ones: several fields are
/// allowed only with the same value (RFC 9110 8.6).
fn merge_content_length(earlier: Option<u64>, value: &[u8]) -> Result<u64, Malformed> {
    const INVALID: Malformed = Malformed("content-length is not a non-negative integer (RFC 9110 8.6)");
    if value.is_empty() {
        return Err(INVALID);
    }
    let mut n: u64 = 0;
    for &c in value {
        if !c.is_ascii_digit() {
            return Err(INVALID);
        }
        n = n.checked_mul(10).and_then(|n| n.checked_add(u64::from(c - b'0'))).ok_or(INVALID)?;
    }
    match earlier {
        Some(m) if m != n => Err(Malformed("conflicting content-length fields (RFC 9110 8.6)")),
        _ => Ok(n),
    }
}

/// tchar (RFC 9110 5.6.2); HTTP/2 field names are checked for uppercase letters first.
pub(crate) fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}
