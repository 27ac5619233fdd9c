//! Who is in the ensemble and what a quorum is (Apache's QuorumMaj):
//! more than half of the voting members. Observers never count.

use std::collections::BTreeSet;

use crate::config::{LearnerRole, QuorumConfig};

/// Server ids, as Apache's `sid` (a long on the wire).
pub type Sid = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensemble {
    pub my_sid: Sid,
    pub voters: BTreeSet<Sid>,
    pub observers: BTreeSet<Sid>,
}

impl Ensemble {
    pub fn new(my_sid: Sid, voters: impl IntoIterator<Item = Sid>, observers: impl IntoIterator<Item = Sid>) -> Self {
        Ensemble { my_sid, voters: voters.into_iter().collect(), observers: observers.into_iter().collect() }
    }

    pub fn from_config(q: &QuorumConfig) -> Self {
        let of = |role| q.servers.iter().filter(move |s| s.role == role).map(|s| s.id as Sid);
        Ensemble::new(q.my_id as Sid, of(LearnerRole::Participant), of(LearnerRole::Observer))
    }

    pub fn is_voter(&self, sid: Sid) -> bool {
        self.voters.contains(&sid)
    }

    pub fn is_observer(&self, sid: Sid) -> bool {
        self.observers.contains(&sid)
    }

    /// More than half of the voters are in `sids` (non-voters are ignored).
    pub fn is_quorum<'a>(&self, sids: impl IntoIterator<Item = &'a Sid>) -> bool {
        let votes = sids.into_iter().filter(|s| self.voters.contains(s)).collect::<BTreeSet<_>>().len();
        votes * 2 > self.voters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_of_voters_only() {
        let e = Ensemble::new(1, [1, 2, 3], [4]);
        assert!(!e.is_quorum(&[1]));
        assert!(!e.is_quorum(&[1, 4]));
        assert!(e.is_quorum(&[1, 3]));
        assert!(e.is_quorum(&[1, 1, 3]));
        let five = Ensemble::new(1, [1, 2, 3, 4, 5], []);
        assert!(!five.is_quorum(&[1, 2]));
        assert!(five.is_quorum(&[1, 2, 5]));
        let one = Ensemble::new(1, [1], []);
        assert!(one.is_quorum(&[1]));
    }
}
