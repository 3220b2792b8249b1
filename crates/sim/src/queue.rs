//! The simulations' event queue: actions ordered by virtual time, ties by the order they were
//! queued, so a seed gives one run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

struct Queued<A> {
    at: u64,
    seq: u64,
    action: A,
}

impl<A> PartialEq for Queued<A> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<A> Eq for Queued<A> {}
impl<A> PartialOrd for Queued<A> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<A> Ord for Queued<A> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Actions in virtual time.
pub(crate) struct EventQueue<A> {
    heap: BinaryHeap<Reverse<Queued<A>>>,
    seq: u64,
}

impl<A> EventQueue<A> {
    pub(crate) fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Queues `action` at virtual time `at` (ms), after everything queued before at that time.
    pub(crate) fn push(&mut self, at: u64, action: A) {
        self.seq += 1;
        self.heap.push(Reverse(Queued {
            at,
            seq: self.seq,
            action,
        }));
    }

    /// The earliest action, if it is due at or before `until`.
    pub(crate) fn pop_until(&mut self, until: u64) -> Option<(u64, A)> {
        if self.heap.peek().is_some_and(|Reverse(q)| q.at <= until) {
            self.heap.pop().map(|Reverse(q)| (q.at, q.action))
        } else {
            None
        }
    }

    /// True when nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}
