//! The AgreementManager: collects signatures per transaction, applies virtual voting (a signature
//! on a transaction votes for all its ancestors), decides finality, tracks forks and keeps
//! equivocation evidence for the dispute layer. Sans-IO.
