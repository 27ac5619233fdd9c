//! A connection's requests in flight, in the order their answers must go
//! out (owned by the connection's worker shard). Sans-IO.
//!
//! Three kinds wait here (see [`Pending`]): writes sent to the commit shard,
//! reads queued behind them, and writes held behind a queued read. Every
//! operation is O(1) (or O(what it moves)): a connection with 1,000 writes in
//! flight pays nothing per write for the queue's length. That rests on the
//! queue's shape, which the pushes keep: a run of sent writes first, then
//! only reads and held writes (a write is held, not sent, while a read is
//! queued), so the first entry that is not a sent write is at index
//! `sent_in_front`.

use std::collections::VecDeque;
use std::time::Instant;

/// A request waiting in a connection's FIFO for its turn to be answered.
pub enum Pending<R, M> {
    /// Sent to the commit shard; answered from a batch.
    Commit { xid: i32, op: i32, received: Instant },
    /// A read (or watch/session op) queued behind a pending commit.
    Local { xid: i32, op: i32, request: R, received: Instant },
    /// A write that follows a queued read: it is sent to the commit shard
    /// only once that read is answered, so the read cannot observe it (the
    /// view a read runs on is the state after a whole batch).
    Held { xid: i32, op: i32, received: Instant, message: Box<M> },
}

/// A read to answer now, taken from the front.
pub struct ReadyRead<R> {
    pub xid: i32,
    pub op: i32,
    pub request: R,
    pub received: Instant,
}

pub struct PendingRequests<R, M> {
    queue: VecDeque<Pending<R, M>>,
    /// Sent writes at the front, before the first read or held write.
    sent_in_front: usize,
    /// Reads anywhere in the queue.
    reads: usize,
}

impl<R, M> Default for PendingRequests<R, M> {
    fn default() -> Self {
        PendingRequests { queue: VecDeque::new(), sent_in_front: 0, reads: 0 }
    }
}

impl<R, M> PendingRequests<R, M> {
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// A read is queued: a write arriving now must be held behind it.
    pub fn read_queued(&self) -> bool {
        self.reads > 0
    }

    /// A write handed to the commit shard. Only while no read is queued
    /// (the caller holds it otherwise), so it joins the front run.
    pub fn push_sent(&mut self, xid: i32, op: i32, received: Instant) {
        debug_assert_eq!(self.reads, 0, "a write is sent while a read waits before it");
        if self.sent_in_front == self.queue.len() {
            self.sent_in_front += 1;
        }
        self.queue.push_back(Pending::Commit { xid, op, received });
    }

    pub fn push_read(&mut self, xid: i32, op: i32, request: R, received: Instant) {
        self.reads += 1;
        self.queue.push_back(Pending::Local { xid, op, request, received });
    }

    pub fn push_held(&mut self, xid: i32, op: i32, received: Instant, message: M) {
        self.queue.push_back(Pending::Held { xid, op, received, message: Box::new(message) });
    }

    /// The commit shard answered `xid`: it must be the oldest entry, a sent
    /// write. None (the queue unchanged) when it is not: the answers came
    /// out of order.
    pub fn pop_sent(&mut self, xid: i32) -> Option<Instant> {
        match self.queue.front() {
            Some(Pending::Commit { xid: front, received, .. }) if *front == xid => {
                let received = *received;
                self.queue.pop_front();
                self.sent_in_front -= 1;
                Some(received)
            }
            _ => None,
        }
    }

    /// The oldest entry, when it is a read: nothing before it is unanswered.
    pub fn pop_ready_read(&mut self) -> Option<ReadyRead<R>> {
        if !matches!(self.queue.front(), Some(Pending::Local { .. })) {
            return None;
        }
        match self.queue.pop_front() {
            Some(Pending::Local { xid, op, request, received }) => {
                self.reads -= 1;
                Some(ReadyRead { xid, op, request, received })
            }
            _ => None,
        }
    }

    /// A read taken by `pop_ready_read` that may not run yet, put back.
    pub fn push_front_read(&mut self, read: ReadyRead<R>) {
        // Nothing was answered in between: the front is no sent write.
        debug_assert_eq!(self.sent_in_front, 0);
        let ReadyRead { xid, op, request, received } = read;
        self.reads += 1;
        self.queue.push_front(Pending::Local { xid, op, request, received });
    }

    /// The held writes no read waits before any more (those before the
    /// next queued read), now counted as sent; their messages, in order,
    /// for the caller to send.
    pub fn release_held(&mut self) -> Vec<M> {
        let mut released = Vec::new();
        while let Some(item) = self.queue.get_mut(self.sent_in_front) {
            let Pending::Held { xid, op, received, .. } = item else { break };
            let sent = Pending::Commit { xid: *xid, op: *op, received: *received };
            if let Pending::Held { message, .. } = std::mem::replace(item, sent) {
                released.push(*message);
            }
            self.sent_in_front += 1;
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Queue = PendingRequests<u32, u32>;

    /// The simple model: a list of (kind, xid), scanned in full.
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Kind {
        Sent,
        Read,
        Held,
    }

    #[derive(Debug, Clone)]
    enum Step {
        Write,
        Read,
        AnswerOldestSent,
        DrainReads,
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        prop::collection::vec(
            prop_oneof![Just(Step::Write), Just(Step::Read), Just(Step::AnswerOldestSent), Just(Step::DrainReads)],
            0..200,
        )
    }

    proptest! {
        /// Against a model that scans the whole list, as the code before
        /// this module did: the same answers in the same order, the same
        /// writes released.
        #[test]
        fn matches_the_scanning_model(steps in steps()) {
            let now = Instant::now();
            let mut q = Queue::default();
            let mut model: Vec<(Kind, i32)> = Vec::new();
            let mut next_xid = 0;
            for step in steps {
                match step {
                    Step::Write => {
                        next_xid += 1;
                        let read_queued = model.iter().any(|(k, _)| *k == Kind::Read);
                        prop_assert_eq!(q.read_queued(), read_queued);
                        if read_queued {
                            model.push((Kind::Held, next_xid));
                            q.push_held(next_xid, 1, now, next_xid as u32);
                        } else {
                            model.push((Kind::Sent, next_xid));
                            q.push_sent(next_xid, 1, now);
                        }
                    }
                    Step::Read => {
                        next_xid += 1;
                        model.push((Kind::Read, next_xid));
                        q.push_read(next_xid, 4, next_xid as u32, now);
                    }
                    Step::AnswerOldestSent => {
                        if let Some((Kind::Sent, xid)) = model.first().copied() {
                            model.remove(0);
                            prop_assert!(q.pop_sent(xid).is_some());
                        } else {
                            // Out of order: refused, nothing changes.
                            prop_assert!(q.pop_sent(-7).is_none());
                        }
                    }
                    Step::DrainReads => {
                        while let Some((Kind::Read, xid)) = model.first().copied() {
                            model.remove(0);
                            let r = q.pop_ready_read();
                            prop_assert_eq!(r.map(|r| r.xid), Some(xid));
                        }
                        prop_assert!(q.pop_ready_read().is_none());
                        let mut expect = Vec::new();
                        for item in model.iter_mut() {
                            match item.0 {
                                Kind::Sent => continue,
                                Kind::Read => break,
                                Kind::Held => {
                                    item.0 = Kind::Sent;
                                    expect.push(item.1 as u32);
                                }
                            }
                        }
                        prop_assert_eq!(q.release_held(), expect);
                    }
                }
                prop_assert_eq!(q.len(), model.len());
            }
        }
    }

    #[test]
    fn a_write_after_a_queued_read_waits_for_it() {
        let now = Instant::now();
        let mut q = Queue::default();
        q.push_sent(1, 1, now);
        q.push_read(2, 4, 20, now);
        assert!(q.read_queued());
        q.push_held(3, 1, now, 30);
        assert!(q.pop_ready_read().is_none(), "the read waits for write 1");
        assert!(q.release_held().is_empty(), "write 3 waits for read 2");
        assert!(q.pop_sent(1).is_some());
        assert_eq!(q.pop_ready_read().map(|r| r.request), Some(20));
        assert_eq!(q.release_held(), vec![30]);
        assert!(!q.read_queued());
        assert!(q.pop_sent(3).is_some());
        assert!(q.is_empty());
    }
}
