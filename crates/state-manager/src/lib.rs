//! The StateManager: the verification pipeline every received transaction passes, applying
//! transitions, pipelining, timeouts and observer events. Sans-IO.
