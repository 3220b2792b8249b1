//! Store benchmarks (filled in later).
fn main() {}
