//! A logical clock synced to chain time from observed block timestamps, with skew tolerance and
//! the protocol's three deadlines (p2pTime, agreementTime, chainFallbackTime). Time is an input.
