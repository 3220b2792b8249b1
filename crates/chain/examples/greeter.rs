//! Starts a local anvil chain, deploys the Greeter contract from the exported artifacts and
//! talks to it through alloy. The smallest end-to-end check of the chain toolchain.
#![allow(clippy::print_stdout)]

use alloy::providers::{Provider, ProviderBuilder};
use anyhow::Context;
use entente_chain::Anvil;
use entente_chain::contracts::Greeter;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let anvil = Anvil::spawn().context("starting anvil")?;
    println!(
        "anvil listening at {} (chain id {})",
        anvil.endpoint(),
        anvil.chain_id()
    );
    let provider = ProviderBuilder::new()
        .wallet(anvil.wallet(0)?)
        .connect_http(anvil.endpoint_url());

    let greeter = Greeter::deploy(&provider, "hello from Entente".to_string()).await?;
    println!("Greeter deployed at {}", greeter.address());
    println!("greeting: {:?}", greeter.greeting().call().await?);

    let receipt = greeter
        .setGreeting("state channels, peer to peer".into())
        .send()
        .await?
        .get_receipt()
        .await?;
    println!(
        "setGreeting mined in block {:?}, gas {}",
        receipt.block_number, receipt.gas_used
    );
    println!("greeting: {:?}", greeter.greeting().call().await?);
    println!("chain height: {}", provider.get_block_number().await?);
    Ok(())
}
