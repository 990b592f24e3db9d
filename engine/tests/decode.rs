//! Tests of the decode stage: each link layer, IP layer and tunnel kind on packets built byte
//! by byte (the cases of tests/test_decode.py, test_tunnels.py and test_fragments.py), plus
//! property tests: arbitrary bytes never panic, fragment tables stay within their bounds.
//! The byte-identical comparison with Python is `examples/dump_decode.rs`.

use proptest::prelude::*;
use tlspcap_engine::decode::{PacketDecoder, MAX_DEPTH};
use tlspcap_engine::linktypes as lt;
use tlspcap_engine::model::{Anomaly, Decoded, IcmpError, RawPacket, TcpSegment};

const SRC4: [u8; 4] = [192, 0, 2, 1];
const DST4: [u8; 4] = [198, 51, 100, 2];
const OUT_A: [u8; 4] = [203, 0, 113, 1];
const OUT_B: [u8; 4] = [203, 0, 113, 2];
const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

// ---- builders ----------------------------------------------------------------------------

fn tcp_opts(payload: &[u8], options: &[u8]) -> Vec<u8> {
    let doff = (20 + options.len()) / 4;
    let mut t = vec![
        0x30,
        0x39,
        0x01,
        0xbb,
        0,
        0,
        0,
        100,
        0,
        0,
        0,
        200,
        (doff << 4) as u8,
        0x18,
        0x10,
        0,
    ];
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(options);
    t.extend_from_slice(payload);
    t
}

fn tcp(payload: &[u8]) -> Vec<u8> {
    tcp_opts(payload, &[])
}

fn ipv4_full(body: &[u8], proto: u8, src: [u8; 4], dst: [u8; 4], ident: u16, frag: u16) -> Vec<u8> {
    let total = (20 + body.len()) as u16;
    let mut h = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        (ident >> 8) as u8,
        ident as u8,
    ];
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(body);
    h
}

fn ipv4(body: &[u8], proto: u8) -> Vec<u8> {
    ipv4_full(body, proto, SRC4, DST4, 7, 0)
}

fn ipv6(body: &[u8], nh: u8) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(&[nh, 63]);
    h.extend_from_slice(&SRC6);
    h.extend_from_slice(&DST6);
    h.extend_from_slice(body);
    h
}

fn ether(body: &[u8], et: u16) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&et.to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn udp(body: &[u8], sport: u16, dport: u16) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(body);
    u
}

fn outer_udp(body: &[u8], dport: u16) -> Vec<u8> {
    ether(
        &ipv4_full(&udp(body, 40000, dport), 17, OUT_A, OUT_B, 1, 0),
        0x0800,
    )
}

fn outer_gre(body: &[u8]) -> Vec<u8> {
    ether(&ipv4_full(body, 47, OUT_A, OUT_B, 1, 0), 0x0800)
}

fn inner4() -> Vec<u8> {
    ether(&ipv4(&tcp(b"inner"), 6), 0x0800)
}

// ---- running -----------------------------------------------------------------------------

fn run(
    dec: &mut PacketDecoder,
    linktype: u32,
    frame: u64,
    data: &[u8],
    orig_len: u64,
) -> Vec<Decoded> {
    let mut out = Vec::new();
    let p = RawPacket {
        frame,
        ts: 1000.0 + frame as f64,
        linktype,
        data,
        orig_len,
    };
    dec.decode(&p, &mut out);
    out
}

fn seg_of(linktype: u32, data: &[u8]) -> Option<TcpSegment> {
    let mut dec = PacketDecoder::new();
    run(&mut dec, linktype, 1, data, data.len() as u64)
        .into_iter()
        .find_map(|d| match d {
            Decoded::Segment(s) => Some(s),
            _ => None,
        })
}

fn anomalies_of(linktype: u32, frames: &[Vec<u8>]) -> Vec<Anomaly> {
    let mut dec = PacketDecoder::new();
    for (i, f) in frames.iter().enumerate() {
        run(&mut dec, linktype, i as u64 + 1, f, f.len() as u64);
    }
    dec.finish();
    dec.anomalies()
}

fn names(a: &[Anomaly]) -> Vec<&str> {
    a.iter().map(|a| a.name.as_str()).collect()
}

// ---- link layers -------------------------------------------------------------------------

#[test]
fn ethernet_ipv4_tcp_fast_path() {
    let s = seg_of(
        lt::ETHERNET,
        &ether(&ipv4(&tcp_opts(b"hello", &[2, 4, 5, 0xb4]), 6), 0x0800),
    )
    .unwrap();
    assert_eq!(s.src, SRC4);
    assert_eq!(s.dst, DST4);
    assert_eq!(
        (s.sport, s.dport, s.seq, s.ack, s.flags, s.window),
        (12345, 443, 100, 200, 0x18, 0x1000)
    );
    assert_eq!(s.payload, b"hello");
    assert_eq!(s.options, [2, 4, 5, 0xb4]);
    assert_eq!((s.ttl, s.ip_id, s.missing, s.fragments), (64, 7, 0, 0));
    assert_eq!(s.tunnel, None);
}

#[test]
fn ethernet_padding_and_fcs_are_cut() {
    let mut f = ether(&ipv4(&tcp(b""), 6), 0x0800);
    f.extend_from_slice(&[0xAA; 10]);
    assert_eq!(seg_of(lt::ETHERNET, &f).unwrap().payload, b"");
}

#[test]
fn vlan_stacks_are_not_a_tunnel() {
    let ip = ipv4(&tcp(b"x"), 6);
    let mut body = vec![0x00, 0x05, 0x81, 0x00, 0x00, 0x06, 0x08, 0x00];
    body.extend_from_slice(&ip);
    let s = seg_of(lt::ETHERNET, &ether(&body, 0x88a8)).unwrap();
    assert_eq!((s.payload.as_slice(), s.tunnel.clone()), (&b"x"[..], None));
}

#[test]
fn linux_cooked_raw_loopback_erf() {
    let ip4 = ipv4(&tcp(b"a"), 6);
    let ip6 = ipv6(&tcp(b"b"), 6);
    let mut sll = vec![0u8; 14];
    sll.extend_from_slice(&[0x08, 0x00]);
    sll.extend_from_slice(&ip4);
    assert_eq!(seg_of(lt::LINUX_SLL, &sll).unwrap().payload, b"a");
    let mut sll2 = vec![0x86, 0xdd];
    sll2.extend_from_slice(&[0u8; 18]);
    sll2.extend_from_slice(&ip6);
    assert_eq!(seg_of(lt::LINUX_SLL2, &sll2).unwrap().payload, b"b");
    assert_eq!(seg_of(lt::RAW, &ip6).unwrap().ip_id, -1);
    assert_eq!(seg_of(lt::DLT_RAW_14, &ip4).unwrap().payload, b"a");
    assert_eq!(seg_of(lt::IPV4, &ip4).unwrap().payload, b"a");
    assert_eq!(seg_of(lt::IPV6, &ip6).unwrap().payload, b"b");
    let mut null_le = vec![2, 0, 0, 0];
    null_le.extend_from_slice(&ip4);
    assert_eq!(seg_of(lt::NULL, &null_le).unwrap().payload, b"a");
    let mut null_be = vec![0, 0, 0, 30];
    null_be.extend_from_slice(&ip6);
    assert_eq!(seg_of(lt::NULL, &null_be).unwrap().payload, b"b");
    assert_eq!(seg_of(lt::LOOP, &null_be).unwrap().payload, b"b");
    // ERF: Ethernet record with one extension header
    let mut erf = vec![0u8; 16];
    erf[8] = 0x82;
    erf.extend_from_slice(&[0u8; 8]);
    erf.extend_from_slice(&[0, 0]);
    erf.extend_from_slice(&ether(&ip4, 0x0800));
    assert_eq!(seg_of(lt::ERF, &erf).unwrap().payload, b"a");
    let mut meta = vec![0u8; 16];
    meta[8] = 27;
    let a = anomalies_of(lt::ERF, &[meta, vec![0u8; 3]]);
    assert_eq!(names(&a), ["truncated_header", "non_tcp_traffic"]);
    assert!(a[1].detail.contains("ERF metadata 1"));
}

#[test]
fn loopback_unknown_family() {
    let a = anomalies_of(lt::NULL, &[vec![7, 0, 0, 0, 1]]);
    assert_eq!(
        a[0].detail,
        "1 loopback frame(s) of address family 7: not IP, not analysed; first at frame 1"
    );
}

// ---- IP and TCP --------------------------------------------------------------------------

#[test]
fn snaplen_cut_counts_missing_bytes() {
    let f = ether(&ipv4(&tcp(&[7u8; 100]), 6), 0x0800);
    let mut dec = PacketDecoder::new();
    let out = run(&mut dec, lt::ETHERNET, 1, &f[..64], f.len() as u64);
    let Decoded::Segment(s) = &out[0] else {
        panic!()
    };
    assert_eq!((s.payload.len(), s.missing), (10, 90));
    // cut inside the options: the segment, empty payload
    let f = ether(&ipv4(&tcp_opts(b"zz", &[1; 12]), 6), 0x0800);
    let out = run(&mut dec, lt::ETHERNET, 2, &f[..58], f.len() as u64);
    let Decoded::Segment(s) = &out[0] else {
        panic!()
    };
    assert_eq!((s.payload.len(), s.missing, s.options.len()), (0, 2, 4));
    // cut inside the TCP header: truncated_header
    let out = run(&mut dec, lt::ETHERNET, 3, &f[..40], f.len() as u64);
    assert!(out.is_empty());
    dec.finish();
    assert_eq!(dec.anomalies()[0].detail, "1 packet(s) end inside their TCP header (cut by the snap length or damaged): not decoded; first at frame 3");
}

#[test]
fn tso_zero_total_length() {
    let mut ip = ipv4(&tcp(&[1u8; 3000]), 6);
    ip[2] = 0;
    ip[3] = 0;
    let s = seg_of(lt::ETHERNET, &ether(&ip, 0x0800)).unwrap();
    assert_eq!(s.payload.len(), 3000);
}

#[test]
fn ipv6_extension_headers_are_skipped() {
    let mut body = vec![60, 0, 0, 0, 0, 0, 0, 0]; // hop-by-hop -> destination options
    body.extend_from_slice(&[51, 0, 0, 0, 0, 0, 0, 0]); // destination options -> AH
    body.extend_from_slice(&[6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // AH (12 bytes) -> TCP
    body.extend_from_slice(&tcp(b"ext"));
    let s = seg_of(lt::RAW, &ipv6(&body, 0)).unwrap();
    assert_eq!(s.payload, b"ext");
}

#[test]
fn malformed_headers_named() {
    let mut bad = ipv4(&tcp(b""), 6);
    bad[0] = 0x44;
    let mut short = ipv4(&tcp(b""), 6);
    short[32] = 0x10; // data offset 4
    let a = anomalies_of(lt::RAW, &[bad, vec![0x70], short, vec![]]);
    let d: Vec<&str> = a.iter().map(|a| a.detail.as_str()).collect();
    assert_eq!(d[0], "1 packet(s) with a malformed IPv4 header (header length 16): not decoded; first at frame 1");
    assert_eq!(
        d[1],
        "1 packet(s) with a malformed IP header (version field 7): not decoded; first at frame 2"
    );
    assert_eq!(d[2], "1 packet(s) with a malformed TCP header (data offset outside the segment): not decoded; first at frame 3");
    assert_eq!(d[3], "1 packet(s) end inside their IP header (cut by the snap length or damaged): not decoded; first at frame 4");
}

#[test]
fn non_tcp_traffic_counted() {
    let frames = [
        ether(&[0u8; 28], 0x0806),
        ether(&ipv4(&udp(b"dns", 5353, 53), 17), 0x0800),
        ether(&ipv4(&udp(b"q", 5353, 443), 17), 0x0800),
        ether(&ipv4(b"abcd", 89), 0x0800),
        ether(&[0u8; 30], 0x88cc),
        ether(&[0u8; 30], 0x0042),
        ether(&ipv4(&[0u8; 8], 50), 0x0800),
    ];
    let a = anomalies_of(lt::ETHERNET, &frames);
    assert_eq!(
        names(&a),
        [
            "other_ip_protocol",
            "unknown_ethertype",
            "unknown_ethertype",
            "esp_encrypted",
            "non_tcp_traffic"
        ]
    );
    assert_eq!(
        a[0].detail,
        "1 IP packet(s) of protocol 89 (OSPF), neither TCP nor UDP: not analysed; first at frame 4"
    );
    assert_eq!(a[4].detail, "3 packet(s) carry no TCP and are not analysed (ARP 1, UDP 1, UDP 443 (QUIC) 1); first at frame 1");
}

// ---- tunnels -----------------------------------------------------------------------------

fn tunnel_of(frame: &[u8]) -> String {
    seg_of(lt::ETHERNET, frame)
        .and_then(|s| s.tunnel)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[test]
fn vxlan_geneve_gpe() {
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    vx.extend_from_slice(&inner4());
    assert_eq!(
        tunnel_of(&outer_udp(&vx, 4789)),
        "VXLAN VNI 42 (203.0.113.1 -> 203.0.113.2)"
    );
    assert_eq!(
        tunnel_of(&outer_udp(&vx, 8472)),
        "VXLAN VNI 42 (203.0.113.1 -> 203.0.113.2)"
    );
    let mut gpe = vec![0x0C, 0, 0, 1, 0, 0, 5, 0];
    gpe.extend_from_slice(&ipv4(&tcp(b"inner"), 6));
    assert_eq!(
        tunnel_of(&outer_udp(&gpe, 4790)),
        "VXLAN-GPE VNI 5 (203.0.113.1 -> 203.0.113.2)"
    );
    let mut gen = vec![0x02, 0, 0x65, 0x58, 0, 0x10, 0x92, 0];
    gen.extend_from_slice(&[1, 2, 0x80, 1, b't', b'l', b's', b'p']);
    gen.extend_from_slice(&inner4());
    assert_eq!(
        tunnel_of(&outer_udp(&gen, 6081)),
        "Geneve VNI 4242 (203.0.113.1 -> 203.0.113.2)"
    );
}

#[test]
fn gre_erspan_mpls_pppoe_ip_in_ip() {
    let mut gre = vec![0x20, 0, 0x08, 0x00, 0, 0, 0, 7];
    gre.extend_from_slice(&ipv4(&tcp(b"g"), 6));
    assert_eq!(
        tunnel_of(&outer_gre(&gre)),
        "GRE key 7 (203.0.113.1 -> 203.0.113.2)"
    );
    let mut e2 = vec![
        0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0x00, 0x00, 0x21, 0, 0, 0, 0,
    ];
    e2.extend_from_slice(&inner4());
    assert_eq!(
        tunnel_of(&outer_gre(&e2)),
        "ERSPAN type II session 33 (203.0.113.1 -> 203.0.113.2)"
    );
    let mut e1 = vec![0, 0, 0x88, 0xbe];
    e1.extend_from_slice(&inner4());
    assert_eq!(
        tunnel_of(&outer_gre(&e1)),
        "ERSPAN type I (203.0.113.1 -> 203.0.113.2)"
    );
    let mut e3 = vec![
        0x10, 0, 0x22, 0xeb, 0, 0, 0, 1, 0x20, 0x00, 0x00, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    e3.extend_from_slice(&inner4());
    assert_eq!(
        tunnel_of(&outer_gre(&e3)),
        "ERSPAN type III session 12 (203.0.113.1 -> 203.0.113.2)"
    );
    let mut mpls = vec![0x00, 0x06, 0x40, 0x00, 0x00, 0x0c, 0x81, 0x00];
    mpls.extend_from_slice(&ipv4(&tcp(b"m"), 6));
    assert_eq!(tunnel_of(&ether(&mpls, 0x8847)), "MPLS labels 100/200");
    let mut pw = vec![0x00, 0x01, 0x11, 0x00, 0, 0, 0, 0];
    pw.extend_from_slice(&inner4());
    assert_eq!(tunnel_of(&ether(&pw, 0x8847)), "MPLS label 17");
    let ip = ipv4(&tcp(b"p"), 6);
    let mut pppoe = vec![0x11, 0, 0x12, 0x34];
    pppoe.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
    pppoe.extend_from_slice(&[0x00, 0x21]);
    pppoe.extend_from_slice(&ip);
    assert_eq!(tunnel_of(&ether(&pppoe, 0x8864)), "PPPoE session 0x1234");
    let ipip = ipv4_full(&ipv6(&tcp(b"6"), 6), 41, OUT_A, OUT_B, 1, 0);
    assert_eq!(
        tunnel_of(&ether(&ipip, 0x0800)),
        "IPv6-in-IPv4 (203.0.113.1 -> 203.0.113.2)"
    );
    // a VLAN tag inside a tunnel is part of its name
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 9, 0];
    vx.extend_from_slice(&ether(
        &[&[0x00, 0x64, 0x08, 0x00][..], &ipv4(&tcp(b""), 6)].concat(),
        0x8100,
    ));
    assert_eq!(
        tunnel_of(&outer_udp(&vx, 4789)),
        "VXLAN VNI 9 (203.0.113.1 -> 203.0.113.2) / VLAN 100"
    );
}

#[test]
fn mpls_and_gre_over_udp() {
    let mut m = vec![0x00, 0x06, 0x41, 0x00];
    m.extend_from_slice(&ipv4(&tcp(b"u"), 6));
    assert_eq!(tunnel_of(&outer_udp(&m, 6635)), "MPLS label 100");
    let mut g = vec![0x00, 0x00, 0x08, 0x00];
    g.extend_from_slice(&ipv4(&tcp(b"u"), 6));
    assert_eq!(
        tunnel_of(&outer_udp(&g, 4754)),
        "GRE (203.0.113.1 -> 203.0.113.2)"
    );
    // PPP protocol field compression (one byte)
    let ip = ipv4(&tcp(b"c"), 6);
    let mut pppoe = vec![0x11, 0, 0, 0x07];
    pppoe.extend_from_slice(&((ip.len() + 1) as u16).to_be_bytes());
    pppoe.push(0x21);
    pppoe.extend_from_slice(&ip);
    assert_eq!(tunnel_of(&ether(&pppoe, 0x8864)), "PPPoE session 0x0007");
}

#[test]
fn tunnel_names_are_shared_and_reported() {
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    vx.extend_from_slice(&inner4());
    let f = outer_udp(&vx, 4789);
    let mut dec = PacketDecoder::new();
    let mut tunnels = Vec::new();
    for frame in 1..=2 {
        for d in run(&mut dec, lt::ETHERNET, frame, &f, f.len() as u64) {
            if let Decoded::Segment(s) = d {
                tunnels.push(s.tunnel.unwrap());
            }
        }
    }
    assert!(std::sync::Arc::ptr_eq(&tunnels[0], &tunnels[1]));
    dec.finish();
    assert_eq!(dec.anomalies()[0].detail, "2 TCP segment(s) were decoded from inside tunnels (VXLAN VNI 42 (203.0.113.1 -> 203.0.113.2)); connections are reported by their inner addresses; first at frame 1");
}

#[test]
fn unsupported_and_malformed_tunnels() {
    let frames = [
        outer_udp(b"xxxxxxxxxxxx", 2152),
        outer_gre(&[0x00, 0x01, 0x88, 0x0b, 0, 0, 0, 0]),
        outer_udp(&[0x40, 0, 0x65, 0x58, 0, 0, 0, 0], 6081),
        outer_udp(&[1, 2, 3, 4, 5, 6, 7, 8], 4500),
    ];
    let a = anomalies_of(lt::ETHERNET, &frames);
    let d: Vec<&str> = a.iter().map(|a| a.detail.as_str()).collect();
    assert_eq!(d[0], "1 packet(s) in a tunnel tlspcap does not decode (GTP-U, UDP port 2152): their content is not analysed; first at frame 1");
    assert_eq!(d[1], "1 packet(s) in a tunnel tlspcap does not decode (PPTP enhanced GRE (version 1)): their content is not analysed; first at frame 2");
    assert_eq!(d[2], "1 packet(s) with a malformed tunnel header (Geneve version 1): not decoded; first at frame 3");
    assert_eq!(d[3], "1 IPsec ESP packet(s) (in UDP 4500, NAT traversal): encrypted, their content cannot be decoded; first at frame 4");
}

#[test]
fn nesting_past_max_depth_is_counted() {
    let mut f = inner4();
    for k in 0..=MAX_DEPTH {
        let mut vx = vec![0x08, 0, 0, 0, 0, 0, k as u8, 0];
        vx.extend_from_slice(&f);
        f = outer_udp(&vx, 4789);
    }
    let a = anomalies_of(lt::ETHERNET, &[f]);
    assert_eq!(a[0].detail, "1 packet(s) nest more than 8 encapsulations (tunnels and IP reassemblies): decoding stopped there; first at frame 1");
}

// ---- fragments and ICMP ----------------------------------------------------------------------

#[test]
fn ipv4_fragments_reassemble() {
    let seg = tcp(&[5u8; 40]);
    let (a, b) = seg.split_at(24);
    let f1 = ether(&ipv4_full(a, 6, SRC4, DST4, 99, 0x2000), 0x0800);
    let f2 = ether(&ipv4_full(b, 6, SRC4, DST4, 99, 3), 0x0800);
    let mut dec = PacketDecoder::new();
    assert!(run(&mut dec, lt::ETHERNET, 1, &f2, f2.len() as u64).is_empty());
    let out = run(&mut dec, lt::ETHERNET, 2, &f1, f1.len() as u64);
    let Decoded::Segment(s) = &out[0] else {
        panic!()
    };
    assert_eq!(
        (s.frame, s.fragments, s.payload.len(), s.ip_id),
        (2, 2, 40, 99)
    );
    dec.finish();
    assert_eq!(
        dec.anomalies()[0].detail,
        "1 IPv4 datagram(s) reassembled from 2 fragments; first completed at frame 2"
    );
}

#[test]
fn ipv6_fragments_reassemble() {
    let seg = tcp(&[6u8; 40]);
    let (a, b) = seg.split_at(32);
    let frag = |off: u16, more: bool, data: &[u8]| {
        let mut h = vec![6, 0];
        h.extend_from_slice(&(off | more as u16).to_be_bytes());
        h.extend_from_slice(&0xdeadbeefu32.to_be_bytes());
        h.extend_from_slice(data);
        ipv6(&h, 44)
    };
    let mut dec = PacketDecoder::new();
    assert!(run(&mut dec, lt::RAW, 1, &frag(0, true, a), 1).is_empty());
    let out = run(&mut dec, lt::RAW, 2, &frag(32, false, b), 1);
    let Decoded::Segment(s) = &out[0] else {
        panic!()
    };
    assert_eq!((s.fragments, s.payload.len(), s.ip_id), (2, 40, 0xdeadbeef));
}

#[test]
fn icmp_error_comes_before_and_is_counted() {
    let quoted = ipv4(&tcp(b"")[..8], 6);
    let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78];
    icmp.extend_from_slice(&quoted);
    let f = ether(&ipv4_full(&icmp, 1, OUT_A, SRC4, 3, 0), 0x0800);
    let mut dec = PacketDecoder::new();
    let out = run(&mut dec, lt::ETHERNET, 1, &f, f.len() as u64);
    let Decoded::Icmp(e) = &out[0] else { panic!() };
    let want = IcmpError {
        frame: 1,
        ts: 1001.0,
        version: 4,
        icmp_type: 3,
        code: 4,
        router: OUT_A.to_vec(),
        ttl: 64,
        src: SRC4.to_vec(),
        sport: 12345,
        dst: DST4.to_vec(),
        dport: 443,
        seq: 100,
        mtu: Some(1400),
        tunnel: None,
    };
    assert_eq!(e, &want);
    dec.finish();
    assert!(dec.anomalies()[0].detail.contains("(ICMP 1)"));
}

#[test]
fn fragment_flood_is_bounded() {
    let mut dec = PacketDecoder::with_bounds(16, 4096);
    for i in 0..5000u32 {
        let f = ether(
            &ipv4_full(&[0u8; 64], 6, SRC4, DST4, i as u16, 0x2000 | (i % 7) as u16),
            0x0800,
        );
        run(&mut dec, lt::ETHERNET, i as u64 + 1, &f, f.len() as u64);
        assert!(dec.pending_fragments() <= 16);
        assert!(dec.held_fragment_bytes() <= 4096);
    }
    dec.finish();
    assert!(names(&dec.anomalies()).contains(&"fragments_dropped"));
}

// ---- properties ------------------------------------------------------------------------------

const LINKTYPES: [u32; 11] = [
    lt::NULL,
    lt::ETHERNET,
    lt::DLT_RAW_12,
    lt::DLT_RAW_14,
    lt::RAW,
    lt::LOOP,
    lt::LINUX_SLL,
    lt::ERF,
    lt::IPV4,
    lt::IPV6,
    lt::LINUX_SLL2,
];

/// Bytes that look like headers often enough to reach the deep layers.
fn packet_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (
            proptest::collection::vec(any::<u8>(), 0..120),
            any::<u8>(),
            any::<usize>()
        )
            .prop_map(|(tail, b, at)| {
                let mut f = ether(&ipv4(&tcp(b"seed"), 6), 0x0800);
                let i = at % f.len();
                f[i] = b;
                f.extend_from_slice(&tail);
                f
            }),
        (proptest::collection::vec(any::<u8>(), 0..120), 0usize..64).prop_map(|(tail, at)| {
            let mut vx = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
            vx.extend_from_slice(&inner4());
            let mut f = outer_udp(&vx, 4789);
            f.truncate(f.len().saturating_sub(at));
            f.extend_from_slice(&tail);
            f
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_any_link_type(
        packets in proptest::collection::vec((0usize..11, packet_bytes(), any::<u32>(), any::<f64>()), 1..20)
    ) {
        let mut dec = PacketDecoder::new();
        let mut out = Vec::new();
        for (i, (k, data, orig, ts)) in packets.iter().enumerate() {
            let p = RawPacket { frame: i as u64 + 1, ts: *ts, linktype: LINKTYPES[*k], data, orig_len: *orig as u64 };
            out.clear();
            dec.decode(&p, &mut out);
            prop_assert!(out.iter().filter(|d| matches!(d, Decoded::Segment(_))).count() <= 1);
            // the huge orig_len extreme too
            let p = RawPacket { orig_len: u64::MAX, ..p };
            dec.decode(&p, &mut out);
        }
        dec.finish();
        let _ = dec.anomalies();
        prop_assert_eq!(dec.pending_fragments(), 0);
    }

    #[test]
    fn fragment_tables_stay_within_bounds(
        frags in proptest::collection::vec((0u16..40, 0u16..0x2000, any::<bool>(), 0usize..300, 0u8..3), 1..300)
    ) {
        let mut dec = PacketDecoder::with_bounds(8, 8192);
        let mut out = Vec::new();
        for (i, (ident, off, more, len, v)) in frags.iter().enumerate() {
            let data = vec![(i % 251) as u8; *len];
            let frame = if *v == 0 {
                let flags = (*off % 0x2000) | if *more { 0x2000 } else { 0 };
                ether(&ipv4_full(&data, 6, SRC4, DST4, *ident, flags), 0x0800)
            } else {
                let mut h = vec![6, 0];
                h.extend_from_slice(&((*off << 3) | *more as u16).to_be_bytes());
                h.extend_from_slice(&(*ident as u32).to_be_bytes());
                h.extend_from_slice(&data);
                ether(&ipv6(&h, 44), 0x86dd)
            };
            let p = RawPacket { frame: i as u64 + 1, ts: i as f64, linktype: lt::ETHERNET, data: &frame, orig_len: frame.len() as u64 };
            out.clear();
            dec.decode(&p, &mut out);
            prop_assert!(dec.pending_fragments() <= 16);
            prop_assert!(dec.held_fragment_bytes() <= 2 * 8192);
        }
    }
}

// ---- allocations of the common case ------------------------------------------------------

mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        pub static ALLOCS: Cell<u64> = const { Cell::new(0) };
    }

    pub struct Counting;

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    pub fn count() -> u64 {
        ALLOCS.with(|c| c.get())
    }
}

/// Allocations per decoded packet (after a warm-up packet) for `frame`.
fn allocs_per_packet(linktype: u32, frame: &[u8]) -> u64 {
    let mut dec = PacketDecoder::new();
    let mut out = Vec::with_capacity(4);
    run_into(&mut dec, linktype, frame, &mut out);
    out.clear();
    let before = counting::count();
    for _ in 0..100 {
        run_into(&mut dec, linktype, frame, &mut out);
        out.clear();
    }
    (counting::count() - before) / 100
}

fn run_into(dec: &mut PacketDecoder, linktype: u32, data: &[u8], out: &mut Vec<Decoded>) {
    let p = RawPacket {
        frame: 1,
        ts: 1.0,
        linktype,
        data,
        orig_len: data.len() as u64,
    };
    dec.decode(&p, out);
}

#[test]
fn common_case_allocates_only_the_segment_vectors() {
    // src, dst, payload, options: nothing else
    let f = ether(&ipv4(&tcp_opts(b"hello", &[1, 1, 1, 1]), 6), 0x0800);
    assert_eq!(allocs_per_packet(lt::ETHERNET, &f), 4);
    let f = ether(&ipv4(&tcp(b"hello"), 6), 0x0800);
    assert_eq!(allocs_per_packet(lt::ETHERNET, &f), 3);
    let f = ether(&ipv6(&tcp(b"hello"), 6), 0x86dd);
    assert_eq!(allocs_per_packet(lt::ETHERNET, &f), 3);
    // ordinary UDP and a known tunnel's segments: no more than that either
    let f = ether(&ipv4(&udp(b"dns", 5353, 53), 17), 0x0800);
    assert_eq!(allocs_per_packet(lt::ETHERNET, &f), 0);
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    vx.extend_from_slice(&inner4());
    assert_eq!(allocs_per_packet(lt::ETHERNET, &outer_udp(&vx, 4789)), 3);
}
