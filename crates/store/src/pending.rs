//! Writes that are in the journal but not yet in the database.
//!
//! A store on disk appends each batch's physical writes to its journal and keeps them here;
//! they go to redb in groups, in one non-durable write transaction each ([`Pending`] collapses
//! what a group wrote several times to its last value): when they pile up, before any read,
//! before a checkpoint, and whenever the host has nothing else to do
//! ([`Store::apply_journaled`](crate::Store::apply_journaled)). A redb write transaction costs
//! far more than the journal's append (page copies, the allocator's bookkeeping, checksums), so
//! a turn's critical path now holds the append and the `fdatasync` only.
//!
//! The journal stays the durable copy: a crash loses what is here and in redb's non-durable
//! commits alike, and opening the store replays the frames redb lacks.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::journal::Redo;

/// Number of tables a physical write may name (`table_id` in the store).
pub(crate) const TABLES: usize = 11;

/// One table's writes not yet in the database.
#[derive(Debug, Default)]
struct TableWrites {
    /// The last write of each key: its value, or `None` for a removal.
    points: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Ranges removed, in order, each removed from `points` when it came: they apply before
    /// the points, which all came after any range that covers them.
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What a group of batches wrote, as it stands after the last of them.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    tables: [TableWrites; TABLES],
    /// Bytes of keys and values taken in (what the group holds in memory, at most).
    bytes: usize,
    /// Keys written (some may be counted twice).
    writes: usize,
    /// Number of the last journal frame these writes come from.
    seq: u64,
}

/// The write lands outside the known tables.
#[derive(Debug)]
pub(crate) struct UnknownTable(pub(crate) u8);

impl Pending {
    /// True when nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.writes == 0 && self.tables.iter().all(|t| t.ranges.is_empty())
    }

    /// Bytes of keys and values held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keys written.
    pub(crate) fn writes(&self) -> usize {
        self.writes
    }

    /// Number of the last journal frame the writes come from.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// What the writes say of `key` in `table`: `Some(Some(value))` written, `Some(None)`
    /// removed, `None` not written here (the database has the answer).
    pub(crate) fn lookup(&self, table: u8, key: &[u8]) -> Option<Option<&[u8]>> {
        let t = self.tables.get(usize::from(table))?;
        if let Some(value) = t.points.get(key) {
            return Some(value.as_deref());
        }
        t.ranges
            .iter()
            .any(|(start, end)| start.as_slice() <= key && key < end.as_slice())
            .then_some(None)
    }

    /// Takes one physical write in, after every write taken so far.
    pub(crate) fn add(&mut self, redo: &Redo) -> Result<(), UnknownTable> {
        let table = match redo {
            Redo::Put { table, .. } | Redo::Remove { table, .. } | Redo::RemoveRange { table, .. } => *table,
        };
        let t = self
            .tables
            .get_mut(usize::from(table))
            .ok_or(UnknownTable(table))?;
        match redo {
            Redo::Put { key, value, .. } => {
                self.bytes += key.len() + value.len();
                self.writes += 1;
                t.points.insert(key.clone(), Some(value.clone()));
            }
            Redo::Remove { key, .. } => {
                self.bytes += key.len();
                self.writes += 1;
                t.points.insert(key.clone(), None);
            }
            Redo::RemoveRange { start, end, .. } => {
                remove_range(&mut t.points, start, end);
                self.bytes += start.len() + end.len();
                t.ranges.push((start.clone(), end.clone()));
            }
        }
        Ok(())
    }

    /// Takes in `later`, the writes of the batch in journal frame `seq` (after every write
    /// taken so far).
    pub(crate) fn merge(&mut self, later: Pending, seq: u64) {
        for (t, l) in self.tables.iter_mut().zip(later.tables) {
            for (start, end) in l.ranges {
                remove_range(&mut t.points, &start, &end);
                t.ranges.push((start, end));
            }
            t.points.extend(l.points);
        }
        self.bytes += later.bytes;
        self.writes += later.writes;
        self.seq = seq;
    }

    /// Every write, table by table: the ranges removed, then each key's last write.
    pub(crate) fn for_each(
        &self,
        mut f: impl FnMut(u8, Write<'_>) -> Result<(), crate::store::ApplyError>,
    ) -> Result<(), crate::store::ApplyError> {
        for (id, t) in (0u8..).zip(&self.tables) {
            for (start, end) in &t.ranges {
                f(id, Write::RemoveRange(start, end))?;
            }
            for (key, value) in &t.points {
                f(
                    id,
                    match value {
                        Some(value) => Write::Put(key, value),
                        None => Write::Remove(key),
                    },
                )?;
            }
        }
        Ok(())
    }
}

/// One write of a group, borrowed.
pub(crate) enum Write<'a> {
    Put(&'a [u8], &'a [u8]),
    Remove(&'a [u8]),
    RemoveRange(&'a [u8], &'a [u8]),
}

fn remove_range(points: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>, start: &[u8], end: &[u8]) {
    if start >= end {
        return;
    }
    let doomed: Vec<Vec<u8>> = points
        .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
        .map(|(k, _)| k.clone())
        .collect();
    for key in doomed {
        points.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn put(table: u8, key: &[u8], value: &[u8]) -> Redo {
        Redo::Put {
            table,
            key: key.to_vec(),
            value: value.to_vec(),
        }
    }

    fn range(table: u8, start: &[u8], end: &[u8]) -> Redo {
        Redo::RemoveRange {
            table,
            start: start.to_vec(),
            end: end.to_vec(),
        }
    }

    /// The writes in the order `for_each` hands them out.
    fn listed(p: &Pending) -> Vec<String> {
        let mut out = Vec::new();
        p.for_each(|t, w| {
            out.push(match w {
                Write::Put(k, v) => format!("{t} put {k:?}={v:?}"),
                Write::Remove(k) => format!("{t} remove {k:?}"),
                Write::RemoveRange(s, e) => format!("{t} range {s:?}..{e:?}"),
            });
            Ok(())
        })
        .unwrap_or_else(|_| unreachable!());
        out
    }

    #[test]
    fn the_last_write_of_a_key_wins_and_a_range_hides_what_came_before_it() {
        let mut p = Pending::default();
        p.add(&put(9, b"a1", b"x")).unwrap();
        p.add(&put(9, b"a1", b"y")).unwrap();
        p.add(&put(9, b"a5", b"z")).unwrap();
        p.add(&put(9, b"b1", b"w")).unwrap();
        p.add(&range(9, b"a", b"b")).unwrap();
        p.add(&put(9, b"a7", b"v")).unwrap();
        p.add(&Redo::Remove {
            table: 3,
            key: b"k".to_vec(),
        })
        .unwrap();
        assert_eq!(p.lookup(9, b"a1"), Some(None), "removed by the range");
        assert_eq!(p.lookup(9, b"a5"), Some(None));
        assert_eq!(
            p.lookup(9, b"a7"),
            Some(Some(&b"v"[..])),
            "written after the range"
        );
        assert_eq!(p.lookup(9, b"b1"), Some(Some(&b"w"[..])), "outside the range");
        assert_eq!(p.lookup(9, b"c"), None, "not written: the database answers");
        assert_eq!(p.lookup(3, b"k"), Some(None));
        assert_eq!(p.lookup(2, b"a7"), None, "another table");
        assert_eq!(
            listed(&p),
            [
                "3 remove [107]",
                "9 range [97]..[98]",
                "9 put [97, 55]=[118]",
                "9 put [98, 49]=[119]",
            ]
        );
        assert!(p.add(&put(11, b"k", b"v")).is_err(), "no table 11");
    }

    #[test]
    fn a_merged_batch_goes_after_what_was_there() {
        let mut p = Pending::default();
        p.add(&put(9, b"a1", b"old")).unwrap();
        p.add(&put(9, b"a2", b"old")).unwrap();
        let mut later = Pending::default();
        later.add(&put(9, b"a3", b"new")).unwrap();
        later.add(&range(9, b"a0", b"a2")).unwrap();
        later.add(&put(9, b"a2", b"new")).unwrap();
        p.merge(later, 7);
        assert_eq!(p.seq(), 7);
        assert_eq!(
            p.lookup(9, b"a1"),
            Some(None),
            "the later range removes an earlier write"
        );
        assert_eq!(p.lookup(9, b"a2"), Some(Some(&b"new"[..])));
        assert_eq!(p.lookup(9, b"a3"), Some(Some(&b"new"[..])));
        assert_eq!(
            listed(&p),
            [
                "9 range [97, 48]..[97, 50]",
                "9 put [97, 50]=[110, 101, 119]",
                "9 put [97, 51]=[110, 101, 119]",
            ]
        );
        assert!(!p.is_empty());
        assert!(Pending::default().is_empty());
    }
}
