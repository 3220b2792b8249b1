//! A small P2P node for labs and tests: runs a [`P2pManager`], prints its events as JSON lines
//! on stdout, and reads commands as JSON lines on stdin.
//!
//! ```text
//! entente-p2p-node --key <32-byte hex> [--listen <multiaddr>]... [--bootstrap <multiaddr>]...
//!                  [--relay <multiaddr>]... [--relay-server] [--public] [--connection-timeout-ms <ms>]
//!                  [--channel <32-byte hex> --participant <address>...]
//! ```
//!
//! Commands: `{"op":"send","to":"0x…","height":7}` sends a `SyncRequest` carrying `height`
//! on the channel and prints `{"event":"sent",…}` with the outcome; `{"op":"quit"}` exits.
//! Logs go to stderr (filter in `ENTENTE_LOG`, e.g. `entente::p2p=debug`).

use std::io::Write;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use entente_p2p::{ConnectionKind, Multiaddr, P2pConfig, P2pEvent, P2pHandle, P2pManager};
use entente_types::{Address, B256, Envelope, Message, SyncRequest};
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncBufReadExt;

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Command {
    Send { to: Address, height: u64 },
    Quit,
}

fn emit(value: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    // A closed stdout means the driver is gone; nothing left to tell.
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn kind(kind: ConnectionKind) -> &'static str {
    match kind {
        ConnectionKind::Direct => "direct",
        ConnectionKind::Relayed => "relayed",
    }
}

fn event_json(event: &P2pEvent) -> serde_json::Value {
    match event {
        P2pEvent::Listening { address } => json!({"event": "listening", "address": address.to_string()}),
        P2pEvent::RelayReservation { relay } => json!({"event": "reservation", "relay": relay.to_string()}),
        P2pEvent::ParticipantFound {
            channel_id,
            address,
            peer,
        } => json!({"event": "found", "channel": channel_id, "address": address, "peer": peer.to_string()}),
        P2pEvent::Connected {
            peer,
            address,
            kind: k,
            remote,
        } => json!({"event": "connected", "peer": peer.to_string(), "address": address, "kind": kind(*k),
                    "remote": remote.to_string()}),
        P2pEvent::Upgraded { peer, address, after } => json!({"event": "upgraded", "peer": peer.to_string(),
                    "address": address, "after_us": after.as_micros() as u64}),
        P2pEvent::HolePunchFailed { peer, reason } => {
            json!({"event": "hole_punch_failed", "peer": peer.to_string(), "reason": reason})
        }
        P2pEvent::Disconnected { peer, address } => {
            json!({"event": "disconnected", "peer": peer.to_string(), "address": address})
        }
        P2pEvent::Message {
            from,
            channel_id,
            envelope,
            via,
        } => {
            let height = match &envelope.message {
                Message::SyncRequest(r) => Some(r.from_height),
                _ => None,
            };
            json!({"event": "message", "from": from, "channel": channel_id, "height": height, "via": kind(*via)})
        }
        P2pEvent::Refused {
            peer,
            address,
            reason,
        } => {
            json!({"event": "refused", "peer": peer.to_string(), "address": address, "reason": reason})
        }
    }
}

struct Args {
    config: P2pConfig,
    channel: Option<(B256, Vec<Address>)>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut key = None;
    let mut listen = Vec::new();
    let mut bootstrap = Vec::new();
    let mut relays = Vec::new();
    let mut relay_server = false;
    let mut public = false;
    let mut connection_timeout = None;
    let mut channel = None;
    let mut participants = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--key" => key = Some(B256::from_str(&value()?).context("--key")?),
            "--listen" => listen.push(Multiaddr::from_str(&value()?).context("--listen")?),
            "--bootstrap" => bootstrap.push(Multiaddr::from_str(&value()?).context("--bootstrap")?),
            "--relay" => relays.push(Multiaddr::from_str(&value()?).context("--relay")?),
            "--relay-server" => relay_server = true,
            "--public" => public = true,
            "--connection-timeout-ms" => {
                connection_timeout = Some(Duration::from_millis(
                    value()?.parse().context("--connection-timeout-ms")?,
                ));
            }
            "--channel" => channel = Some(B256::from_str(&value()?).context("--channel")?),
            "--participant" => participants.push(Address::from_str(&value()?).context("--participant")?),
            other => bail!("unknown argument {other}"),
        }
    }
    let mut config = P2pConfig::new(key.context("--key is required")?);
    if !listen.is_empty() {
        config.listen_addrs = listen;
    }
    config.bootstrap_addrs = bootstrap;
    config.relay_addrs = relays;
    config.relay_server = relay_server;
    config.public = public;
    if let Some(timeout) = connection_timeout {
        config.connection_timeout = timeout;
    }
    Ok(Args {
        config,
        channel: channel.map(|c| (c, participants)),
    })
}

async fn run_command(handle: P2pHandle, channel_id: Option<B256>, line: &str) -> anyhow::Result<bool> {
    let command: Command = serde_json::from_str(line).context("bad command")?;
    match command {
        Command::Quit => Ok(false),
        Command::Send { to, height } => {
            let channel_id = channel_id.context("no channel joined")?;
            tokio::spawn(async move {
                let envelope = Envelope::new(Message::SyncRequest(SyncRequest {
                    channel_id,
                    fork: 0,
                    from_height: height,
                }));
                let outcome = handle.send(channel_id, to, envelope).await;
                emit(
                    json!({"event": "sent", "to": to, "height": height, "ok": outcome.is_ok(),
                            "error": outcome.err().map(|e| e.to_string())}),
                );
            });
            Ok(true)
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let filter = std::env::var("ENTENTE_LOG").unwrap_or_else(|_| "entente::p2p=info".to_owned());
    let filter = tracing_subscriber::filter::Targets::from_str(&filter).context("ENTENTE_LOG")?;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(filter)
        .init();

    let args = parse_args()?;
    let (handle, mut events) = P2pManager::spawn(args.config)?;
    emit(
        json!({"event": "started", "peer": handle.local_peer_id().to_string(), "address": handle.local_address()}),
    );
    let channel_id = args.channel.as_ref().map(|(c, _)| *c);
    if let Some((channel_id, participants)) = args.channel {
        handle.join_channel(channel_id, participants).await?;
        emit(json!({"event": "joined", "channel": channel_id}));
    }
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => emit(event_json(&event)),
                None => break,
            },
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(line)) if line.trim().is_empty() => {}
                Ok(Some(line)) => match run_command(handle.clone(), channel_id, &line).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => emit(json!({"event": "error", "reason": format!("{e:#}")})),
                },
                // The driver closed stdin: keep serving (a relay runs without commands).
                Ok(None) | Err(_) => stdin_open = false,
            },
        }
    }
    Ok(())
}
