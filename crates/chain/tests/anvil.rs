//! The toolchain end to end: the exported Greeter artifact deployed on a real anvil and called
//! through alloy; and anvil never outlives its handle.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use alloy::providers::ProviderBuilder;
use entente_chain::Anvil;
use entente_chain::contracts::Greeter;

#[tokio::test]
async fn greeter_deploys_and_answers_on_anvil() -> anyhow::Result<()> {
    let anvil = Anvil::spawn()?;
    let from = anvil.address(0)?;
    let provider = ProviderBuilder::new()
        .wallet(anvil.wallet(0)?)
        .connect_http(anvil.endpoint_url());

    let greeter = Greeter::deploy(&provider, "hello".to_string()).await?;
    assert_eq!(greeter.greeting().call().await?, "hello");

    let receipt = greeter
        .setGreeting("entente".to_string())
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status(), "setGreeting reverted");
    let greeted = receipt
        .inner
        .logs()
        .iter()
        .find_map(|log| log.log_decode::<Greeter::Greeted>().ok())
        .expect("a Greeted event");
    assert_eq!(greeted.inner.data.from, from);
    assert_eq!(greeted.inner.data.greeting, "entente");
    assert_eq!(greeter.greeting().call().await?, "entente");
    Ok(())
}

#[test]
fn anvil_is_stopped_when_dropped() -> anyhow::Result<()> {
    let anvil = Anvil::builder().chain_id(4242).spawn()?;
    let pid = anvil.pid();
    assert_eq!(anvil.chain_id(), 4242);
    assert_eq!(anvil.keys().len(), 10);
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(anvil);
    // The keeper kills and reaps the child before drop returns.
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "anvil {pid} still running"
    );
    Ok(())
}

#[test]
fn missing_binary_is_a_clear_error() {
    let err = Anvil::builder().binary("/nonexistent/anvil").spawn().unwrap_err();
    assert!(err.to_string().contains("failed to start anvil"), "{err}");
}
