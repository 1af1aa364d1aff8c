//! Feeds arbitrary bytes to the RTP/RTCP packet views of the `rtp` crate and to
//! the H.264/H.265 helpers, as a packet received from a back end or a client.
//!
//! - `parse_rtp`: an accepted header lies within the buffer (payload offset and
//!   length), its fields are the bytes, `set_sequence`/`set_timestamp`/
//!   `set_ssrc` rewrite exactly those fields; `is_rtcp` is the RFC 5761 range.
//! - `rtcp::packets`: every packet matches a walk of the length fields (type,
//!   count, padding flag, body within its packet), at most
//!   `MAX_COMPOUND_PACKETS`, and a clean stop means the lengths add up to the
//!   buffer; `is_valid_compound` implies an SR/RR first and one sender info per
//!   SR; `sender_reports`, `bye_ssrcs`, `receiver_report_ssrcs`,
//!   `report_blocks` stay within their counts.
//! - What was parsed is built again (`build_sender_report`,
//!   `build_receiver_report`, `build_bye`) and parses back to the same values
//!   as a valid compound packet.
//! - `ReceptionStats` takes the RTP header and sender reports without panicking
//!   and reports 24-bit loss.
//! - H.264/H.265: `is_keyframe` on the payload, `split_annex_b` yields
//!   non-empty sub-slices without trailing zeros, and `h264::packetize`
//!   fragments reassemble to the NAL unit and keep its keyframe-ness.
#![no_main]

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rtp::packet::{is_rtcp, parse_rtp, set_sequence, set_ssrc, set_timestamp, FIXED_HEADER_LEN};
use rtp::rtcp::{
    self, ReceptionStats, MAX_COMPOUND_PACKETS, MAX_REPORT_BLOCKS, PT_BYE, PT_RR, PT_SR,
};
use rtp::{h264, h265};

fn check_rtp(data: &[u8]) {
    assert_eq!(is_rtcp(data), matches!(data.get(1), Some(192..=223)));
    let Ok(hdr) = parse_rtp(data) else {
        return;
    };
    assert!(hdr.payload_offset >= FIXED_HEADER_LEN);
    assert!(hdr.payload_offset + hdr.payload_len <= data.len());
    assert_eq!(hdr.payload(data).len(), hdr.payload_len);
    assert_eq!(data[0] >> 6, 2);
    assert_eq!(hdr.sequence, u16::from_be_bytes([data[2], data[3]]));
    assert_eq!(
        hdr.ssrc,
        u32::from_be_bytes([data[8], data[9], data[10], data[11]])
    );
    assert_eq!(hdr.payload_type, data[1] & 0x7f);

    let mut copy = data.to_vec();
    let (seq, ts, ssrc) = (!hdr.sequence, !hdr.timestamp, !hdr.ssrc);
    set_sequence(&mut copy, seq);
    set_timestamp(&mut copy, ts);
    set_ssrc(&mut copy, ssrc);
    let again = parse_rtp(&copy).expect("rewritten header still parses");
    assert_eq!(
        (again.sequence, again.timestamp, again.ssrc),
        (seq, ts, ssrc)
    );
    assert_eq!(again.payload_offset, hdr.payload_offset);
    assert_eq!(again.payload_len, hdr.payload_len);
    assert_eq!(again.payload(&copy), hdr.payload(data), "payload untouched");

    let payload = hdr.payload(data);
    check_video(payload);
}

/// Walks the compound packet by its length fields and compares with
/// `rtcp::packets`.
fn check_rtcp(data: &[u8]) {
    let mut iter = rtcp::packets(data);
    let mut offset = 0;
    let mut n = 0;
    let mut sr_count = 0;
    let mut counts = (0usize, 0usize); // (bye sources, report blocks)
    let mut first_type = None;
    for p in iter.by_ref() {
        n += 1;
        assert!(n <= MAX_COMPOUND_PACKETS);
        let header = &data[offset..offset + 4];
        assert_eq!(header[0] >> 6, 2);
        assert_eq!(p.count, header[0] & 0x1f);
        assert_eq!(p.padded, header[0] & 0x20 != 0);
        assert_eq!(p.packet_type, header[1]);
        let size = (usize::from(u16::from_be_bytes([header[2], header[3]])) + 1) * 4;
        assert!(offset + size <= data.len());
        assert!(p.body.len() <= size - 4);
        assert_eq!(p.body, &data[offset + 4..offset + 4 + p.body.len()]);
        if !p.padded {
            assert_eq!(p.body.len(), size - 4);
        }
        first_type.get_or_insert(p.packet_type);
        match p.packet_type {
            PT_SR => {
                sr_count += 1;
                counts.1 += usize::from(p.count);
            }
            PT_RR => counts.1 += usize::from(p.count),
            PT_BYE => counts.0 += usize::from(p.count),
            _ => {}
        }
        offset += size;
    }
    if !iter.stopped_early() {
        assert_eq!(offset, data.len(), "a clean stop consumed the whole buffer");
    }

    let srs = rtcp::sender_reports(data);
    assert!(srs.len() <= sr_count);
    let byes = rtcp::bye_ssrcs(data);
    assert!(byes.len() <= counts.0);
    let blocks = rtcp::report_blocks(data);
    assert!(blocks.len() <= counts.1);
    for (_, b) in &blocks {
        assert!(b.cumulative_lost <= 0x00ff_ffff);
    }
    let _ = rtcp::receiver_report_ssrcs(data);
    if rtcp::is_valid_compound(data) {
        assert!(!iter.stopped_early());
        assert!(matches!(first_type, Some(PT_SR | PT_RR)));
        assert_eq!(
            srs.len(),
            sr_count,
            "every SR of a valid compound has sender info"
        );
    }

    // Build what we parsed and parse it back.
    let cname = String::from_utf8_lossy(data);
    for sr in srs.iter().take(4) {
        let mut out = BytesMut::new();
        rtcp::build_sender_report(&mut out, sr, &cname);
        assert!(
            rtcp::is_valid_compound(&out),
            "built SR is a valid compound"
        );
        assert_eq!(rtcp::sender_reports(&out), [*sr]);
        assert!(rtcp::report_blocks(&out).is_empty());
    }
    let own: Vec<_> = blocks.iter().map(|(_, b)| *b).collect();
    let mut out = BytesMut::new();
    let reporter = srs.first().map_or(0x5eed, |s| s.ssrc);
    rtcp::build_receiver_report(&mut out, reporter, &own, &cname);
    assert!(
        rtcp::is_valid_compound(&out),
        "built RR is a valid compound"
    );
    let back: Vec<_> = rtcp::report_blocks(&out);
    let expected: Vec<_> = own
        .iter()
        .take(MAX_REPORT_BLOCKS)
        .map(|b| (reporter, *b))
        .collect();
    assert_eq!(back, expected);
    assert_eq!(rtcp::receiver_report_ssrcs(&out), [reporter]);
    for &ssrc in byes.iter().take(4) {
        let mut out = BytesMut::new();
        rtcp::build_bye(&mut out, ssrc);
        assert!(rtcp::is_valid_compound(&out));
        assert_eq!(rtcp::bye_ssrcs(&out), [ssrc]);
    }

    // Receiver statistics fed with whatever this packet carries.
    let t0 = Instant::now();
    let mut stats = ReceptionStats::new(90_000);
    assert!(stats.report_block(t0).is_none());
    for (i, sr) in srs.iter().enumerate() {
        stats.on_sender_report(sr, t0 + Duration::from_millis(i as u64));
    }
    // Every 12-byte window that parses as RTP is one more packet.
    for (i, window) in data.windows(FIXED_HEADER_LEN).enumerate().take(64) {
        if let Ok(hdr) = parse_rtp(window) {
            stats.on_rtp(&hdr, t0 + Duration::from_millis(20 * i as u64));
        }
        if i % 16 == 0 {
            if let Some(b) = stats.report_block(t0 + Duration::from_secs(5)) {
                assert!(b.cumulative_lost <= 0x00ff_ffff);
            }
        }
    }
}

fn h264_key_type(t: u8) -> bool {
    t == h264::NAL_IDR || t == h264::NAL_SPS
}

fn check_video(payload: &[u8]) {
    let _ = h264::is_keyframe(payload);
    let _ = h265::is_keyframe(payload);
    let _ = h265::nal_type(payload);
    assert_eq!(h264::nal_type(payload), payload.first().map(|b| b & 0x1f));
}

fn check_annex_b(data: &[u8], max_payload: usize) {
    let range = data.as_ptr_range();
    for nal in h264::split_annex_b(data) {
        assert!(!nal.is_empty());
        assert_ne!(nal.last(), Some(&0), "trailing zeros dropped");
        let r = nal.as_ptr_range();
        assert!(
            range.start <= r.start && r.end <= range.end,
            "a sub-slice of the input"
        );
        let mut out: Vec<Bytes> = Vec::new();
        h264::packetize(nal, max_payload, &mut out);
        assert!(!out.is_empty());
        let limit = max_payload.max(3);
        assert!(out.iter().all(|p| p.len() <= limit));
        let t = nal[0] & 0x1f;
        if out.len() == 1 {
            assert_eq!(&out[0][..], nal);
        } else {
            // FU-A: indicator, FU header with S on the first and E on the last.
            let mut joined = vec![(out[0][0] & 0xe0) | (out[0][1] & 0x1f)];
            for (i, p) in out.iter().enumerate() {
                assert!(p.len() > 2);
                assert_eq!(p[0] & 0x1f, h264::NAL_FU_A);
                assert_eq!(p[1] & 0x80 != 0, i == 0);
                assert_eq!(p[1] & 0x40 != 0, i == out.len() - 1);
                joined.extend_from_slice(&p[2..]);
            }
            assert_eq!(joined, nal, "fragments reassemble to the NAL unit");
        }
        if (1..=23).contains(&t) {
            assert_eq!(h264::is_keyframe(&out[0]), h264_key_type(t));
        }
        for p in &out {
            check_video(p);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check_rtp(data);
    check_rtcp(data);
    check_video(data);
    let max_payload = data.first().map_or(3, |&b| usize::from(b) + 1);
    check_annex_b(data, max_payload);
});
