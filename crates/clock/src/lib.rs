//! A logical clock synced to chain time, and the protocol's deadlines.
//!
//! Every peer keeps its own subjective clock that mimics the chain's: it learns the offset
//! between its local monotonic time and chain time from the block timestamps it observes, and
//! never runs backwards. Peers never agree on their clocks; they use them to decide whether a
//! transaction's timestamp is plausible and whether a writer is late. Once written into a
//! transaction a timestamp is objective, and the chain's own clock settles every dispute.
//!
//! Time is an input: the caller passes its local time in milliseconds (the node reads a real
//! monotonic clock, the simulation a virtual one). Transaction timestamps are chain seconds.
//!
//! ```
//! use entente_clock::{Deadlines, LogicalClock};
//! use entente_types::Timing;
//!
//! let mut clock = LogicalClock::new();
//! clock.observe_block(1_700_000_000, 5_000); // block seen at local 5 s
//! assert_eq!(clock.now_secs(8_000), 1_700_000_003);
//!
//! let d = Deadlines::after(1_700_000_000, &Timing { p2p_time: 30, agreement_time: 10, chain_fallback_time: 60, challenge_time: 120 });
//! assert_eq!(d.confirm_by, 1_700_000_040);
//! assert_eq!(d.calldata_by, 1_700_000_100);
//! ```

use entente_types::Timing;

/// A clock that follows chain time from observed block timestamps.
#[derive(Debug, Clone, Default)]
pub struct LogicalClock {
    /// Chain time minus local time, in milliseconds, once synced.
    offset_ms: Option<i128>,
    /// The latest logical time handed out, so time never runs backwards.
    last_ms: u64,
}

impl LogicalClock {
    /// An unsynced clock (reads as local time until the first block is observed).
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock already synced so that local time `local_ms` reads as chain time `chain_ms`.
    pub fn synced_at(chain_ms: u64, local_ms: u64) -> Self {
        Self {
            offset_ms: Some(chain_ms as i128 - local_ms as i128),
            last_ms: 0,
        }
    }

    /// True once a block has been observed.
    pub fn is_synced(&self) -> bool {
        self.offset_ms.is_some()
    }

    /// Learns from a block with `timestamp` (chain seconds) observed at local time `local_ms`.
    ///
    /// A block's timestamp is at most the chain time at which we see it, so each observation is
    /// a lower bound of the offset; the clock keeps the largest. A chain that jumps forward
    /// (e.g. a test chain warped in time) moves the clock forward; it never moves backwards.
    pub fn observe_block(&mut self, timestamp: u64, local_ms: u64) {
        let bound = timestamp as i128 * 1000 - local_ms as i128;
        self.offset_ms = Some(match self.offset_ms {
            Some(current) => current.max(bound),
            None => bound,
        });
    }

    /// Whether [`Self::observe_block`] with these arguments would move the clock: true for the
    /// first block, and for one stamped later than the clock reads at `local_ms` (the chain is
    /// ahead of it). A block that does not move the clock tells it nothing.
    pub fn moved_by(&self, timestamp: u64, local_ms: u64) -> bool {
        let bound = timestamp as i128 * 1000 - local_ms as i128;
        self.offset_ms.is_none_or(|current| bound > current)
    }

    /// Logical chain time in milliseconds at local time `local_ms` (monotonic).
    pub fn now_ms(&mut self, local_ms: u64) -> u64 {
        let t = self.peek_ms(local_ms);
        self.last_ms = self.last_ms.max(t);
        self.last_ms
    }

    /// Logical time in milliseconds without recording it.
    pub fn peek_ms(&self, local_ms: u64) -> u64 {
        let t = local_ms as i128 + self.offset_ms.unwrap_or(0);
        t.clamp(0, u64::MAX as i128) as u64
    }

    /// Logical chain time in whole seconds at local time `local_ms`.
    pub fn now_secs(&mut self, local_ms: u64) -> u64 {
        self.now_ms(local_ms) / 1000
    }

    /// The local time at which the logical clock reads `chain_secs` (for scheduling timers).
    pub fn local_ms_at(&self, chain_secs: u64) -> u64 {
        let t = chain_secs as i128 * 1000 - self.offset_ms.unwrap_or(0);
        t.clamp(0, u64::MAX as i128) as u64
    }
}

/// The deadlines that follow a transaction (or a fork's genesis) with timestamp `t`, for the
/// transaction at the next height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// `t + p2pTime`: the next writer should have broadcast by then.
    pub write_by: u64,
    /// `t + p2pTime + agreementTime`: peers refuse to confirm the next transaction after this
    /// (by their logical clock).
    pub confirm_by: u64,
    /// `t + p2pTime + agreementTime + chainFallbackTime`: the writer must hold N signatures or
    /// have posted its transaction as calldata by then (by chain time); afterwards a timeout
    /// dispute can remove it.
    pub calldata_by: u64,
}

impl Deadlines {
    /// Deadlines for the transaction after one stamped `t`.
    pub fn after(t: u64, timing: &Timing) -> Self {
        let write_by = t.saturating_add(timing.p2p_time);
        let confirm_by = write_by.saturating_add(timing.agreement_time);
        let calldata_by = confirm_by.saturating_add(timing.chain_fallback_time);
        Self {
            write_by,
            confirm_by,
            calldata_by,
        }
    }
}

/// Why a transaction's timestamp is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Earlier than its parent's (or the fork genesis') timestamp.
    #[error("timestamp {timestamp} is before its parent's {parent}")]
    BeforeParent {
        /// The transaction's timestamp.
        timestamp: u64,
        /// The parent's.
        parent: u64,
    },
    /// Further in the future than the skew tolerance allows.
    #[error("timestamp {timestamp} is more than {tolerance} s ahead of our clock ({now})")]
    FromTheFuture {
        /// The transaction's timestamp.
        timestamp: u64,
        /// Our logical time.
        now: u64,
        /// Allowed skew.
        tolerance: u64,
    },
    /// Stamped more than the skew tolerance before our clock: the next writer's window would
    /// start in the past (docs/security.md, O1).
    #[error("timestamp {timestamp} is more than {tolerance} s behind our clock ({now})")]
    Backdated {
        /// The transaction's timestamp.
        timestamp: u64,
        /// Our logical time.
        now: u64,
        /// Allowed skew.
        tolerance: u64,
    },
    /// Arrived after the confirmation deadline of its height.
    #[error("arrived at {now}, after the confirmation deadline {deadline}")]
    Late {
        /// Our logical time.
        now: u64,
        /// `parent + p2pTime + agreementTime`.
        deadline: u64,
    },
}

/// Checks a received transaction's timestamp against its parent's and our logical time `now`
/// (seconds). The skew tolerance is `agreementTime`, the same bound the chain applies to
/// timestamps in the future; a stamp more than that behind our clock is refused too
/// (backdated: the next writer's window would start in the past).
pub fn check_timestamp(timestamp: u64, parent: u64, now: u64, timing: &Timing) -> Result<(), TimestampError> {
    if timestamp < parent {
        return Err(TimestampError::BeforeParent { timestamp, parent });
    }
    let tolerance = timing.agreement_time;
    if timestamp > now.saturating_add(tolerance) {
        return Err(TimestampError::FromTheFuture {
            timestamp,
            now,
            tolerance,
        });
    }
    let deadline = Deadlines::after(parent, timing).confirm_by;
    if now > deadline {
        return Err(TimestampError::Late { now, deadline });
    }
    if timestamp.saturating_add(tolerance) < now {
        return Err(TimestampError::Backdated {
            timestamp,
            now,
            tolerance,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: Timing = Timing {
        p2p_time: 30,
        agreement_time: 10,
        chain_fallback_time: 60,
        challenge_time: 120,
    };

    #[test]
    fn unsynced_clock_reads_local_time() {
        let mut c = LogicalClock::new();
        assert!(!c.is_synced());
        assert_eq!(c.now_ms(1234), 1234);
    }

    #[test]
    fn stale_blocks_do_not_pull_the_clock_back() {
        let mut c = LogicalClock::new();
        c.observe_block(1000, 0);
        assert_eq!(c.now_secs(10_000), 1010);
        // A block stamped 1005 seen at local 20 s is old news: the clock stays ahead.
        c.observe_block(1005, 20_000);
        assert_eq!(c.now_secs(20_000), 1020);
        // The chain jumped forward: follow it.
        c.observe_block(2000, 21_000);
        assert_eq!(c.now_secs(21_000), 2000);
    }

    #[test]
    fn a_block_moves_the_clock_only_when_it_is_ahead_of_it() {
        let mut c = LogicalClock::new();
        assert!(c.moved_by(1000, 0), "the first block syncs the clock");
        c.observe_block(1000, 0);
        // Stamped as the clock reads, or behind it: nothing to learn.
        assert!(!c.moved_by(1010, 10_000));
        assert!(!c.moved_by(1005, 20_000));
        // Ahead of it by a second: the clock follows.
        assert!(c.moved_by(1011, 10_000));
        let before = c.peek_ms(10_000);
        c.observe_block(1011, 10_000);
        assert!(c.peek_ms(10_000) > before);
        // What `moved_by` says is what `observe_block` does.
        for (ts, at) in [(1020, 19_000), (1020, 20_000), (1021, 20_000), (900, 50_000)] {
            let mut probe = c.clone();
            let said = probe.moved_by(ts, at);
            let read = probe.peek_ms(at);
            probe.observe_block(ts, at);
            assert_eq!(said, probe.peek_ms(at) != read, "block {ts} at {at}");
        }
    }

    #[test]
    fn deadlines_at_their_edges() {
        let parent = 1000;
        // Just before and at the confirmation deadline: accepted. Just after: late.
        assert_eq!(check_timestamp(1030, parent, 1040, &T), Ok(()));
        assert_eq!(
            check_timestamp(1031, parent, 1041, &T),
            Err(TimestampError::Late {
                now: 1041,
                deadline: 1040
            })
        );
        // Skew: up to agreementTime ahead of our clock is fine, one second more is not.
        assert_eq!(check_timestamp(1020, parent, 1010, &T), Ok(()));
        assert!(matches!(
            check_timestamp(1021, parent, 1010, &T),
            Err(TimestampError::FromTheFuture { .. })
        ));
        // Equal to the parent is in order; one less is not.
        assert_eq!(check_timestamp(1000, parent, 1000, &T), Ok(()));
        // Stamped with the parent's time and sent at the end of the window: up to agreementTime
        // behind our clock is fine, one second more is backdated.
        assert_eq!(check_timestamp(1000, parent, 1010, &T), Ok(()));
        assert_eq!(
            check_timestamp(1000, parent, 1011, &T),
            Err(TimestampError::Backdated {
                timestamp: 1000,
                now: 1011,
                tolerance: 10
            })
        );
        assert!(matches!(
            check_timestamp(999, parent, 1000, &T),
            Err(TimestampError::BeforeParent { .. })
        ));
    }

    #[test]
    fn local_time_for_a_chain_deadline() {
        let c = LogicalClock::synced_at(1_000_000, 0);
        assert_eq!(c.local_ms_at(1040), 40_000);
    }

    proptest! {
        #[test]
        fn logical_time_never_runs_backwards(
            events in proptest::collection::vec((any::<bool>(), 0u64..10_000, 0u64..100_000), 1..50)
        ) {
            let mut c = LogicalClock::new();
            let mut local = 0u64;
            let mut last = 0u64;
            for (is_block, ts, step) in events {
                local += step;
                if is_block { c.observe_block(ts, local); }
                let now = c.now_ms(local);
                prop_assert!(now >= last);
                last = now;
            }
        }
    }
}
