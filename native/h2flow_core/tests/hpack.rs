//! HPACK (RFC 7541): the Appendix C examples, the limits the wrapper adds over loona-hpack, the
//! encoder's size updates and never-indexed literals, and robustness against arbitrary input.

use h2flow_core::hpack::{DecodeError, Decoder, Encoder, HeaderList};

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    digits.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()).collect()
}

fn fields(list: &HeaderList) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (String::from_utf8(n.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap()))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

fn decode(d: &mut Decoder, block: &[u8]) -> Result<Vec<(String, String)>, DecodeError> {
    let mut list = HeaderList::new();
    d.decode(block, &mut list).map(|()| fields(&list))
}

/// The dynamic table after decoding `blocks` on a fresh decoder, read through behaviour:
/// indexed references 62, 63, ... until the first index out of bounds. A separate decoder is
/// used because a failed decode ends a connection; the chain under test goes on undisturbed.
fn table_after(header_table_size: u32, blocks: &[Vec<u8>]) -> Vec<(String, String)> {
    let mut d = Decoder::new(header_table_size, u32::MAX);
    for block in blocks {
        decode(&mut d, block).unwrap();
    }
    let mut table = Vec::new();
    for index in 62u8..=127 {
        match decode(&mut d, &[0x80 | index]) {
            Ok(mut f) => table.push(f.remove(0)),
            Err(e) => {
                assert!(matches!(e, DecodeError::Compression(_)));
                return table;
            }
        }
    }
    panic!("table larger than expected");
}

fn table_size(table: &[(String, String)]) -> usize {
    table.iter().map(|(n, v)| n.len() + v.len() + 32).sum()
}

// ---- RFC 7541 Appendix C.2: one representation each, on a fresh table ----

#[test]
fn rfc7541_c_2_1_literal_with_indexing() {
    let block = hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    assert_eq!(
        decode(&mut Decoder::new(4096, 16384), &block).unwrap(),
        pairs(&[("custom-key", "custom-header")])
    );
    let table = table_after(4096, &[block]);
    assert_eq!(table, pairs(&[("custom-key", "custom-header")]));
    assert_eq!(table_size(&table), 55);
}

#[test]
fn rfc7541_c_2_2_literal_without_indexing() {
    let block = hex("040c 2f73 616d 706c 652f 7061 7468");
    assert_eq!(decode(&mut Decoder::new(4096, 16384), &block).unwrap(), pairs(&[(":path", "/sample/path")]));
    assert_eq!(table_after(4096, &[block]), []);
}

#[test]
fn rfc7541_c_2_3_literal_never_indexed() {
    let block = hex("1008 7061 7373 776f 7264 0673 6563 7265 74");
    assert_eq!(decode(&mut Decoder::new(4096, 16384), &block).unwrap(), pairs(&[("password", "secret")]));
    assert_eq!(table_after(4096, &[block]), []);
}

#[test]
fn rfc7541_c_2_4_indexed_field() {
    let block = hex("82");
    assert_eq!(decode(&mut Decoder::new(4096, 16384), &block).unwrap(), pairs(&[(":method", "GET")]));
    assert_eq!(table_after(4096, &[block]), []);
}

// ---- C.3 / C.4: three requests on one decoder, without and with Huffman ----

fn request_chain(blocks: [&str; 3]) {
    let blocks: Vec<Vec<u8>> = blocks.iter().map(|b| hex(b)).collect();
    let first = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")];
    let mut second = first.to_vec();
    second.push(("cache-control", "no-cache"));
    let third = [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ];
    let want = [pairs(&first), pairs(&second), pairs(&third)];
    let tables = [
        pairs(&[(":authority", "www.example.com")]),
        pairs(&[("cache-control", "no-cache"), (":authority", "www.example.com")]),
        pairs(&[
            ("custom-key", "custom-value"),
            ("cache-control", "no-cache"),
            (":authority", "www.example.com"),
        ]),
    ];
    let sizes = [57, 110, 164];

    let mut d = Decoder::new(4096, 16384);
    for i in 0..3 {
        assert_eq!(decode(&mut d, &blocks[i]).unwrap(), want[i], "request {}", i + 1);
        let table = table_after(4096, &blocks[..=i]);
        assert_eq!(table, tables[i], "table after request {}", i + 1);
        assert_eq!(table_size(&table), sizes[i]);
    }
}

#[test]
fn rfc7541_c_3_requests_without_huffman() {
    request_chain([
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]);
}

#[test]
fn rfc7541_c_4_requests_with_huffman() {
    request_chain([
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]);
}

// ---- C.5 / C.6: three responses on a 256-octet table, with evictions ----

fn response_chain(blocks: [&str; 3]) {
    let blocks: Vec<Vec<u8>> = blocks.iter().map(|b| hex(b)).collect();
    let date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
    let date2 = "Mon, 21 Oct 2013 20:13:22 GMT";
    let url = "https://www.example.com";
    let cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
    let want = [
        pairs(&[(":status", "302"), ("cache-control", "private"), ("date", date1), ("location", url)]),
        pairs(&[(":status", "307"), ("cache-control", "private"), ("date", date1), ("location", url)]),
        pairs(&[
            (":status", "200"),
            ("cache-control", "private"),
            ("date", date2),
            ("location", url),
            ("content-encoding", "gzip"),
            ("set-cookie", cookie),
        ]),
    ];
    let tables = [
        pairs(&[("location", url), ("date", date1), ("cache-control", "private"), (":status", "302")]),
        pairs(&[(":status", "307"), ("location", url), ("date", date1), ("cache-control", "private")]),
        pairs(&[("set-cookie", cookie), ("content-encoding", "gzip"), ("date", date2)]),
    ];
    let sizes = [222, 222, 215];

    // The examples assume SETTINGS_HEADER_TABLE_SIZE 256 in force, i.e. a table of 256 octets:
    // the peer would have signalled that with a size update, sent here before the first block.
    let shrink = hex("3fe1 01");
    let mut d = Decoder::new(256, 16384);
    assert_eq!(decode(&mut d, &shrink).unwrap(), []);
    for i in 0..3 {
        assert_eq!(decode(&mut d, &blocks[i]).unwrap(), want[i], "response {}", i + 1);
        let mut chain = vec![shrink.clone()];
        chain.extend_from_slice(&blocks[..=i]);
        let table = table_after(256, &chain);
        assert_eq!(table, tables[i], "table after response {}", i + 1);
        assert_eq!(table_size(&table), sizes[i]);
    }
}

#[test]
fn rfc7541_c_5_responses_without_huffman_evict() {
    response_chain([
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32
         3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970
         7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61
         6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
    ]);
}

#[test]
fn rfc7541_c_6_responses_with_huffman_evict() {
    response_chain([
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad
         1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2
         e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]);
}

// ---- Huffman decoding (RFC 7541 5.2, Appendix B) ----

/// Octets 0 to 255 in order, Huffman-coded by another implementation (python-hyper/hpack):
/// every code of Appendix B but EOS, 5 to 30 bits long.
const ALL_OCTETS_HUFFMAN: [&str; 13] = [
    "ffc7fffd8fffffe2fffffe3fffffe4fffffe5fffffe6fffffe7fffffe8ffffeafffffff3fffffa7fffffabffffffdfff",
    "ffebfffffecfffffedfffffeefffffefffffff0ffffff1ffffff2fffffffbfffffcffffffd3fffffd7fffffdbfffffdf",
    "fffffe3fffffe7fffffebfffffed4fe3f9ffaffcabf1febfafefe7fdfd2cbb00089969b71d79fb9f7fff20ffbff3ff50",
    "ddbd7f061c58f265cd9f469d5af66dddbf871e5f9cff7ff7fffc3ff9ffe45fff4719242cb34e6e9d68a6a3d7dac426de",
    "fe3cfaf7fffbfe7ffbffdffffffcfffe6ffff4bfff9ffffa3fffd3ffff53fffd5ffffb3fffeb7fffdaffffb7ffff73ff",
    "feeffffdeffffebffffbfffffd9ffffdbfffebffffe0ffffeeffffc3ffff8bffff1ffffe4fffee7fffb1ffff97fffd9f",
    "fffcdffff9fffffbffffdafffeeffff4ffffb7fffee7fffe8ffffd3fffdeffffd5fffeeffffbdffffe1fffdfffff7fff",
    "ff5ffffecffff07fff87fffe0ffff17fffedffff87ffff77fffeffffeaffff8bfffe3ffff93ffff87fffcbffff37ffff",
    "1fffff83ffffe1fffebfffe3ffff3fffff2ffffa3ffffd9fffff17ffffc7fffff27ffffdefffffbffffff2fffff8ffff",
    "fb7fff97fff8fffffe6fffffc1fffff87ffffe7fffffc5ffffe5fffe4ffff2fffffd1fffff4ffffffefffffe3fffffc9",
    "fffff97fffb3ffffcffffb7fffcdffff4ffff9ffffd1ffffcffffeaffffafffffddffffeffffff4fffff5fffffabffff",
    "a7ffffd7fffff9bffffecfffffb7fffff3fffffe8fffffd3fffffabfffff5fffffff7ffffecfffffdbfffffbbfffff7f",
    "fffff0fffffbbf",
];

/// A literal field without indexing whose name is `coded`, marked Huffman, and whose value is
/// empty.
fn huffman_name_block(coded: &[u8]) -> Vec<u8> {
    let mut block = vec![0x00, 0xff];
    hpack_int(coded.len() - 127, &mut block);
    block.extend_from_slice(coded);
    block.push(0x00);
    block
}

#[test]
fn rfc7541_appendix_b_every_code_decodes() {
    let coded = hex(&ALL_OCTETS_HUFFMAN.concat());
    let mut list = HeaderList::new();
    Decoder::new(4096, u32::MAX).decode(&huffman_name_block(&coded), &mut list).unwrap();
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(list.iter().next().unwrap().0, &all[..]);
}

/// The crate's own Huffman decoder, which the wrapper replaces, is the reference: same octets
/// or both an error. One bits are made likely so that the long codes (up to 30 bits, most of
/// them ones) and the padding rules are reached often.
#[test]
fn huffman_decoding_agrees_with_loona_hpack() {
    let mut rng = Rng(0x0bad_5eed_cafe_f00d);
    let mut list = HeaderList::new();
    let mut d = Decoder::new(4096, u32::MAX);
    let (mut valid, mut invalid) = (0, 0);
    for i in 0..40_000 {
        let ones_per_16 = [8, 12, 14, 15][i % 4];
        let mut coded: Vec<u8> = (0..128 + rng.below(24))
            .map(|_| (0..8).fold(0u8, |b, _| b << 1 | u8::from(rng.below(16) < ones_per_16)))
            .collect();
        coded.truncate(127 + rng.below(coded.len() - 126));
        let reference = hpack::huffman::HuffmanDecoder::new().decode(&coded);
        let ours = d.decode(&huffman_name_block(&coded), &mut list);
        match (reference, ours) {
            (Ok(octets), Ok(())) => {
                assert_eq!(list.iter().next().unwrap().0, &octets[..], "{coded:02x?}");
                valid += 1;
            }
            (Err(_), Err(DecodeError::Compression(m))) if m.contains("5.2") => invalid += 1,
            (reference, ours) => panic!("{coded:02x?}: loona-hpack {reference:?}, ours {ours:?}"),
        }
    }
    assert!(valid > 5_000 && invalid > 5_000, "valid {valid}, invalid {invalid}");
}

#[test]
fn rfc7541_5_2_huffman_padding_rules() {
    let decode_name = |coded: &[u8]| {
        let mut block = vec![0x00, 0x80 | coded.len() as u8];
        block.extend_from_slice(coded);
        block.push(0x00);
        decode(&mut Decoder::new(4096, 16384), &block).map(|f| f[0].0.clone())
    };
    // '0' is 00000: three bits of padding, ones, is right.
    assert_eq!(decode_name(&[0x07]).unwrap(), "0");
    // Padding of zeros, or not a prefix of EOS.
    assert!(decode_name(&[0x00]).is_err());
    assert!(decode_name(&[0x06]).is_err());
    // Eight bits of ones after a whole code: padding longer than 7 bits.
    assert!(decode_name(&[0x07, 0xff]).is_err());
    assert!(decode_name(&[0xff]).is_err());
    // Nothing at all is the empty string; EOS itself (30 ones) is an error.
    assert_eq!(decode_name(&[]).unwrap(), "");
    assert!(decode_name(&[0xff, 0xff, 0xff, 0xfc]).is_err());
    assert!(decode_name(&[0xff, 0xff, 0xff, 0xff]).is_err());
}

// ---- HeaderList ----

#[test]
fn header_list_stores_fields_flat_and_reports_rfc9113_size() {
    let mut list = HeaderList::new();
    assert!(list.is_empty());
    list.push(b"a", b"1");
    list.push(b"", b"");
    list.push(b"a", b"22");
    assert_eq!(list.len(), 3);
    assert_eq!(list.get(b"a"), Some(&b"1"[..]));
    assert_eq!(list.get(b"b"), None);
    let all: Vec<_> = list.iter().collect();
    assert_eq!(all, [(&b"a"[..], &b"1"[..]), (&b""[..], &b""[..]), (&b"a"[..], &b"22"[..])]);
    assert_eq!(list.list_size(), (1 + 1 + 32) + 32 + (1 + 2 + 32));
    list.clear();
    assert!(list.is_empty());
    assert_eq!(list.list_size(), 0);
}

#[test]
fn decode_clears_the_list_first() {
    let mut d = Decoder::new(4096, 16384);
    let mut list = HeaderList::new();
    list.push(b"stale", b"field");
    d.decode(&[0x82], &mut list).unwrap();
    assert_eq!(fields(&list), pairs(&[(":method", "GET")]));
}

// ---- Dynamic table size updates (RFC 7541 4.2, 6.3) ----

#[test]
fn rfc7541_4_2_size_update_after_a_field_is_a_compression_error() {
    // :method GET, then a size update to 0, then :path /. loona-hpack alone would accept it.
    let err = decode(&mut Decoder::new(4096, 16384), &[0x82, 0x20, 0x84]).unwrap_err();
    assert!(matches!(err, DecodeError::Compression(m) if m.contains("RFC 7541 4.2")), "{err:?}");
}

#[test]
fn rfc7541_4_2_size_updates_at_the_beginning_are_applied() {
    let mut d = Decoder::new(4096, 16384);
    // Insert an entry, then shrink to 0 (evicting it) and grow back, both before the first field.
    decode(&mut d, &hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")).unwrap();
    assert_eq!(decode(&mut d, &[0xbe]).unwrap(), pairs(&[("custom-key", "custom-header")]));
    assert_eq!(decode(&mut d, &[0x20, 0x3f, 0xe1, 0x1f, 0x82]).unwrap(), pairs(&[(":method", "GET")]));
    assert!(matches!(decode(&mut d, &[0xbe]), Err(DecodeError::Compression(_))), "entry was evicted");
}

#[test]
fn rfc7541_6_3_block_of_only_a_size_update_is_valid() {
    let mut d = Decoder::new(4096, 16384);
    assert_eq!(decode(&mut d, &[0x20]).unwrap(), []);
    assert_eq!(decode(&mut d, &[0x82]).unwrap(), pairs(&[(":method", "GET")]));
}

#[test]
fn rfc7541_6_3_size_update_above_settings_header_table_size_is_a_compression_error() {
    let acked = |size| {
        let mut d = Decoder::new(size, 16384);
        d.header_table_size_acked();
        d
    };
    // Once our SETTINGS are acknowledged, 256 is the limit: an update to 256 passes, one to 257
    // or 4096 does not.
    assert!(decode(&mut acked(256), &[0x3f, 0xe1, 0x01, 0x82]).is_ok());
    for block in [&[0x3f, 0xe2, 0x01, 0x82][..], &[0x3f, 0xe1, 0x1f, 0x82]] {
        let err = decode(&mut acked(256), block).unwrap_err();
        assert!(matches!(err, DecodeError::Compression(m) if m.contains("RFC 7541 6.3")), "{err:?}");
    }
    // Before, the initial 4096 octets are (RFC 9113 6.5.3: a setting binds once acknowledged).
    assert!(decode(&mut Decoder::new(256, 16384), &[0x3f, 0xe1, 0x1f, 0x82]).is_ok());
    assert!(decode(&mut Decoder::new(256, 16384), &[0x3f, 0xe2, 0x1f, 0x82]).is_err());
    // A table size of 0 allows only an update to 0.
    assert!(decode(&mut acked(0), &[0x20, 0x82]).is_ok());
    assert!(decode(&mut acked(0), &[0x21, 0x82]).is_err());
}

#[test]
fn rfc7541_4_2_size_update_required_after_smaller_table_size_is_acknowledged() {
    // Before our SETTINGS are acknowledged the peer may use the initial 4096 octets.
    let mut d = Decoder::new(256, 16384);
    // ("x", 1000 octets): 1033 octets, more than 256 and less than 4096.
    let mut big = vec![0x40, 0x01, b'x', 0x7f];
    hpack_int(1000 - 127, &mut big);
    big.extend_from_slice(&[b'v'; 1000]);
    assert_eq!(decode(&mut d, &big).unwrap()[0].1.len(), 1000);
    assert_eq!(decode(&mut d, &[0xbe]).unwrap()[0].0, "x");
    d.header_table_size_acked();
    let err = decode(&mut d, &[0x82]).unwrap_err();
    assert!(matches!(err, DecodeError::Compression(m) if m.contains("RFC 7541 4.2")), "{err:?}");

    let mut d = Decoder::new(256, 16384);
    decode(&mut d, &big).unwrap();
    d.header_table_size_acked();
    assert_eq!(decode(&mut d, &[0x3f, 0xe1, 0x01, 0x82]).unwrap(), pairs(&[(":method", "GET")]));
    // The update evicted the 1033-octet entry, and later blocks need no further update.
    assert!(decode(&mut d, &[0xbe]).is_err());
    let mut d2 = Decoder::new(256, 16384);
    d2.header_table_size_acked();
    assert!(decode(&mut d2, &[0x82]).is_err(), "table still 4096 after the ack");
    let mut d3 = Decoder::new(4096, 16384);
    d3.header_table_size_acked();
    assert!(decode(&mut d3, &[0x82]).is_ok(), "no reduction, no update needed");
}

// ---- Malformed blocks ----

#[test]
fn rfc7541_compression_errors_cite_the_section() {
    let cases: [(&str, &[u8], &str); 9] = [
        ("index 0", &[0x80], "2.3.3"),
        ("index past the dynamic table", &[0xbe], "2.3.3"),
        ("literal name index past the table", &[0x7e, 0x00], "2.3.3"),
        ("integer with too many octets", &[0xff, 0xff, 0xff, 0xff, 0xff, 0x0f], "5.1"),
        ("size update with too many octets", &[0x3f, 0xff, 0xff, 0xff, 0xff, 0x0f], "5.1"),
        ("truncated integer", &[0xff, 0x80], "5.1"),
        ("string past the end", &[0x40, 0x0a, b'a', b'b'], "5.2"),
        ("Huffman EOS", &[0x40, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00], "5.2"),
        ("Huffman padding of zeros", &[0x40, 0x81, 0x00, 0x00], "5.2"),
    ];
    for (what, block, section) in cases {
        let err = decode(&mut Decoder::new(4096, 16384), block).unwrap_err();
        assert!(
            matches!(err, DecodeError::Compression(m) if m.contains(&format!("RFC 7541 {section}"))),
            "{what}: {err:?}"
        );
    }
}

#[test]
fn rfc7541_5_1_largest_five_octet_integer_is_an_index_not_a_panic() {
    // 2^28 + 126: within the integer limit, far past any table.
    let err = decode(&mut Decoder::new(4096, 16384), &[0xff, 0xff, 0xff, 0xff, 0x7f]).unwrap_err();
    assert!(matches!(err, DecodeError::Compression(m) if m.contains("2.3.3")), "{err:?}");
}

// ---- SETTINGS_MAX_HEADER_LIST_SIZE and the HPACK bomb ----

#[test]
fn rfc9113_6_5_2_list_at_the_limit_passes_one_octet_over_does_not() {
    // ("x", 10 octets) is 1 + 10 + 32 = 43 octets.
    let field = [&[0x00, 0x01, b'x', 0x0a][..], b"0123456789"].concat();
    let block = [field.clone(), field.clone()].concat();
    assert_eq!(decode(&mut Decoder::new(4096, 86), &block).unwrap().len(), 2);
    let mut list = HeaderList::new();
    assert_eq!(Decoder::new(4096, 85).decode(&block, &mut list), Err(DecodeError::HeaderListTooLarge));
    assert_eq!(list.len(), 1);
}

#[test]
fn cve_2016_6581_hpack_bomb_is_bounded_and_keeps_the_table_in_sync() {
    const MAX: u32 = 16 * 1024;
    // One ~4 KiB entry (1 + 4000 + 32 octets) inserted, then referenced 10,000 times: 40 MB of
    // decoded fields from a 10 KB block.
    let value = vec![b'b'; 4000];
    let mut block = vec![0x40, 0x01, b'x', 0x7f];
    hpack_int(4000 - 127, &mut block);
    block.extend_from_slice(&value);
    block.extend(std::iter::repeat_n(0xbe, 10_000));

    let mut d = Decoder::new(4096, MAX);
    let mut list = HeaderList::new();
    assert_eq!(d.decode(&block, &mut list), Err(DecodeError::HeaderListTooLarge));
    assert!(list.list_size() <= MAX as usize, "stored {} octets", list.list_size());
    assert_eq!(list.len(), 4);

    // The table is in step with the peer: the entry is there, and a following normal block
    // (an insertion and two references) decodes as the peer meant it.
    let next = [&[0x82, 0xbe, 0x40, 0x01, b'y', 0x01, b'z'][..], &[0xbe, 0xbf]].concat();
    d.decode(&next, &mut list).unwrap();
    let got: Vec<_> = list.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
    let x = (b"x".to_vec(), value.clone());
    let y = (b"y".to_vec(), b"z".to_vec());
    assert_eq!(got, [(b":method".to_vec(), b"GET".to_vec()), x.clone(), y.clone(), y, x]);
}

/// The continuation octets of an HPACK integer whose prefix is already full (RFC 7541 5.1).
fn hpack_int(mut rest: usize, dst: &mut Vec<u8>) {
    while rest >= 128 {
        dst.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    dst.push(rest as u8);
}

// ---- Encoder ----

/// xorshift64*: a fixed-seed generator so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// `min` plus up to `spread - 1` random octets.
    fn bytes(&mut self, min: usize, spread: usize) -> Vec<u8> {
        let len = min + self.below(spread);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn random_fields(rng: &mut Rng) -> Vec<(Vec<u8>, Vec<u8>)> {
    const NAMES: [&str; 12] = [
        ":status",
        "content-type",
        "content-length",
        "date",
        "server",
        "set-cookie",
        "cookie",
        "authorization",
        "proxy-authorization",
        "x-request-id",
        "cache-control",
        "vary",
    ];
    const VALUES: [&str; 6] = ["200", "text/html", "0", "private", "gzip", "a-somewhat-longer-value"];
    (0..rng.below(12))
        .map(|_| {
            let name = match rng.below(4) {
                0 => rng.bytes(1, 20),
                _ => NAMES[rng.below(NAMES.len())].as_bytes().to_vec(),
            };
            let value = match rng.below(10) {
                0..=3 => VALUES[rng.below(VALUES.len())].as_bytes().to_vec(),
                4..=7 => rng.bytes(0, 40),
                8 => rng.bytes(100, 400),
                _ => rng.bytes(3000, 3000),
            };
            (name, value)
        })
        .collect()
}

#[test]
fn encoder_round_trips_generated_header_lists() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut enc = Encoder::new();
    let mut dec = Decoder::new(4096, u32::MAX);
    let mut list = HeaderList::new();
    for i in 0..5000 {
        if rng.below(20) == 0 {
            for _ in 0..1 + rng.below(3) {
                enc.set_peer_table_size([0, 1, 64, 256, 4096, 65536][rng.below(6)]);
            }
        }
        let want = random_fields(&mut rng);
        let mut block = Vec::new();
        enc.encode(want.iter().map(|(n, v)| (&n[..], &v[..])), &mut block);
        dec.decode(&block, &mut list).unwrap_or_else(|e| panic!("block {i}: {e:?}"));
        let got: Vec<_> = list.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        assert_eq!(got, want, "block {i}");
    }
}

#[test]
fn encoder_appends_to_dst() {
    let mut enc = Encoder::new();
    let mut dst = vec![0xaa];
    enc.encode([(&b":status"[..], &b"200"[..])], &mut dst);
    assert_eq!(dst, [0xaa, 0x88]);
}

#[test]
fn rfc7541_6_3_encoder_signals_a_smaller_peer_table_size() {
    let mut enc = Encoder::new();
    enc.set_peer_table_size(256);
    let mut block = Vec::new();
    enc.encode([(&b":status"[..], &b"200"[..])], &mut block);
    assert_eq!(block[0] & 0xe0, 0x20, "starts with a size update");
    assert_eq!(block, [0x3f, 0xe1, 0x01, 0x88]);
    // A decoder that allows only 256 octets accepts it, and wants it after the ack.
    let mut dec = Decoder::new(256, 16384);
    dec.header_table_size_acked();
    assert_eq!(decode(&mut dec, &block).unwrap(), pairs(&[(":status", "200")]));
    // Signalled once: the next block has no update.
    block.clear();
    enc.encode([(&b":status"[..], &b"200"[..])], &mut block);
    assert_eq!(block, [0x88]);
}

#[test]
fn rfc7541_4_2_encoder_signals_the_minimum_then_the_final_size() {
    let mut enc = Encoder::new();
    let mut dec = Decoder::new(4096, 16384);
    let field = [(&b"x-id"[..], &b"abc"[..])];
    let mut block = Vec::new();
    enc.encode(field, &mut block);
    assert_eq!(block[0], 0x40, "inserted");
    decode(&mut dec, &block).unwrap();

    // Shrunk to 100, then back to 4096 before the next block: both sizes, smallest first.
    enc.set_peer_table_size(100);
    enc.set_peer_table_size(8192);
    block.clear();
    enc.encode(field, &mut block);
    assert_eq!(block[..5], [0x3f, 0x45, 0x3f, 0xe1, 0x1f]);
    assert_eq!(block[5], 0xbe, "x-id (39 octets) survived a 100-octet table");
    assert_eq!(decode(&mut dec, &block).unwrap(), pairs(&[("x-id", "abc")]));

    // Shrunk to 0 and back: the entry is gone on both sides, so it is sent as a literal again.
    enc.set_peer_table_size(0);
    enc.set_peer_table_size(4096);
    block.clear();
    enc.encode(field, &mut block);
    assert_eq!(block[..4], [0x20, 0x3f, 0xe1, 0x1f]);
    assert_eq!(block[4], 0x40);
    assert_eq!(decode(&mut dec, &block).unwrap(), pairs(&[("x-id", "abc")]));

    // No change, no update; a peer size above 4096 is used as 4096.
    enc.set_peer_table_size(4096);
    enc.set_peer_table_size(1 << 20);
    block.clear();
    enc.encode(field, &mut block);
    assert_eq!(block, [0xbe]);
}

#[test]
fn rfc7541_7_1_3_credentials_are_never_indexed() {
    let mut enc = Encoder::new();
    let mut dec = Decoder::new(4096, 16384);
    let short_cookie = "a=1";
    let long_cookie = "session=0123456789abcdef0123456789abcdef";
    let cases: [(&str, &str, &[u8]); 4] = [
        ("authorization", "Bearer x", &[0x1f, 0x08]),
        ("proxy-authorization", "Basic y", &[0x1f, 0x22]),
        ("set-cookie", "id=1; HttpOnly", &[0x1f, 0x28]),
        ("cookie", short_cookie, &[0x1f, 0x11]),
    ];
    for (name, value, prefix) in cases {
        for _ in 0..2 {
            let mut block = Vec::new();
            enc.encode([(name.as_bytes(), value.as_bytes())], &mut block);
            let mut want = prefix.to_vec();
            want.push(value.len() as u8);
            want.extend_from_slice(value.as_bytes());
            assert_eq!(block, want, "{name}: a never-indexed literal every time");
            assert_eq!(decode(&mut dec, &block).unwrap(), pairs(&[(name, value)]));
        }
    }
    // A long cookie is not guessable from sizes: indexed like any other field.
    let mut block = Vec::new();
    enc.encode([(&b"cookie"[..], long_cookie.as_bytes())], &mut block);
    assert_eq!(block[0] & 0xf0, 0x00, "literal without indexing: the name cookie is in the static table");
    block.clear();
    enc.encode([(&b"x-cookie"[..], long_cookie.as_bytes())], &mut block);
    enc.encode([(&b"x-cookie"[..], long_cookie.as_bytes())], &mut block);
    assert_eq!(block.last(), Some(&0xbe));
}

// ---- Arbitrary input ----

#[test]
fn random_blocks_never_panic() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut list = HeaderList::new();
    let mut decoders = [
        Decoder::new(0, 256),
        Decoder::new(256, 1024),
        Decoder::new(4096, 16384),
        Decoder::new(65536, u32::MAX),
    ];
    let (mut ok, mut too_large) = (0, 0);
    for i in 0..200_000 {
        // Half the blocks start from bytes that are likelier to be valid field representations.
        let mut block = rng.bytes(0, 64);
        if i % 2 == 0 {
            for b in block.iter_mut().step_by(3) {
                *b = [0x82, 0x84, 0xbe, 0x40, 0x00, 0x10, 0x20, 0x05][(*b % 8) as usize];
            }
        }
        let d = &mut decoders[i % 4];
        match d.decode(&block, &mut list) {
            Ok(()) if !list.is_empty() => ok += 1,
            Ok(()) => {}
            Err(DecodeError::HeaderListTooLarge) => too_large += 1,
            Err(DecodeError::Compression(m)) => assert!(m.contains("RFC 7541"), "{m}"),
        }
        assert!(list.list_size() <= [256, 1024, 16384, usize::MAX][i % 4]);
        if i % 1000 == 0 {
            // Start over now and then, as a new connection would after an error.
            *d = Decoder::new([0, 256, 4096, 65536][i % 4], [256, 1024, 16384, u32::MAX][i % 4]);
        }
    }
    // Blocks did decode to fields, and did hit the list limit: the input reached past the first
    // representation.
    println!("ok {ok}, too large {too_large}");
    assert!(ok > 1000 && too_large > 0, "ok {ok}, too large {too_large}");
}

#[test]
fn mutated_valid_blocks_never_panic() {
    // Blocks a real encoder wrote, with one to three octets flipped, dropped or inserted:
    // these get deep into the decoder, where purely random octets fail at the first field.
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut enc = Encoder::new();
    let mut list = HeaderList::new();
    let mut d = Decoder::new(4096, 2048);
    let (mut ok, mut too_large, mut errors) = (0, 0, 0);
    for i in 0..50_000 {
        let fields = random_fields(&mut rng);
        let mut block = Vec::new();
        enc.encode(fields.iter().map(|(n, v)| (&n[..], &v[..])), &mut block);
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(block.len() + 1);
            match rng.below(3) {
                0 if at < block.len() => block[at] ^= 1 << rng.below(8),
                1 if at < block.len() => {
                    block.truncate(at);
                }
                _ => block.insert(at, rng.next() as u8),
            }
        }
        match d.decode(&block, &mut list) {
            Ok(()) => ok += 1,
            Err(DecodeError::HeaderListTooLarge) => too_large += 1,
            Err(DecodeError::Compression(m)) => {
                assert!(m.contains("RFC 7541"), "{m}");
                errors += 1;
                // The connection would end here; the encoder's peer goes with it.
                d = Decoder::new(4096, 2048);
                enc = Encoder::new();
            }
        }
        assert!(list.list_size() <= 2048, "block {i}");
    }
    println!("ok {ok}, too large {too_large}, errors {errors}");
    assert!(
        ok > 1000 && too_large > 1000 && errors > 1000,
        "ok {ok}, too large {too_large}, errors {errors}"
    );
}

#[test]
fn codec_state_can_live_in_a_nif_resource() {
    // Rustler resources must be Send + Sync.
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Decoder>();
    send_sync::<Encoder>();
    send_sync::<HeaderList>();
}
