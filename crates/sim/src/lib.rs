//! A deterministic N-peer simulation: seeded, virtual time, in-memory links with latency, loss,
//! reordering and partitions, driving the same cores the node runs.
