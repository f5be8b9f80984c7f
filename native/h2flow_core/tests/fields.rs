//! HTTP/2 field validation (RFC 9113 8.1-8.5, RFC 8441 4, RFC 9110 8.6): one test per rule,
//! each with the valid case next to the malformed ones.

use h2flow_core::fields::{
    validate_request, validate_request_field, validate_response, validate_response_field, validate_trailers,
    Malformed, RequestHead, RequestInfo, ResponseInfo,
};
use h2flow_core::hpack::HeaderList;

type Field<'a> = (&'a [u8], &'a [u8]);

const GET: [Field; 4] =
    [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b":authority", b"example.com")];

fn list(fields: &[(&[u8], &[u8])]) -> HeaderList {
    let mut list = HeaderList::new();
    for (name, value) in fields {
        list.push(name, value);
    }
    list
}

/// The GET request with `extra` regular fields after its pseudo-header fields.
fn get_with(extra: &[(&[u8], &[u8])]) -> HeaderList {
    list(&[&GET[..], extra].concat())
}

/// Asserts the request is malformed and the message cites `section`.
#[track_caller]
fn assert_malformed(list: &HeaderList, section: &str) {
    match validate_request(list) {
        Err(Malformed(m)) => assert!(m.contains(section), "{m:?} should cite {section}"),
        Ok(info) => panic!("accepted {list:?} as {info:?}"),
    }
}

#[test]
fn rfc9113_8_3_1_valid_get_request_is_accepted() {
    let info = validate_request(&get_with(&[(b"accept", b"*/*"), (b"user-agent", b"test/1.0")])).unwrap();
    assert_eq!(
        info,
        RequestInfo {
            content_length: None,
            is_connect: false,
            method_is_head: false,
            pseudo: 4,
            expect_continue: false
        }
    );
}

// ---- 8.2: field names and values ----

#[test]
fn rfc9113_8_2_uppercase_field_name_is_malformed() {
    assert_malformed(&get_with(&[(b"Accept", b"*/*")]), "RFC 9113 8.2");
    assert_malformed(&get_with(&[(b"x-Id", b"1")]), "RFC 9113 8.2");
    assert!(validate_request(&get_with(&[(b"x-id", b"1")])).is_ok());
}

#[test]
fn rfc9113_8_2_empty_field_name_is_malformed() {
    // CVE-2019-9516: empty names were a way to make servers store fields for free.
    assert_malformed(&get_with(&[(b"", b"")]), "RFC 9113 8.2");
    assert_malformed(&get_with(&[(b"", b"value")]), "RFC 9113 8.2");
}

#[test]
fn rfc9113_8_2_1_field_name_with_control_space_or_non_ascii_octet_is_malformed() {
    for bad in [0x00, 0x09, 0x0a, 0x0d, 0x1f, 0x20, 0x7f, 0x80, 0xff] {
        let name = [b'x', bad, b'y'];
        assert_malformed(&get_with(&[(&name, b"1")]), "RFC 9113 8.2.1");
    }
    // Every visible ASCII character but ':' and uppercase letters is allowed.
    let visible: Vec<u8> = (0x21..0x7f).filter(|c: &u8| *c != b':' && !c.is_ascii_uppercase()).collect();
    assert!(validate_request(&get_with(&[(&visible, b"1")])).is_ok());
}

#[test]
fn rfc9113_8_2_1_colon_in_a_regular_field_name_is_malformed() {
    assert_malformed(&get_with(&[(b"x:y", b"1")]), "RFC 9113 8.2.1");
    assert_malformed(&get_with(&[(b"x:", b"1")]), "RFC 9113 8.2.1");
}

#[test]
fn rfc9113_8_2_1_field_value_with_nul_cr_or_lf_is_malformed() {
    for bad in [&b"a\0b"[..], b"a\rb", b"a\nb", b"a\r\nx-injected: 1"] {
        assert_malformed(&get_with(&[(b"x-v", bad)]), "RFC 9113 8.2.1");
    }
    // Other control characters and obs-text are not ruled out by 8.2.1.
    assert!(validate_request(&get_with(&[(b"x-v", b"a\x01\x7f\xffb")])).is_ok());
}

#[test]
fn rfc9113_8_2_1_field_value_with_leading_or_trailing_whitespace_is_malformed() {
    for bad in [&b" a"[..], b"a ", b"\ta", b"a\t", b" "] {
        assert_malformed(&get_with(&[(b"x-v", bad)]), "RFC 9113 8.2.1");
    }
    assert!(validate_request(&get_with(&[(b"x-v", b"a b\tc")])).is_ok());
    assert!(validate_request(&get_with(&[(b"x-v", b"")])).is_ok());
}

#[test]
fn rfc9113_8_2_1_pseudo_header_field_values_follow_the_same_rules() {
    let fields: [(&[u8], &[u8]); 4] =
        [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/\r\nx: y"), (b":authority", b"a")];
    assert_malformed(&list(&fields), "RFC 9113 8.2.1");
    let fields: [(&[u8], &[u8]); 3] = [(b":method", b"GET "), (b":scheme", b"https"), (b":path", b"/")];
    assert_malformed(&list(&fields), "RFC 9113 8.2.1");
}

#[test]
fn rfc9113_8_2_2_connection_specific_fields_are_malformed() {
    for name in [&b"connection"[..], b"proxy-connection", b"keep-alive", b"transfer-encoding", b"upgrade"] {
        assert_malformed(&get_with(&[(name, b"x")]), "RFC 9113 8.2.2");
    }
}

#[test]
fn rfc9113_8_2_2_te_other_than_trailers_is_malformed() {
    assert!(validate_request(&get_with(&[(b"te", b"trailers")])).is_ok());
    for bad in [&b"gzip"[..], b"trailers, gzip", b"", b"chunked"] {
        assert_malformed(&get_with(&[(b"te", bad)]), "RFC 9113 8.2.2");
    }
}

// ---- 8.3: pseudo-header fields ----

#[test]
fn rfc9113_8_3_response_pseudo_header_status_in_a_request_is_malformed() {
    assert_malformed(&list(&[&[(&b":status"[..], &b"200"[..])][..], &GET].concat()), "RFC 9113 8.3");
}

#[test]
fn rfc9113_8_3_unknown_pseudo_header_field_is_malformed() {
    for name in [&b":foo"[..], b":", b"::path", b":Method"] {
        assert_malformed(&list(&[&GET[..], &[(name, &b"x"[..])]].concat()), "RFC 9113 8.3");
    }
}

#[test]
fn rfc9113_8_3_pseudo_header_field_after_a_regular_field_is_malformed() {
    let fields: [(&[u8], &[u8]); 5] = [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":path", b"/"),
        (b"accept", b"*/*"),
        (b":authority", b"example.com"),
    ];
    assert_malformed(&list(&fields), "RFC 9113 8.3");
}

#[test]
fn rfc9113_8_3_repeated_pseudo_header_field_is_malformed() {
    for (name, value) in GET {
        assert_malformed(&list(&[&GET[..], &[(name, value)]].concat()), "RFC 9113 8.3");
    }
}

#[test]
fn rfc9113_8_3_1_request_without_method_scheme_or_path_is_malformed() {
    for missing in [&b":method"[..], b":scheme", b":path"] {
        let fields: Vec<_> = GET.iter().copied().filter(|(n, _)| *n != missing).collect();
        assert_malformed(&list(&fields), "RFC 9113 8.3.1");
    }
}

#[test]
fn rfc9113_8_3_1_empty_method_scheme_or_path_is_malformed() {
    for emptied in [&b":method"[..], b":scheme", b":path"] {
        let fields: Vec<_> =
            GET.iter().map(|&(n, v)| if n == emptied { (n, &b""[..]) } else { (n, v) }).collect();
        assert_malformed(&list(&fields), "RFC 9113 8.3.1");
    }
}

#[test]
fn rfc9113_8_3_1_authority_is_optional() {
    let info = validate_request(&list(&GET[..3])).unwrap();
    assert!(!info.is_connect);
}

#[test]
fn rfc9113_8_3_1_asterisk_path_is_only_for_options() {
    let options: [(&[u8], &[u8]); 3] = [(b":method", b"OPTIONS"), (b":scheme", b"https"), (b":path", b"*")];
    assert!(validate_request(&list(&options)).is_ok());
    let get: [(&[u8], &[u8]); 3] = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"*")];
    assert_malformed(&list(&get), "RFC 9113 8.3.1");
}

#[test]
fn rfc9113_8_3_1_http_path_must_start_with_a_slash() {
    for (scheme, path) in
        [(&b"https"[..], &b"index.html"[..]), (b"http", b"http://example.com/"), (b"https", b"?q")]
    {
        let fields: [(&[u8], &[u8]); 3] = [(b":method", b"GET"), (b":scheme", scheme), (b":path", path)];
        assert_malformed(&list(&fields), "RFC 9113 8.3.1");
    }
    // Other schemes define their own paths.
    let fields: [(&[u8], &[u8]); 3] = [(b":method", b"GET"), (b":scheme", b"urn"), (b":path", b"isbn:0451")];
    assert!(validate_request(&list(&fields)).is_ok());
}

#[test]
fn rfc9113_8_3_1_userinfo_in_authority_is_malformed() {
    let fields: [(&[u8], &[u8]); 4] = [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":path", b"/"),
        (b":authority", b"user:pw@example.com"),
    ];
    assert_malformed(&list(&fields), "RFC 9113 8.3.1");
}

// ---- 8.5 CONNECT and RFC 8441 extended CONNECT ----

#[test]
fn rfc9113_8_5_connect_has_only_method_and_authority() {
    let fields: [(&[u8], &[u8]); 2] = [(b":method", b"CONNECT"), (b":authority", b"example.com:443")];
    let info = validate_request(&list(&fields)).unwrap();
    assert!(info.is_connect);
    assert_eq!(info.content_length, None);
}

#[test]
fn rfc9113_8_5_connect_with_scheme_or_path_is_malformed() {
    for extra in [(&b":scheme"[..], &b"https"[..]), (b":path", b"/")] {
        let fields = [(&b":method"[..], &b"CONNECT"[..]), (b":authority", b"example.com:443"), extra];
        assert_malformed(&list(&fields), "RFC 9113 8.5");
    }
}

#[test]
fn rfc9113_8_5_connect_without_authority_is_malformed() {
    assert_malformed(&list(&[(b":method", b"CONNECT")]), "RFC 9113 8.5");
    assert_malformed(&list(&[(b":method", b"CONNECT"), (b":authority", b"")]), "RFC 9113 8.5");
}

#[test]
fn rfc8441_4_protocol_is_malformed_without_enable_connect_protocol() {
    // We never send SETTINGS_ENABLE_CONNECT_PROTOCOL, so :protocol makes any request malformed,
    // extended CONNECT included.
    assert_malformed(&list(&[&GET[..], &[(&b":protocol"[..], &b"websocket"[..])]].concat()), "RFC 8441 4");
    let extended: [(&[u8], &[u8]); 5] = [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"https"),
        (b":path", b"/chat"),
        (b":authority", b"example.com"),
    ];
    assert_malformed(&list(&extended), "RFC 8441 4");
}

// ---- the request as the application sees it ----

#[test]
fn request_head_splits_the_target_and_joins_repeated_fields() {
    let l = list(&[
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":path", b"/a/b?x=1&y=2"),
        (b":authority", b"example.com:8443"),
        (b"content-length", b"5"),
        (b"cookie", b"a=1"),
        (b"accept", b"text/html"),
        (b"content-length", b"5"),
        (b"cookie", b"b=2"),
        (b"accept", b"*/*"),
    ]);
    let info = validate_request(&l).unwrap();
    assert_eq!(info.pseudo, 4);
    let head = RequestHead::new(&l, &info);
    assert_eq!(head.method, b"POST");
    assert_eq!(head.scheme, b"https");
    assert_eq!(head.path, b"/a/b");
    assert_eq!(head.query, b"x=1&y=2");
    assert_eq!(head.authority, b"example.com:8443");
    assert_eq!(head.content_length, Some(5));
    let fields: Vec<(&[u8], &[u8])> = head.fields.iter().map(|(n, v)| (*n, v.as_ref())).collect();
    assert_eq!(
        fields,
        vec![
            (&b"content-length"[..], &b"5, 5"[..]),
            (b"cookie", b"a=1; b=2"),
            (b"accept", b"text/html, */*"),
        ]
    );
}

#[test]
fn request_head_authority_falls_back_to_host_and_many_fields_join() {
    let mut fields: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b":method".to_vec(), b"GET".to_vec()),
        (b":scheme".to_vec(), b"http".to_vec()),
        (b":path".to_vec(), b"/".to_vec()),
        (b"host".to_vec(), b"h.example".to_vec()),
    ];
    // Past the linear scan's 16 names, the index takes over.
    for i in 0..40 {
        fields.push((format!("x-{}", i % 20).into_bytes(), format!("{i}").into_bytes()));
    }
    let refs: Vec<(&[u8], &[u8])> = fields.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    let l = list(&refs);
    let info = validate_request(&l).unwrap();
    let head = RequestHead::new(&l, &info);
    assert_eq!(head.authority, b"h.example");
    assert_eq!(head.query, b"");
    assert_eq!(head.fields.len(), 21);
    let x3 = head.fields.iter().find(|(n, _)| *n == b"x-3").unwrap();
    assert_eq!(x3.1.as_ref(), b"3, 23");
}

// ---- content-length (RFC 9113 8.1.1, RFC 9110 8.6) ----

#[test]
fn rfc9110_8_6_content_length_is_reported() {
    let info = validate_request(&get_with(&[(b"content-length", b"1234")])).unwrap();
    assert_eq!(info.content_length, Some(1234));
    let info = validate_request(&get_with(&[(b"content-length", b"0")])).unwrap();
    assert_eq!(info.content_length, Some(0));
    let max = u64::MAX.to_string();
    let info = validate_request(&get_with(&[(b"content-length", max.as_bytes())])).unwrap();
    assert_eq!(info.content_length, Some(u64::MAX));
}

#[test]
fn rfc9110_8_6_content_length_that_is_not_digits_is_malformed() {
    for bad in [&b""[..], b"-1", b"+5", b"1.0", b"0x10", b"5,5", b"5, 5", b"1e3", b"18446744073709551616"] {
        assert_malformed(&get_with(&[(b"content-length", bad)]), "RFC 9110 8.6");
    }
}

#[test]
fn rfc9110_8_6_repeated_content_length_must_agree() {
    let same = get_with(&[(b"content-length", b"10"), (b"accept", b"*/*"), (b"content-length", b"10")]);
    assert_eq!(validate_request(&same).unwrap().content_length, Some(10));
    assert_malformed(&get_with(&[(b"content-length", b"10"), (b"content-length", b"11")]), "RFC 9110 8.6");
}

#[test]
fn head_request_is_reported() {
    let fields: [(&[u8], &[u8]); 3] = [(b":method", b"HEAD"), (b":scheme", b"https"), (b":path", b"/")];
    assert!(validate_request(&list(&fields)).unwrap().method_is_head);
    // Methods are case-sensitive (RFC 9110 9.1): "head" is another method.
    let fields: [(&[u8], &[u8]); 3] = [(b":method", b"head"), (b":scheme", b"https"), (b":path", b"/")];
    assert!(!validate_request(&list(&fields)).unwrap().method_is_head);
}

// ---- Trailers (RFC 9113 8.1) ----

#[test]
fn rfc9113_8_1_trailers_with_a_pseudo_header_field_are_malformed() {
    assert_eq!(validate_trailers(&list(&[(b"grpc-status", b"0"), (b"x-checksum", b"abc")])), Ok(()));
    assert_eq!(validate_trailers(&HeaderList::new()), Ok(()));
    for name in [&b":path"[..], b":status", b":foo"] {
        let err = validate_trailers(&list(&[(b"x", b"1"), (name, b"/")])).unwrap_err();
        assert!(err.0.contains("RFC 9113 8.1"), "{err:?}");
    }
}

#[test]
fn rfc9113_8_2_trailers_follow_the_same_field_rules() {
    let cases: [(Field, &str); 6] = [
        ((b"X-Checksum", b"1"), "RFC 9113 8.2"),
        ((b"", b"1"), "RFC 9113 8.2"),
        ((b"x y", b"1"), "RFC 9113 8.2.1"),
        ((b"x", b"1\r\n"), "RFC 9113 8.2.1"),
        ((b"transfer-encoding", b"chunked"), "RFC 9113 8.2.2"),
        ((b"te", b"gzip"), "RFC 9113 8.2.2"),
    ];
    for (field, section) in cases {
        let err = validate_trailers(&list(&[field])).unwrap_err();
        assert!(err.0.contains(section), "{field:?}: {err:?}");
    }
}

// ---- Response fields from our own application ----

#[test]
fn response_field_names_must_be_lowercase_tokens() {
    assert_eq!(validate_response_field(b"content-type", b"text/html; charset=utf-8"), Ok(()));
    assert_eq!(validate_response_field(b"x-a1!#$%&'*+-.^_`|~", b"v"), Ok(()));
    assert_eq!(validate_response_field(b"set-cookie", b""), Ok(()));
    let cases: [(&[u8], &str); 6] = [
        (b"", "RFC 9113 8.2"),
        (b"Content-Type", "RFC 9113 8.2"),
        (b"x y", "RFC 9110 5.1"),
        (b"x(y)", "RFC 9110 5.1"),
        (b"x:y", "RFC 9110 5.1"),
        (b"caf\xc3\xa9", "RFC 9110 5.1"),
    ];
    for (name, section) in cases {
        let err = validate_response_field(name, b"v").unwrap_err();
        assert!(err.contains(section), "{name:?}: {err}");
    }
}

#[test]
fn response_pseudo_header_and_connection_specific_fields_are_refused() {
    for name in [&b":status"[..], b":path"] {
        assert!(validate_response_field(name, b"200").unwrap_err().contains("RFC 9113 8.3"));
    }
    for name in
        [&b"connection"[..], b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te"]
    {
        assert!(validate_response_field(name, b"x").unwrap_err().contains("RFC 9113 8.2.2"), "{name:?}");
    }
}

#[test]
fn response_field_values_follow_rfc9113_8_2_1() {
    for bad in [&b"a\r\nset-cookie: x"[..], b"a\0", b"a\n", b" a", b"a\t"] {
        assert!(validate_response_field(b"x-v", bad).unwrap_err().contains("RFC 9113 8.2.1"), "{bad:?}");
    }
}

// ---- Responses from a server (client role) and request fields from our own application ----

#[test]
fn a_response_has_one_status_and_no_other_pseudo_header_field() {
    let info = validate_response(&list(&[(b":status", b"204"), (b"content-length", b"0")])).unwrap();
    assert_eq!(info, ResponseInfo { status: 204, content_length: Some(0), pseudo: 1 });
    assert_eq!(validate_response(&list(&[(b":status", b"103")])).unwrap().status, 103);
    let cases: [(&[Field], &str); 9] = [
        (&[], "RFC 9113 8.3.2"),
        (&[(b"x", b"1")], "RFC 9113 8.3.2"),
        (&[(b":status", b"200"), (b":status", b"200")], "RFC 9113 8.3"),
        (&[(b":status", b"200"), (b":path", b"/")], "RFC 9113 8.3.2"),
        (&[(b"x", b"1"), (b":status", b"200")], "RFC 9113 8.3"),
        (&[(b":status", b"20")], "RFC 9110 15"),
        (&[(b":status", b"600")], "RFC 9110 15"),
        (&[(b":status", b"200"), (b"content-length", b"1"), (b"content-length", b"2")], "RFC 9110 8.6"),
        (&[(b":status", b"200"), (b"x", b"a\nb")], "RFC 9113 8.2.1"),
    ];
    for (fields, section) in cases {
        match validate_response(&list(fields)) {
            Err(Malformed(m)) => assert!(m.contains(section), "{fields:?}: {m:?} should cite {section}"),
            Ok(info) => panic!("accepted {fields:?} as {info:?}"),
        }
    }
}

#[test]
fn request_fields_allow_te_trailers_only() {
    assert_eq!(validate_request_field(b"te", b"trailers"), Ok(()));
    assert!(validate_request_field(b"te", b"gzip").unwrap_err().contains("RFC 9113 8.2.2"));
    assert!(validate_request_field(b"Accept", b"x").unwrap_err().contains("RFC 9113 8.2"));
    assert!(validate_request_field(b"connection", b"close").unwrap_err().contains("RFC 9113 8.2.2"));
    assert_eq!(validate_request_field(b"accept", b"*/*"), Ok(()));
}
