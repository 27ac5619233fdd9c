//! The quorum port: `PacketDecoder` over a stream cut into arbitrary reads
//! (as `server::quorum_net` feeds it), each packet re-encoded and compared,
//! read as a learner's packet (`ToLeader`) and as a leader's (`ToLearner`),
//! each of which must round trip through `to_packet`; PROPOSAL / INFORM
//! data as a txn. After a SNAP packet the stream is a snapshot, walked by
//! `SnapStreamScanner` as the learner does, then packets again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoocore::storage::txn::LoggedTxn;
use zoocore::zab::packets::{
    PacketDecoder, QuorumPacket, SnapStreamScanner, ToLeader, ToLearner, QUORUM_PACKET_MAX_BYTES,
};
use zoocore_fuzz::{chunks, split_two};

fn check_packet(p: &QuorumPacket) {
    let again = QuorumPacket::decode(p.to_bytes()).expect("a re-encoded packet decodes");
    assert_eq!(&again, p);
    if let Ok(m) = ToLeader::from_packet(p) {
        assert_eq!(ToLeader::from_packet(&m.to_packet()).as_ref(), Ok(&m), "ToLeader round trip");
    }
    if let Ok(m) = ToLearner::from_packet(p) {
        assert_eq!(ToLearner::from_packet(&m.to_packet()).as_ref(), Ok(&m), "ToLearner round trip");
        match &m {
            ToLearner::Proposal { txn, .. } | ToLearner::Inform { txn, .. } => {
                let _ = LoggedTxn::decode(txn.clone());
            }
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (sizes, stream) = split_two(data);
    let mut decoder = PacketDecoder::new();
    let mut snapshot: Option<SnapStreamScanner> = None;
    for chunk in chunks(stream, sizes) {
        decoder.feed(chunk);
        loop {
            if let Some(scanner) = snapshot.as_mut() {
                let Ok(step) = scanner.scan(decoder.buffered()) else { return };
                assert!(step.consumed <= decoder.buffered().len());
                decoder.consume(step.consumed);
                if !step.finished {
                    break;
                }
                snapshot = None;
            }
            match decoder.next_packet() {
                Ok(Some(p)) => {
                    check_packet(&p);
                    if matches!(ToLearner::from_packet(&p), Ok(ToLearner::Snap { .. })) {
                        snapshot = Some(SnapStreamScanner::new());
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        // Bounded: at most one packet, one partial item and one read.
        if snapshot.is_none() {
            assert!(decoder.buffered().len() <= QUORUM_PACKET_MAX_BYTES + chunk.len());
        }
    }
});
