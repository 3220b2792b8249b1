//! The embedding API: a `Node` and `Channel` handles over one event loop that feeds the sans-IO
//! cores and carries out their effects.
