//! `sol!` bindings generated from the exported artifacts (their documentation is generated too).
#![allow(missing_docs, unreachable_pub)]

alloy_sol_types::sol!(
    /// The two-player tic-tac-toe state machine.
    #[derive(Debug, PartialEq, Eq)]
    TicTacToe,
    "../../contracts/artifacts/TicTacToe.json"
);

alloy_sol_types::sol!(
    /// The N-party round-robin counter state machine.
    #[derive(Debug, PartialEq, Eq)]
    RoundRobinCounter,
    "../../contracts/artifacts/RoundRobinCounter.json"
);

alloy_sol_types::sol!(
    /// The N-party payment machine: anyone pays anyone at any time, as signed intents a
    /// sequencer applies (`applyIntents`); nobody is obliged to write.
    #[derive(Debug, PartialEq, Eq)]
    Payments,
    "../../contracts/artifacts/Payments.json"
);

alloy_sol_types::sol!(
    /// An ERC20 anyone may mint, for local chains and tests (the examples' token channels).
    #[derive(Debug, PartialEq, Eq)]
    TestToken,
    "../../contracts/artifacts/TestToken.json"
);

alloy_sol_types::sol!(
    /// The whole ABI of the StateChannelManager: its own functions, the ones it forwards to its
    /// extension, and (inherited from `IStateChannelEvents`) every event and custom error. Bind
    /// clients to this: its struct types (`Transaction`, `StateProof`, `DisputeRecord`, ...) are the
    /// ones both the calls take and the events carry.
    #[sol(all_derives)]
    IStateChannelManager,
    "../../contracts/artifacts/IStateChannelManager.json"
);

alloy_sol_types::sol!(
    /// Every event and custom error of the StateChannelManager, alone (for code that only listens).
    /// The same events and errors are part of [`IStateChannelManager`], whose struct types the calls
    /// take too; prefer that one when a decoded event feeds a call.
    #[sol(all_derives)]
    IStateChannelEvents,
    "../../contracts/artifacts/IStateChannelEvents.json"
);
