/// Conditions of the simulated network.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    /// One-way latency in milliseconds, drawn uniformly from this inclusive range per message
    /// (different latencies reorder messages).
    pub latency_ms: (u64, u64),
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Timed partitions.
    pub partitions: Vec<Partition>,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            latency_ms: (1, 20),
            loss: 0.0,
            duplicate: 0.0,
            partitions: Vec::new(),
        }
    }
}

impl NetConfig {
    /// A perfect network with a fixed latency.
    pub fn fixed(latency_ms: u64) -> Self {
        Self {
            latency_ms: (latency_ms, latency_ms),
            ..Self::default()
        }
    }

    /// Whether a message from peer `a` to peer `b` sent at `now_ms` crosses a partition.
    pub(crate) fn blocked(&self, a: usize, b: usize, now_ms: u64) -> bool {
        self.partitions
            .iter()
            .any(|p| p.active(now_ms) && p.side(a) != p.side(b))
    }
}

/// Between `from_ms` and `until_ms`, peers in `group` cannot talk to peers outside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Start (virtual ms).
    pub from_ms: u64,
    /// End (virtual ms).
    pub until_ms: u64,
    /// Peer indices on one side.
    pub group: Vec<usize>,
}

impl Partition {
    fn active(&self, now_ms: u64) -> bool {
        (self.from_ms..self.until_ms).contains(&now_ms)
    }

    fn side(&self, peer: usize) -> bool {
        self.group.contains(&peer)
    }
}
