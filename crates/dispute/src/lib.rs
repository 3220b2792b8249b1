//! The DisputeHandler: decides when to post calldata, raise a timeout dispute, prove fraud or
//! challenge a false dispute, and builds each proof from stored evidence. Sans-IO: it emits chain
//! effects for the node to carry out.
