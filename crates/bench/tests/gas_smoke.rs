//! Smoke test of the gas benchmark: N = 2 on a fresh anvil, both frameworks, every operation
//! present in the JSON with a non-zero figure. No assertion on the figures themselves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use entente_bench::{entente, nitro, report};

#[test]
fn gas_n2_measures_every_operation_of_both_frameworks() {
    let measured = entente_bench::measure(&[2]).expect("the N = 2 measurement runs");
    let json = report::json(&measured);
    let rows = json["measurements"].as_array().expect("measurements");
    let gas_of = |framework: &str, operation: &str| {
        rows.iter()
            .find(|r| r["framework"] == framework && r["n"] == 2 && r["operation"] == operation)
            .and_then(|r| r["gas"].as_u64())
    };
    for operation in entente::operations(2) {
        let gas = gas_of("entente", operation);
        assert!(gas.is_some_and(|g| g > 0), "entente {operation}: {gas:?}");
    }
    for operation in nitro::operations() {
        let gas = gas_of("nitro", operation);
        assert!(gas.is_some_and(|g| g > 21_000), "nitro {operation}: {gas:?}");
    }
    // Every comparison row of an operation measured at N = 2 that names a Nitro operation has both
    // figures.
    let entente_ops = entente::operations(2);
    for row in json["comparison"].as_array().expect("comparison") {
        let measured_at_2 = entente_ops.iter().any(|o| row["operation"] == *o);
        if measured_at_2 && !row["nitro_operation"].is_null() {
            assert!(row["entente"]["2"].as_u64().is_some_and(|g| g > 0), "{row}");
            assert!(row["nitro"]["2"].as_u64().is_some_and(|g| g > 0), "{row}");
        }
    }
    assert!(!json["anvil"]["version"].as_str().unwrap_or("").is_empty());
    // The other two outputs render.
    assert!(report::markdown(&measured).contains("| cooperative close |"));
    assert!(report::svg(&measured).starts_with("<svg"));
}
