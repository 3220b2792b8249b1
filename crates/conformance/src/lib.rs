//! Chain-agnostic conformance tests of the StateChannelManager: one set of scenarios that every
//! chain backend must pass with the same verdicts, the in-process revm chain
//! (`entente-devchain`) and anvil over JSON-RPC (`entente-chain`) alike.
//!
//! - [`Chain`]: what a backend implements (send, view, logs, time, balances); see the
//!   [`harness`] module for how each method maps to JSON-RPC.
//! - [`World`]: the fixture every scenario starts from (the manager, the two example machines,
//!   eight funded participants, off-chain scratch machines to compute states and signatures).
//! - [`scenarios`]: the scenarios, each a generic function over [`Chain`]; [`scenarios::all`]
//!   lists them by name, and [`conformance_tests!`] expands to one `#[test]` per scenario.
//!
//! This is a test-support library, used only as a dev-dependency: infrastructure failures and
//! failed checks panic, as in any test.
//!
//! ```ignore
//! fn world() -> entente_conformance::World<MyChain> {
//!     entente_conformance::World::new(MyChain::with_manager())
//! }
//! mod scenarios {
//!     entente_conformance::conformance_tests!(super::world());
//! }
//! ```

// A test-support library: a failed check or a broken chain aborts the test that runs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod harness;
pub mod scenarios;

pub use harness::{Chain, ChainLog, Sent, World};

/// Expands to one `#[test]` per conformance scenario, each running it on a fresh world built by
/// `$world` (an expression of type [`World<C>`](World), evaluated once per test). Put it in a
/// module of its own: the tests are named after the scenarios.
///
/// The list is [`scenarios::all`]'s; a scenario added there must be added here too (the
/// generated `every_scenario_has_a_test` fails until it is).
#[macro_export]
macro_rules! conformance_tests {
    ($world:expr) => {
        $crate::conformance_tests!(@each $world;
            tictactoe_open_is_atomic,
            calldata_post_round_trips,
            timeout_dispute,
            double_signature_slashes,
            cooperative_close,
            four_party_round_robin,
            refusals,
            intent_post_and_force_round_trip,
        );
    };
    (@each $world:expr; $($name:ident),* $(,)?) => {
        #[test]
        fn every_scenario_has_a_test() {
            fn listed<C: $crate::Chain>(
                _world: impl FnOnce() -> $crate::World<C>,
            ) -> ::std::vec::Vec<&'static str> {
                $crate::scenarios::all::<C>()
                    .into_iter()
                    .map(|(name, _)| name)
                    .collect()
            }
            assert_eq!(listed(|| $world), [$(stringify!($name)),*]);
        }
        $(
            #[test]
            fn $name() {
                let mut world = $world;
                $crate::scenarios::$name(&mut world);
            }
        )*
    };
}
