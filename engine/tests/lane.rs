//! The fast lane's rules (`tlspcap_engine::lane`): what it absorbs, what it hands back, when
//! it lets go. The Python differential tests (`tests/test_lane.py`) hold its summaries to the
//! pure path; these pin the rules themselves.

use tlspcap_engine::lane::{DirOffer, Event, Lane, Offer, Summary, MAX_EVENTS, MAX_HELD_EVENTS};
use tlspcap_engine::model::{TcpSegment, ACK, FIN, SYN};

const CLIENT: [u8; 4] = [127, 0, 0, 1];
const SERVER: [u8; 4] = [127, 0, 0, 2];

fn seg(dir: usize, frame: u64, ts: f64, seq: u32, payload: &[u8]) -> TcpSegment {
    let (src, sport, dst, dport) = if dir == 0 {
        (CLIENT, 40000, SERVER, 443)
    } else {
        (SERVER, 443, CLIENT, 40000)
    };
    TcpSegment {
        frame,
        ts,
        src: src.to_vec(),
        sport,
        dst: dst.to_vec(),
        dport,
        seq,
        ack: 7,
        flags: ACK,
        payload: payload.to_vec(),
        missing: 0,
        ttl: 64,
        ip_id: 1,
        window: 512,
        options: vec![],
        tunnel: None,
        fragments: 0,
    }
}

fn dir(expected: u32) -> DirOffer {
    DirOffer {
        absorb: true,
        log_room: 0,
        data: true,
        expected,
        ..DirOffer::default()
    }
}

fn lane(room: u32) -> Lane {
    let mut lane = Lane::default();
    lane.configure(100.0, 5.0, 18432);
    lane.offer(Offer {
        index: 3,
        key: (CLIENT.to_vec(), 40000, SERVER.to_vec(), 443),
        dirs: [dir(1000), dir(5000)],
        room,
    });
    lane
}

fn record(len: u16) -> Vec<u8> {
    let mut r = vec![23, 3, 3];
    r.extend_from_slice(&len.to_be_bytes());
    r.extend(std::iter::repeat_n(0xAA, len as usize));
    r
}

fn released(lane: &mut Lane) -> Vec<Summary> {
    let mut out = Vec::new();
    lane.release_all(&mut out);
    out
}

#[test]
fn records_split_anywhere_are_counted_in_order() {
    let mut lane = lane(0);
    let mut out = Vec::new();
    let mut data = record(300);
    data.extend(record(20));
    data.extend(record(100));
    // The first record ends in the second segment; the second and third start in it.
    assert!(lane.segment(&seg(0, 10, 1.0, 1000, &data[..200]), &mut out));
    assert!(lane.segment(&seg(0, 11, 1.1, 1200, &data[200..]), &mut out));
    assert!(out.is_empty());
    let s = released(&mut lane).remove(0);
    assert_eq!(s.index, 3);
    assert_eq!(s.dirs[0].packets, 2);
    assert_eq!(s.dirs[0].bytes, data.len() as u64);
    assert_eq!(s.dirs[0].skip, 0);
    assert_eq!(s.last, Some((11, 1.1)));
    assert_eq!(
        s.events,
        vec![Event::Run {
            dir: 0,
            count: 3,
            bytes: 420,
            last_frame: 11,
            last_ts: 1.1
        }]
    );
}

#[test]
fn a_record_still_open_is_handed_back_with_its_header() {
    let mut lane = lane(0);
    let mut out = Vec::new();
    assert!(lane.segment(&seg(1, 10, 1.0, 5000, &record(1000)[..600]), &mut out));
    let s = released(&mut lane).remove(0);
    assert_eq!(
        (
            s.dirs[1].skip,
            s.dirs[1].skip_version,
            s.dirs[1].skip_length
        ),
        (405, 0x0303, 1000)
    );
    assert!(s.events.is_empty());
}

#[test]
fn the_session_sees_records_one_by_one_until_its_log_is_full() {
    let mut lane = lane(2);
    let mut out = Vec::new();
    let mut seq = 1000;
    for frame in 0..4u64 {
        let r = record(50);
        assert!(lane.segment(&seg(0, frame, 1.0, seq, &r), &mut out));
        seq += r.len() as u32;
    }
    let s = released(&mut lane).remove(0);
    assert!(matches!(s.events[0], Event::Record { frame: 0, .. }));
    assert!(matches!(s.events[1], Event::Record { frame: 1, .. }));
    assert!(matches!(s.events[2], Event::Run { count: 2, .. }));
}

#[test]
fn directions_alternate_as_separate_runs() {
    let mut lane = lane(0);
    let mut out = Vec::new();
    assert!(lane.segment(&seg(0, 1, 1.0, 1000, &record(10)), &mut out));
    assert!(lane.segment(&seg(1, 2, 1.0, 5000, &record(10)), &mut out));
    assert!(lane.segment(&seg(1, 3, 1.0, 5015, &record(10)), &mut out));
    let s = released(&mut lane).remove(0);
    let dirs: Vec<u8> = s
        .events
        .iter()
        .map(|e| match e {
            Event::Run { dir, .. } | Event::Record { dir, .. } => *dir,
        })
        .collect();
    assert_eq!(dirs, vec![0, 1]);
}

#[test]
fn retransmissions_and_acks_are_counted_reordering_is_not_absorbed() {
    let mut lane = lane(0);
    let mut out = Vec::new();
    let r = record(40);
    assert!(lane.segment(&seg(0, 1, 1.0, 1000, &r), &mut out));
    assert!(lane.segment(&seg(0, 2, 1.0, 1000, &r), &mut out)); // again
    assert!(lane.segment(&seg(1, 3, 1.0, 5000, b""), &mut out)); // an ACK
    assert!(!lane.segment(&seg(0, 4, 1.0, 1000 + 45 + 10, &r), &mut out)); // ahead: a hole
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].dirs[0].retransmitted, 1);
    assert_eq!(out[0].dirs[0].packets, 2);
    assert_eq!(out[0].dirs[1].packets, 1);
    assert!(lane.is_empty());
    // Released: the connection's next segments go to Python.
    assert!(!lane.segment(&seg(1, 5, 1.0, 5000, b""), &mut out));
}

#[test]
fn what_python_must_read_releases_the_connection() {
    let cases: Vec<(&str, TcpSegment)> = vec![
        ("FIN", {
            let mut s = seg(0, 1, 1.0, 1000, b"");
            s.flags = FIN | ACK;
            s
        }),
        ("SYN", {
            let mut s = seg(0, 1, 1.0, 1000, b"");
            s.flags = SYN;
            s
        }),
        ("snap length", {
            let mut s = seg(0, 1, 1.0, 1000, &record(10));
            s.missing = 5;
            s
        }),
        ("alert", seg(0, 1, 1.0, 1000, &[21, 3, 3, 0, 2, 1, 0])),
        ("split header", seg(0, 1, 1.0, 1000, &record(10)[..3])),
        ("empty record", seg(0, 1, 1.0, 1000, &record(0))),
        ("overlap", seg(0, 1, 1.0, 990, &record(10))),
    ];
    for (name, s) in cases {
        let mut lane = lane(0);
        let mut out = Vec::new();
        assert!(!lane.segment(&s, &mut out), "{name}");
        assert_eq!(out.len(), 1, "{name}");
        assert_eq!(out[0].dirs[0].packets, 0, "{name}");
    }
}

#[test]
fn a_sweeping_segment_releases_everything_first() {
    let mut lane = lane(0);
    let mut out = Vec::new();
    assert!(lane.segment(&seg(0, 1, 99.0, 1000, b""), &mut out));
    // Another connection's segment at the sweep time: all are released before it.
    let mut other = seg(0, 2, 100.0, 1, b"");
    other.sport = 40001;
    assert!(!lane.segment(&other, &mut out));
    assert_eq!(out.len(), 1);
    // The next sweep is 5 s later, as Python's tracker schedules it.
    lane.offer(Offer {
        index: 4,
        key: (CLIENT.to_vec(), 40000, SERVER.to_vec(), 443),
        dirs: [dir(1000), dir(5000)],
        room: 0,
    });
    assert!(lane.segment(&seg(0, 3, 104.9, 1000, b""), &mut out));
    assert!(!lane.segment(&seg(0, 4, 105.0, 1000, b""), &mut out));
    assert_eq!(out.len(), 2);
}

#[test]
fn log_rows_are_kept_while_the_direction_has_room() {
    let mut lane = Lane::default();
    lane.configure(100.0, 5.0, 18432);
    let mut d0 = dir(1000);
    d0.log_room = 1;
    lane.offer(Offer {
        index: 1,
        key: (CLIENT.to_vec(), 40000, SERVER.to_vec(), 443),
        dirs: [d0, dir(5000)],
        room: 0,
    });
    let mut out = Vec::new();
    assert!(lane.segment(&seg(0, 1, 1.0, 1000, b""), &mut out));
    assert!(lane.segment(&seg(0, 2, 1.0, 1000, b""), &mut out));
    let s = released(&mut lane).remove(0);
    assert_eq!(s.dirs[0].log.len(), 1);
    assert_eq!(s.dirs[0].log[0].frame, 1);
}

#[test]
fn a_summary_is_bounded() {
    let mut lane = lane(0);
    let mut out = Vec::new();
    let (mut a, mut b) = (1000u32, 5000u32);
    let mut frame = 0;
    while out.is_empty() {
        frame += 1;
        let r = record(1);
        let s = if frame % 2 == 0 {
            a += 6;
            seg(0, frame, 1.0, a - 6, &r)
        } else {
            b += 6;
            seg(1, frame, 1.0, b - 6, &r)
        };
        assert!(lane.segment(&s, &mut out));
    }
    assert_eq!(out[0].events.len(), MAX_EVENTS + 1);
    assert!(lane.is_empty());
}

#[test]
fn all_summaries_together_are_bounded() {
    // Many connections alternating directions (one event per record): the held events never
    // pass the bound; the connection that would pass it is released.
    let mut lane = Lane::default();
    lane.configure(1e9, 5.0, 18432);
    let conns = 2 * MAX_HELD_EVENTS / MAX_EVENTS + 2;
    for i in 0..conns as u64 {
        lane.offer(Offer {
            index: i,
            key: (CLIENT.to_vec(), 1000 + i as u16, SERVER.to_vec(), 443),
            dirs: [dir(1000), dir(5000)],
            room: 0,
        });
    }
    let mut out = Vec::new();
    let mut frame = 0;
    let mut held_events = 0usize;
    for round in 0..(MAX_EVENTS as u32 / 2) {
        for i in 0..conns as u16 {
            for d in 0..2usize {
                frame += 1;
                let base = if d == 0 { 1000 } else { 5000 };
                let mut s = seg(d, frame, 1.0, base + 6 * round, &record(1));
                if d == 0 {
                    s.sport = 1000 + i;
                } else {
                    s.dport = 1000 + i;
                }
                let released = out.len();
                if lane.segment(&s, &mut out) {
                    held_events += 1;
                }
                for summary in &out[released..] {
                    held_events -= summary.events.len();
                }
                assert!(held_events <= MAX_HELD_EVENTS);
            }
        }
    }
    assert!(!out.is_empty());
}
