//! The daemon's API: JSON-RPC 2.0 over WebSocket, every connection authenticated with the token
//! made at `entente init`. Named parameters (a JSON object) throughout; `account` selects the session
//! and may be left out when the daemon runs one account. The methods, their parameters, results and
//! errors are listed in [`METHODS`] (from which `docs/daemon.md` is checked).

use std::sync::Arc;

use alloy_primitives::{Address, B256, Bytes, U256};
use entente_node::{ChannelInfo, NodeError, ProposalBuilder};
use entente_types::Timing;
use jsonrpsee::types::{ErrorObject, ErrorObjectOwned, Params};
use jsonrpsee::{PendingSubscriptionSink, RpcModule, SubscriptionMessage};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::abi::{AbiError, MachineAbi};
use crate::daemon::{Daemon, Machine, MachineEntry, Session, check_deployed};

/// The API's error codes (beside JSON-RPC's own: -32700 parse error, -32600 invalid request,
/// -32601 unknown method, -32602 invalid parameters). Every error's `data` is
/// `{"kind": "<name>", ...details}`.
pub mod codes {
    /// No session for that account.
    pub const UNKNOWN_ACCOUNT: i32 = 1001;
    /// No channel (or proposal) with that id on that account.
    pub const UNKNOWN_CHANNEL: i32 = 1002;
    /// No registered machine of that name or address.
    pub const UNKNOWN_MACHINE: i32 = 1003;
    /// The machine has no such function, or the name is ambiguous.
    pub const UNKNOWN_FUNCTION: i32 = 1004;
    /// Arguments that do not fit the function's types.
    pub const BAD_ARGUMENTS: i32 = 1005;
    /// The channel refused the move (not your turn, invalid move, game over, ...).
    pub const MOVE_REFUSED: i32 = 1006;
    /// The channel is not live (yet, or any more).
    pub const NOT_LIVE: i32 = 1007;
    /// The chain could not be reached or refused a call.
    pub const CHAIN: i32 = 1008;
    /// A proposal that cannot be made or accepted.
    pub const BAD_PROPOSAL: i32 = 1009;
    /// The chain's code at the address is not the artifact's.
    pub const CODE_MISMATCH: i32 = 1010;
    /// The node refused the request for another reason.
    pub const REFUSED: i32 = 1011;
    /// The node failed (its data directory, its network, its machine runtime).
    pub const NODE: i32 = 1012;
}

fn error(code: i32, kind: &str, message: impl Into<String>, details: Value) -> ErrorObjectOwned {
    let mut data = json!({ "kind": kind });
    if let (Value::Object(d), Value::Object(extra)) = (&mut data, details) {
        d.extend(extra);
    }
    ErrorObject::owned(code, message.into(), Some(data))
}

fn node_error(e: NodeError) -> ErrorObjectOwned {
    let message = e.to_string();
    match e {
        NodeError::UnknownChannel(id) => error(
            codes::UNKNOWN_CHANNEL,
            "UnknownChannel",
            message,
            json!({ "channel_id": id }),
        ),
        NodeError::NotLive(id) => error(codes::NOT_LIVE, "NotLive", message, json!({ "channel_id": id })),
        NodeError::ChannelClosed(id) => error(
            codes::NOT_LIVE,
            "ChannelClosed",
            message,
            json!({ "channel_id": id }),
        ),
        NodeError::Move(_) => error(codes::MOVE_REFUSED, "MoveRefused", message, json!({})),
        NodeError::BadProposal(_) => error(codes::BAD_PROPOSAL, "BadProposal", message, json!({})),
        NodeError::NotAParticipant(a) => error(
            codes::BAD_PROPOSAL,
            "NotAParticipant",
            message,
            json!({ "address": a }),
        ),
        NodeError::Chain(_) => error(codes::CHAIN, "Chain", message, json!({})),
        NodeError::Refused(_) => error(codes::REFUSED, "Refused", message, json!({})),
        NodeError::Timeout(_) => error(codes::REFUSED, "Timeout", message, json!({})),
        _ => error(codes::NODE, "Node", message, json!({})),
    }
}

fn abi_error(e: AbiError) -> ErrorObjectOwned {
    let message = e.to_string();
    match &e {
        AbiError::UnknownFunction { available, .. } => error(
            codes::UNKNOWN_FUNCTION,
            "UnknownFunction",
            message,
            json!({ "available": available }),
        ),
        AbiError::Ambiguous { candidates, .. } => error(
            codes::UNKNOWN_FUNCTION,
            "AmbiguousFunction",
            message,
            json!({ "candidates": candidates }),
        ),
        AbiError::ArgumentCount { expected, got, .. } => error(
            codes::BAD_ARGUMENTS,
            "ArgumentCount",
            message,
            json!({ "expected": expected, "got": got }),
        ),
        AbiError::BadArgument { index, ty, .. } => error(
            codes::BAD_ARGUMENTS,
            "BadArgument",
            message,
            json!({ "index": index, "type": ty }),
        ),
        AbiError::NoAbi(_) => error(codes::BAD_ARGUMENTS, "NoAbi", message, json!({})),
        AbiError::BadResult { .. } => error(codes::NODE, "BadResult", message, json!({})),
    }
}

fn unknown_account(account: Option<&str>, daemon: &Daemon) -> ErrorObjectOwned {
    let known: Vec<&String> = daemon.sessions.keys().collect();
    let message = match account {
        Some(a) => format!("no account {a:?} on this daemon"),
        None => "several accounts on this daemon: name one with \"account\"".to_string(),
    };
    error(
        codes::UNKNOWN_ACCOUNT,
        "UnknownAccount",
        message,
        json!({ "accounts": known }),
    )
}

fn session<'a>(daemon: &'a Daemon, account: Option<&str>) -> Result<&'a Session, ErrorObjectOwned> {
    daemon
        .session(account)
        .ok_or_else(|| unknown_account(account, daemon))
}

fn unknown_machine(name: &str) -> ErrorObjectOwned {
    error(
        codes::UNKNOWN_MACHINE,
        "UnknownMachine",
        format!("no machine {name:?} is registered (see machine_list, machine_register)"),
        json!({ "machine": name }),
    )
}

// ------------------------------------------------------------------ parameters and results

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountParams {
    #[serde(default)]
    account: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelParams {
    #[serde(default)]
    account: Option<String>,
    channel_id: B256,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterParams {
    name: String,
    address: Address,
    /// The artifact, as a JSON object or its text.
    artifact: Value,
}

/// A function of the machine and its arguments.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallSpec {
    function: String,
    #[serde(default)]
    args: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposeParams {
    #[serde(default)]
    account: Option<String>,
    machine: String,
    participants: Vec<Address>,
    deposits: Vec<U256>,
    genesis: CallSpec,
    #[serde(default)]
    timing: Option<TimingParams>,
    #[serde(default)]
    token: Option<Address>,
    #[serde(default)]
    salt: Option<B256>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimingParams {
    p2p: u64,
    agreement: u64,
    fallback: u64,
    challenge: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeclineParams {
    #[serde(default)]
    account: Option<String>,
    channel_id: B256,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallParams {
    #[serde(default)]
    account: Option<String>,
    channel_id: B256,
    #[serde(default)]
    function: Option<String>,
    #[serde(default)]
    args: Vec<Value>,
    #[serde(default)]
    calldata: Option<Bytes>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeParams {
    #[serde(default)]
    account: Option<String>,
    channel_id: B256,
    #[serde(default)]
    from: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowJoinParams {
    #[serde(default)]
    account: Option<String>,
    channel_id: B256,
    joiner: Address,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposeJoinParams {
    #[serde(default)]
    account: Option<String>,
    channel_id: B256,
    joiner: Address,
    amount: U256,
    #[serde(default)]
    data: Bytes,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectJoinParams {
    #[serde(default)]
    account: Option<String>,
    channel_id: B256,
    sponsor: Address,
    amount: U256,
    machine: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WithdrawParams {
    #[serde(default)]
    account: Option<String>,
    channel_id: B256,
    /// Seconds to wait for the withdrawal (0: answer at once).
    #[serde(default)]
    wait: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerAddParams {
    #[serde(default)]
    account: Option<String>,
    address: String,
    #[serde(default = "yes")]
    remember: bool,
}

fn yes() -> bool {
    true
}

/// A channel as the API shows it.
#[derive(Clone, Serialize)]
struct ChannelView {
    channel_id: B256,
    phase: entente_node::Phase,
    machine: Option<String>,
    state_machine: Address,
    token: Address,
    fork: u64,
    tip: u64,
    finalized: u64,
    tip_state_hash: B256,
    tip_timestamp: u64,
    participants: Vec<Address>,
    deposits: Vec<Share>,
    next_writer: Option<Address>,
    game_over: bool,
    disputed: bool,
    exits: Option<Vec<Share>>,
    calls_outstanding: usize,
}

/// A participant's amount (a deposit, a payout).
#[derive(Clone, Serialize)]
struct Share {
    participant: Address,
    amount: U256,
}

fn channel_view(info: ChannelInfo, machine: Option<&Machine>) -> ChannelView {
    ChannelView {
        channel_id: info.channel_id,
        phase: info.phase,
        machine: machine.map(|m| m.entry.name.clone()),
        state_machine: info.state_machine,
        token: info.token,
        fork: info.fork,
        tip: info.tip,
        finalized: info.finalized,
        tip_state_hash: info.tip_state_hash,
        tip_timestamp: info.tip_timestamp,
        participants: info.participants,
        deposits: info
            .deposits
            .into_iter()
            .map(|(participant, amount)| Share { participant, amount })
            .collect(),
        next_writer: (info.next_writer != Address::ZERO).then_some(info.next_writer),
        game_over: info.game_over,
        disputed: info.disputed,
        exits: info.exits.map(|e| {
            e.into_iter()
                .map(|(participant, amount)| Share { participant, amount })
                .collect()
        }),
        calls_outstanding: info.calls_outstanding,
    }
}

fn parse<T: for<'de> Deserialize<'de>>(params: &Params<'_>) -> Result<T, ErrorObjectOwned> {
    if params.as_str().is_none() {
        // no params at all: an empty object
        return serde_json::from_value(json!({})).map_err(|e| {
            ErrorObject::owned(
                jsonrpsee::types::error::INVALID_PARAMS_CODE,
                format!("parameters: {e}"),
                None::<()>,
            )
        });
    }
    params.parse()
}

/// The handle of channel `id` of `account`'s session.
async fn channel_of(
    daemon: &Daemon,
    account: Option<&str>,
    id: B256,
) -> Result<entente_node::Channel, ErrorObjectOwned> {
    session(daemon, account)?
        .node
        .channel(id)
        .await
        .map_err(node_error)
}

async fn machine_of(daemon: &Daemon, address: Address) -> Option<Machine> {
    daemon.machines.read().await.at(address).cloned()
}

async fn channel_machine(
    daemon: &Daemon,
    s: &Session,
    id: B256,
) -> Result<(entente_node::Channel, Machine), ErrorObjectOwned> {
    let channel = s.node.channel(id).await.map_err(node_error)?;
    let info = channel.info().await.map_err(node_error)?;
    let machine = machine_of(daemon, info.state_machine)
        .await
        .ok_or_else(|| unknown_machine(&info.state_machine.to_string()))?;
    Ok((channel, machine))
}

// ------------------------------------------------------------------ the methods

/// One method of the API, for its reference.
#[derive(Debug, Clone, Copy)]
pub struct MethodDoc {
    /// The method's name.
    pub name: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Its parameters (JSON, with comments).
    pub params: &'static str,
    /// Its result.
    pub result: &'static str,
    /// The API errors it may return (beside the JSON-RPC ones).
    pub errors: &'static [&'static str],
}

/// Every method of the API (subscriptions give their notification and unsubscribe methods in the summary).
pub const METHODS: &[MethodDoc] = &[
    MethodDoc {
        name: "session_list",
        summary: "The accounts this daemon runs a node for (one session each).",
        params: "{}",
        result: "[{\"account\": \"alice\", \"address\": \"0x...\", \"peer_id\": \"12D3...\", \"listen\": [\"/ip4/...\"]}]",
        errors: &[],
    },
    MethodDoc {
        name: "peer_add",
        summary: "Dials a node (`/ip4/.../tcp/.../p2p/<peer id>`) to reach the network through, and (unless `remember` is false) adds it to the account's address book: the `bootstrap` list of its configuration, dialed at every start.",
        params: "{\"account\"?: \"bob\", \"address\": \"/ip4/127.0.0.1/tcp/4001/p2p/16Uiu2...\", \"remember\"?: true}",
        result: "{\"peer_id\": \"16Uiu2...\", \"remembered\": true}",
        errors: &["UNKNOWN_ACCOUNT", "BAD_ARGUMENTS", "NODE"],
    },
    MethodDoc {
        name: "peer_list",
        summary: "The account's address book and the peers its node is connected to (with their Ethereum address once they authenticated as a channel participant).",
        params: "{\"account\"?: \"bob\"}",
        result: "{\"book\": [\"/ip4/.../p2p/...\"], \"connected\": [{\"peer_id\": \"16Uiu2...\", \"address\": \"0x...\" | null, \"relayed\": false}]}",
        errors: &["UNKNOWN_ACCOUNT"],
    },
    MethodDoc {
        name: "account_balance",
        summary: "The account's ether balance on chain, in wei.",
        params: "{\"account\"?: \"alice\"}",
        result: "{\"address\": \"0x...\", \"balance\": \"0x...\"}",
        errors: &["UNKNOWN_ACCOUNT", "CHAIN"],
    },
    MethodDoc {
        name: "machine_register",
        summary: "Registers a state machine: its artifact and where it is deployed. The daemon checks that the chain's code at the address is what the artifact deploys.",
        params: "{\"name\": \"tictactoe\", \"address\": \"0x...\", \"artifact\": {\"abi\": [...], \"bytecode\": \"0x...\"}}",
        result: "{\"name\": \"tictactoe\", \"address\": \"0x...\"}",
        errors: &["CODE_MISMATCH", "BAD_ARGUMENTS"],
    },
    MethodDoc {
        name: "machine_list",
        summary: "The registered machines, with their ABIs.",
        params: "{}",
        result: "[{\"name\": \"tictactoe\", \"address\": \"0x...\", \"abi\": [...]}]",
        errors: &[],
    },
    MethodDoc {
        name: "proposal_make",
        summary: "Proposes a channel to its other participants (the proposer first): the genesis state is computed by the machine's `genesis.function` run locally with `genesis.args`. Timing in seconds; deposits in wei (decimal or 0x strings).",
        params: "{\"account\"?: \"alice\", \"machine\": \"tictactoe\", \"participants\": [\"0x...\", \"0x...\"], \"deposits\": [\"1000\", \"1000\"], \"genesis\": {\"function\": \"initialState\", \"args\": [\"0x...\", \"0x...\", \"1000\"]}, \"timing\"?: {\"p2p\": 30, \"agreement\": 10, \"fallback\": 60, \"challenge\": 120}, \"token\"?: \"0x...\", \"salt\"?: \"0x...\"}",
        result: "{\"channel_id\": \"0x...\"}",
        errors: &[
            "UNKNOWN_ACCOUNT",
            "UNKNOWN_MACHINE",
            "UNKNOWN_FUNCTION",
            "BAD_ARGUMENTS",
            "BAD_PROPOSAL",
            "CHAIN",
        ],
    },
    MethodDoc {
        name: "proposal_list",
        summary: "Proposals received and not answered yet.",
        params: "{\"account\"?: \"bob\"}",
        result: "[{\"channel_id\": \"0x...\", \"from\": \"0x...\", \"machine\": \"tictactoe\" | null, \"proposal\": {...}}]",
        errors: &["UNKNOWN_ACCOUNT"],
    },
    MethodDoc {
        name: "proposal_accept",
        summary: "Accepts a proposal; the node deposits once the proposer opened the channel on chain. The proposal's machine must be registered.",
        params: "{\"account\"?: \"bob\", \"channel_id\": \"0x...\"}",
        result: "{\"channel_id\": \"0x...\"}",
        errors: &[
            "UNKNOWN_ACCOUNT",
            "UNKNOWN_CHANNEL",
            "UNKNOWN_MACHINE",
            "BAD_PROPOSAL",
            "CHAIN",
        ],
    },
    MethodDoc {
        name: "proposal_decline",
        summary: "Declines a proposal.",
        params: "{\"account\"?: \"bob\", \"channel_id\": \"0x...\", \"reason\"?: \"busy\"}",
        result: "null",
        errors: &["UNKNOWN_ACCOUNT", "UNKNOWN_CHANNEL"],
    },
    MethodDoc {
        name: "channel_list",
        summary: "Every channel of the account, as channel_info shows it.",
        params: "{\"account\"?: \"alice\"}",
        result: "[ChannelInfo]",
        errors: &["UNKNOWN_ACCOUNT"],
    },
    MethodDoc {
        name: "channel_info",
        summary: "Where a channel stands: phase (Proposed, Funding, Joining, Live, Closed, Left, Cancelled), fork, tip and final heights, participants, the deposits locked at the opening, next writer (null when anyone may write), dispute, payouts once settled (amounts in wei, 0x hex).",
        params: "{\"account\"?: \"alice\", \"channel_id\": \"0x...\"}",
        result: "{\"channel_id\": \"0x...\", \"phase\": \"Live\", \"machine\": \"tictactoe\", \"state_machine\": \"0x...\", \"token\": \"0x00..\", \"fork\": 0, \"tip\": 3, \"finalized\": 3, \"tip_state_hash\": \"0x...\", \"tip_timestamp\": 1700000000, \"participants\": [\"0x...\"], \"deposits\": [{\"participant\": \"0x...\", \"amount\": \"0x3e8\"}], \"next_writer\": \"0x...\", \"game_over\": false, \"disputed\": false, \"exits\": null, \"calls_outstanding\": 0}",
        errors: &["UNKNOWN_ACCOUNT", "UNKNOWN_CHANNEL"],
    },
    MethodDoc {
        name: "channel_call",
        summary: "Makes a move: a function of the machine by name or signature with JSON arguments (ABI-encoded by the daemon), or raw `calldata`. Returns once applied locally (final later: watch the events).",
        params: "{\"account\"?: \"alice\", \"channel_id\": \"0x...\", \"function\": \"play(uint8)\", \"args\": [4]}  or  {\"channel_id\": \"0x...\", \"calldata\": \"0x...\"}",
        result: "{\"digest\": \"0x...\"}",
        errors: &[
            "UNKNOWN_ACCOUNT",
            "UNKNOWN_CHANNEL",
            "UNKNOWN_MACHINE",
            "UNKNOWN_FUNCTION",
            "BAD_ARGUMENTS",
            "MOVE_REFUSED",
            "NOT_LIVE",
        ],
    },
    MethodDoc {
        name: "channel_view",
        summary: "Runs a view of the machine on the channel's current state, locally; the result decoded to JSON (one output: its value; several: an array; named tuple components: an object).",
        params: "{\"account\"?: \"alice\", \"channel_id\": \"0x...\", \"function\": \"getGame\", \"args\": []}",
        result: "JSON of the outputs",
        errors: &[
            "UNKNOWN_ACCOUNT",
            "UNKNOWN_CHANNEL",
            "UNKNOWN_MACHINE",
            "UNKNOWN_FUNCTION",
            "BAD_ARGUMENTS",
            "NODE",
        ],
    },
    MethodDoc {
        name: "channel_exit",
        summary: "Leaves through the chain: stops signing, brings the latest state on chain and exits with what it gives the account.",
        params: "{\"account\"?: \"alice\", \"channel_id\": \"0x...\"}",
        result: "null",
        errors: &["UNKNOWN_ACCOUNT", "UNKNOWN_CHANNEL", "REFUSED"],
    },
    MethodDoc {
        name: "channel_leave",
        summary: "Asks the other participants to let this account leave with its share (agreed, then on chain).",
        params: "{\"account\"?: \"alice\", \"channel_id\": \"0x...\"}",
        result: "null",
        errors: &["UNKNOWN_ACCOUNT", "UNKNOWN_CHANNEL", "REFUSED"],
    },
    MethodDoc {
        name: "channel_withdrawal",
        summary: "What the account got back from a channel: the node withdraws its payout (or a reclaimed deposit) on its own once the channel is settled, left or cancelled. Answers the amounts withdrawn so far and whether the channel is over; with `wait` (seconds), first waits for a withdrawal or the end of that time.",
        params: "{\"account\"?: \"alice\", \"channel_id\": \"0x...\", \"wait\"?: 60}",
        result: "{\"withdrawn\": [\"0x7d0\"], \"phase\": \"Closed\", \"calls_outstanding\": 0}",
        errors: &["UNKNOWN_ACCOUNT", "UNKNOWN_CHANNEL"],
    },
    MethodDoc {
        name: "channel_allow_join",
        summary: "Lets `joiner` join the channel when another participant proposes it (this account then co-signs the approval).",
        params: "{\"account\"?: \"alice\", \"channel_id\": \"0x...\", \"joiner\": \"0x...\"}",
        result: "null",
        errors: &["UNKNOWN_ACCOUNT", "UNKNOWN_CHANNEL", "REFUSED"],
    },
    MethodDoc {
        name: "channel_propose_join",
        summary: "Proposes that `joiner` join with a deposit of `amount` (`data` goes to the machine's join hook) at the current state, which must be final; every other participant must have allowed it, the newcomer must expect it.",
        params: "{\"account\"?: \"alice\", \"channel_id\": \"0x...\", \"joiner\": \"0x...\", \"amount\": \"1000\", \"data\"?: \"0x\"}",
        result: "null",
        errors: &["UNKNOWN_ACCOUNT", "UNKNOWN_CHANNEL", "REFUSED"],
    },
    MethodDoc {
        name: "channel_expect_join",
        summary: "Prepares this account to join a running channel with a deposit of `amount`, sponsored by participant `sponsor`: when the sponsor's ticket arrives on these terms, the node pays the deposit and takes part from the fork that starts with it. The channel's machine must be registered.",
        params: "{\"account\"?: \"carol\", \"channel_id\": \"0x...\", \"sponsor\": \"0x...\", \"amount\": \"1000\", \"machine\": \"payments\"}",
        result: "{\"channel_id\": \"0x...\"}",
        errors: &[
            "UNKNOWN_ACCOUNT",
            "UNKNOWN_CHANNEL",
            "UNKNOWN_MACHINE",
            "BAD_PROPOSAL",
            "CHAIN",
        ],
    },
    MethodDoc {
        name: "node_subscribe",
        summary: "What happens to the account's node beside its channels' logs, as `node_event` notifications, from now on (live, not replayed): `{\"Proposal\": {\"from\": \"0x...\", \"channel_id\": \"0x...\"}}` when a proposal arrives, `{\"ChainUnavailable\": {\"error\": \"...\"}}` and `\"ChainRecovered\"`. Ends with `node_unsubscribe`.",
        params: "{\"account\"?: \"bob\"}",
        result: "a subscription id; notifications as above",
        errors: &["UNKNOWN_ACCOUNT"],
    },
    MethodDoc {
        name: "channel_subscribe",
        summary: "The channel's events from sequence number `from` on (default 0: every logged event), then as they happen, as `channel_event` notifications `{\"seq\": 7, \"event\": {...}}`; none is skipped. A client that stores the last `seq` it saw resumes after a reconnect (of its own or of the daemon) with `from: seq + 1`. Ends with `channel_unsubscribe`.",
        params: "{\"account\"?: \"alice\", \"channel_id\": \"0x...\", \"from\"?: 0}",
        result: "a subscription id; notifications {\"seq\": 0, \"event\": {\"Live\": {\"genesis_timestamp\": 1700000000}}}",
        errors: &["UNKNOWN_ACCOUNT", "UNKNOWN_CHANNEL"],
    },
];

/// The API's methods over `daemon`.
pub fn rpc_module(daemon: Arc<Daemon>) -> RpcModule<Daemon> {
    let mut m = RpcModule::from_arc(daemon);
    // Registration fails only on a duplicate name: a programming error caught by the tests.
    let ok = |r: Result<_, jsonrpsee::core::RegisterMethodError>| {
        if let Err(e) = r {
            tracing::error!("API method registration: {e}");
        }
    };

    ok(m.register_async_method("session_list", |_p, d, _| async move {
        let mut out = Vec::new();
        for s in d.sessions.values() {
            let listen = s.node.listen_addrs().await.map_err(node_error)?;
            out.push(json!({
                "account": s.account,
                "address": s.node.address(),
                "peer_id": s.node.peer_id().to_string(),
                "listen": listen.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            }));
        }
        Ok::<_, ErrorObjectOwned>(out)
    })
    .map(|_| ()));

    ok(m.register_async_method("machine_register", |p, d, _| async move {
        let p: RegisterParams = parse(&p)?;
        let artifact = match p.artifact {
            Value::String(s) => s,
            v => v.to_string(),
        };
        let abi = MachineAbi::from_artifact(&artifact).map_err(abi_error)?;
        if !crate::config::valid_account_name(&p.name) {
            return Err(error(
                codes::BAD_ARGUMENTS,
                "BadName",
                "a machine name is 1 to 32 of a-z, 0-9, - and _",
                json!({}),
            ));
        }
        let any = d
            .sessions
            .values()
            .next()
            .ok_or_else(|| unknown_account(None, &d))?;
        check_deployed(&any.node, &artifact, p.address)
            .await
            .map_err(|e| {
                error(
                    codes::CODE_MISMATCH,
                    "CodeMismatch",
                    e,
                    json!({ "address": p.address }),
                )
            })?;
        let machine = Machine {
            entry: MachineEntry {
                name: p.name.clone(),
                address: p.address,
                artifact,
            },
            abi,
        };
        d.machines
            .write()
            .await
            .put(machine)
            .map_err(|e| error(codes::NODE, "MachineBook", e.to_string(), json!({})))?;
        Ok(json!({ "name": p.name, "address": p.address }))
    })
    .map(|_| ()));

    ok(m.register_async_method("machine_list", |_p, d, _| async move {
        let book = d.machines.read().await;
        let out: Vec<Value> = book
            .all()
            .iter()
            .map(|m| json!({ "name": m.entry.name, "address": m.entry.address, "abi": m.abi.json_abi() }))
            .collect();
        Ok::<_, ErrorObjectOwned>(out)
    })
    .map(|_| ()));

    ok(m.register_async_method("proposal_make", |p, d, _| async move {
        let p: ProposeParams = parse(&p)?;
        let s = session(&d, p.account.as_deref())?;
        let machine = d
            .machines
            .read()
            .await
            .find(&p.machine)
            .cloned()
            .ok_or_else(|| unknown_machine(&p.machine))?;
        let f = machine.abi.function(&p.genesis.function).map_err(abi_error)?;
        let calldata = machine.abi.encode(f, &p.genesis.args).map_err(abi_error)?;
        let mut b = ProposalBuilder::new(machine.entry.address, p.participants, p.deposits);
        if let Some(t) = p.timing {
            b = b.timing(Timing {
                p2p_time: t.p2p,
                agreement_time: t.agreement,
                chain_fallback_time: t.fallback,
                challenge_time: t.challenge,
            });
        }
        if let Some(t) = p.token {
            b = b.token(t);
        }
        let salt = p.salt.unwrap_or_else(|| {
            let mut r = [0u8; 32];
            // a fresh salt makes each proposal a new channel; without randomness, a fixed one
            let _ = getrandom::fill(&mut r);
            B256::from(r)
        });
        b = b.salt(salt);
        let source = machine.source();
        let proposal = b
            .build_with_calldata(&s.node, &source, calldata)
            .await
            .map_err(node_error)?;
        let channel_id = proposal.channel_id;
        s.node.propose(proposal, source).await.map_err(node_error)?;
        Ok::<_, ErrorObjectOwned>(json!({ "channel_id": channel_id }))
    })
    .map(|_| ()));

    ok(m.register_async_method("proposal_list", |p, d, _| async move {
        let p: AccountParams = parse(&p)?;
        let s = session(&d, p.account.as_deref())?;
        let mut out = Vec::new();
        for (from, proposal) in s.node.invitations().await.map_err(node_error)? {
            let machine = machine_of(&d, proposal.state_machine).await.map(|m| m.entry.name);
            out.push(json!({ "channel_id": proposal.channel_id, "from": from, "machine": machine, "proposal": proposal }));
        }
        Ok::<_, ErrorObjectOwned>(out)
    }).map(|_| ()));

    ok(m.register_async_method("proposal_accept", |p, d, _| async move {
        let p: ChannelParams = parse(&p)?;
        let s = session(&d, p.account.as_deref())?;
        let invitations = s.node.invitations().await.map_err(node_error)?;
        let (_, proposal) = invitations
            .iter()
            .find(|(_, x)| x.channel_id == p.channel_id)
            .ok_or_else(|| node_error(NodeError::UnknownChannel(p.channel_id)))?;
        let machine = machine_of(&d, proposal.state_machine)
            .await
            .ok_or_else(|| unknown_machine(&proposal.state_machine.to_string()))?;
        s.node
            .accept(p.channel_id, machine.source())
            .await
            .map_err(node_error)?;
        Ok::<_, ErrorObjectOwned>(json!({ "channel_id": p.channel_id }))
    })
    .map(|_| ()));

    ok(m.register_async_method("proposal_decline", |p, d, _| async move {
        let p: DeclineParams = parse(&p)?;
        let s = session(&d, p.account.as_deref())?;
        s.node
            .decline(p.channel_id, p.reason.unwrap_or_default())
            .await
            .map_err(node_error)?;
        Ok::<_, ErrorObjectOwned>(Value::Null)
    })
    .map(|_| ()));

    ok(m.register_async_method("channel_list", |p, d, _| async move {
        let p: AccountParams = parse(&p)?;
        let s = session(&d, p.account.as_deref())?;
        let mut out = Vec::new();
        for id in s.node.channels().await.map_err(node_error)? {
            let info = s
                .node
                .channel(id)
                .await
                .map_err(node_error)?
                .info()
                .await
                .map_err(node_error)?;
            let machine = machine_of(&d, info.state_machine).await;
            out.push(channel_view(info, machine.as_ref()));
        }
        Ok::<_, ErrorObjectOwned>(out)
    })
    .map(|_| ()));

    ok(m.register_async_method("channel_info", |p, d, _| async move {
        let p: ChannelParams = parse(&p)?;
        let s = session(&d, p.account.as_deref())?;
        let info = s
            .node
            .channel(p.channel_id)
            .await
            .map_err(node_error)?
            .info()
            .await
            .map_err(node_error)?;
        let machine = machine_of(&d, info.state_machine).await;
        Ok::<_, ErrorObjectOwned>(channel_view(info, machine.as_ref()))
    })
    .map(|_| ()));

    ok(m.register_async_method("channel_call", |p, d, _| async move {
        let p: CallParams = parse(&p)?;
        let s = session(&d, p.account.as_deref())?;
        let data = match (p.function, p.calldata) {
            (Some(function), None) => {
                let (_, machine) = channel_machine(&d, s, p.channel_id).await?;
                let f = machine.abi.function(&function).map_err(abi_error)?;
                machine.abi.encode(f, &p.args).map_err(abi_error)?
            }
            (None, Some(data)) if p.args.is_empty() => data,
            _ => {
                return Err(error(
                    codes::BAD_ARGUMENTS,
                    "CallShape",
                    "give either \"function\" (with \"args\") or \"calldata\"",
                    json!({}),
                ));
            }
        };
        let channel = s.node.channel(p.channel_id).await.map_err(node_error)?;
        let digest = channel.submit(data).await.map_err(node_error)?;
        Ok(json!({ "digest": digest }))
    })
    .map(|_| ()));

    ok(m.register_async_method("channel_view", |p, d, _| async move {
        let p: CallParams = parse(&p)?;
        let s = session(&d, p.account.as_deref())?;
        let Some(function) = p.function else {
            return Err(error(
                codes::BAD_ARGUMENTS,
                "CallShape",
                "give \"function\" (with \"args\")",
                json!({}),
            ));
        };
        let (channel, machine) = channel_machine(&d, s, p.channel_id).await?;
        let f = machine.abi.function(&function).map_err(abi_error)?;
        let data = machine.abi.encode(f, &p.args).map_err(abi_error)?;
        let out = channel.view_raw(data).await.map_err(node_error)?;
        machine.abi.decode(f, &out).map_err(abi_error)
    })
    .map(|_| ()));

    ok(m.register_async_method("channel_exit", |p, d, _| async move {
        let p: ChannelParams = parse(&p)?;
        channel_of(&d, p.account.as_deref(), p.channel_id)
            .await?
            .exit()
            .await
            .map_err(node_error)?;
        Ok::<_, ErrorObjectOwned>(Value::Null)
    })
    .map(|_| ()));

    ok(m.register_async_method("channel_leave", |p, d, _| async move {
        let p: ChannelParams = parse(&p)?;
        channel_of(&d, p.account.as_deref(), p.channel_id)
            .await?
            .leave()
            .await
            .map_err(node_error)?;
        Ok::<_, ErrorObjectOwned>(Value::Null)
    })
    .map(|_| ()));

    ok(m.register_async_method("peer_add", |p, d, _| async move {
        let p: PeerAddParams = parse(&p)?;
        let s = session(&d, p.account.as_deref())?;
        let address: entente_node::Multiaddr = p.address.parse().map_err(|e| {
            error(
                codes::BAD_ARGUMENTS,
                "BadAddress",
                format!("{:?} is not a multiaddress: {e}", p.address),
                json!({}),
            )
        })?;
        let peer = s.node.add_peer(address).await.map_err(|e| match e {
            NodeError::Transport(t) => error(codes::BAD_ARGUMENTS, "BadAddress", t.to_string(), json!({})),
            other => node_error(other),
        })?;
        let remembered = if p.remember {
            d.remember_peer(&s.account, &p.address)
                .await
                .map_err(|e| error(codes::NODE, "Config", e.to_string(), json!({})))?
        } else {
            false
        };
        Ok::<_, ErrorObjectOwned>(json!({ "peer_id": peer.to_string(), "remembered": remembered }))
    })
    .map(|_| ()));

    ok(m.register_async_method("peer_list", |p, d, _| async move {
        let p: AccountParams = parse(&p)?;
        let s = session(&d, p.account.as_deref())?;
        let connected: Vec<Value> = s
            .node
            .peers()
            .await
            .map_err(node_error)?
            .into_iter()
            .map(|i| json!({ "peer_id": i.peer.to_string(), "address": i.address, "relayed": i.relayed }))
            .collect();
        Ok::<_, ErrorObjectOwned>(json!({ "book": d.peer_book(&s.account).await, "connected": connected }))
    })
    .map(|_| ()));

    ok(m.register_async_method("account_balance", |p, d, _| async move {
        let p: AccountParams = parse(&p)?;
        let s = session(&d, p.account.as_deref())?;
        let balance = s.node.balance().await.map_err(node_error)?;
        Ok::<_, ErrorObjectOwned>(json!({ "address": s.node.address(), "balance": balance }))
    })
    .map(|_| ()));

    ok(
        m.register_async_method("channel_allow_join", |p, d, _| async move {
            let p: AllowJoinParams = parse(&p)?;
            let c = channel_of(&d, p.account.as_deref(), p.channel_id).await?;
            c.allow_join(p.joiner).await.map_err(node_error)?;
            Ok::<_, ErrorObjectOwned>(Value::Null)
        })
        .map(|_| ()),
    );

    ok(
        m.register_async_method("channel_propose_join", |p, d, _| async move {
            let p: ProposeJoinParams = parse(&p)?;
            let c = channel_of(&d, p.account.as_deref(), p.channel_id).await?;
            c.propose_join(p.joiner, p.amount, p.data)
                .await
                .map_err(node_error)?;
            Ok::<_, ErrorObjectOwned>(Value::Null)
        })
        .map(|_| ()),
    );

    ok(
        m.register_async_method("channel_expect_join", |p, d, _| async move {
            let p: ExpectJoinParams = parse(&p)?;
            let s = session(&d, p.account.as_deref())?;
            let machine = d
                .machines
                .read()
                .await
                .find(&p.machine)
                .cloned()
                .ok_or_else(|| unknown_machine(&p.machine))?;
            s.node
                .expect_join(p.channel_id, p.sponsor, p.amount, machine.source())
                .await
                .map_err(node_error)?;
            Ok::<_, ErrorObjectOwned>(json!({ "channel_id": p.channel_id }))
        })
        .map(|_| ()),
    );

    ok(
        m.register_async_method("channel_withdrawal", |p, d, _| async move {
            let p: WithdrawParams = parse(&p)?;
            let c = channel_of(&d, p.account.as_deref(), p.channel_id).await?;
            let withdrawn = withdrawals(&c, p.wait.min(3_600)).await?;
            let info = c.info().await.map_err(node_error)?;
            Ok::<_, ErrorObjectOwned>(json!({
                "withdrawn": withdrawn,
                "phase": info.phase,
                "calls_outstanding": info.calls_outstanding,
            }))
        })
        .map(|_| ()),
    );

    ok(m.register_subscription(
        "node_subscribe",
        "node_event",
        "node_unsubscribe",
        |p, pending, d, _| async move {
            subscribe_node(p, pending, d).await;
        },
    )
    .map(|_| ()));

    ok(m.register_subscription(
        "channel_subscribe",
        "channel_event",
        "channel_unsubscribe",
        |p, pending, d, _| async move {
            subscribe_channel(p, pending, d).await;
        },
    )
    .map(|_| ()));

    m
}

/// The amounts withdrawn from channel `c` so far (read from its event log), waiting up to `wait`
/// seconds for the first one when there is none yet.
async fn withdrawals(c: &entente_node::Channel, wait: u64) -> Result<Vec<U256>, ErrorObjectOwned> {
    let mut stream = c.events_from(0).await.map_err(node_error)?;
    let mut out = Vec::new();
    while let Some(event) = stream.try_next().await.map_err(node_error)? {
        if let entente_node::ChannelEvent::Withdrawn { amount } = event {
            out.push(amount);
        }
    }
    if out.is_empty() && wait > 0 {
        let first = async {
            loop {
                match stream.recv().await {
                    Ok(entente_node::ChannelEvent::Withdrawn { amount }) => return Ok(Some(amount)),
                    Ok(_) => {}
                    Err(e) => return Err(node_error(e)),
                }
            }
        };
        if let Ok(got) = tokio::time::timeout(std::time::Duration::from_secs(wait), first).await {
            out.extend(got?);
        }
    }
    Ok(out)
}

async fn subscribe_node(p: Params<'static>, pending: PendingSubscriptionSink, d: Arc<Daemon>) {
    let p: AccountParams = match parse(&p) {
        Ok(p) => p,
        Err(e) => return pending.reject(e).await,
    };
    let s = match session(&d, p.account.as_deref()) {
        Ok(s) => s,
        Err(e) => return pending.reject(e).await,
    };
    let mut events = s.node.events();
    let Ok(sink) = pending.accept().await else { return };
    loop {
        tokio::select! {
            _ = sink.closed() => return,
            next = events.recv() => {
                let note = match next {
                    Ok(entente_node::NodeEvent::Proposal { from, proposal }) => {
                        json!({ "Proposal": { "from": from, "channel_id": proposal.channel_id } })
                    }
                    Ok(entente_node::NodeEvent::ChainUnavailable { error }) => json!({ "ChainUnavailable": { "error": error } }),
                    Ok(entente_node::NodeEvent::ChainRecovered) => json!("ChainRecovered"),
                    Ok(entente_node::NodeEvent::Channel { .. }) => continue,
                    // A slow reader missed live events: say so (the proposals are in proposal_list).
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => json!({ "Lagged": { "missed": n } }),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let Ok(raw) = serde_json::value::to_raw_value(&note) else { return };
                if sink.send(SubscriptionMessage::from(raw)).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn subscribe_channel(p: Params<'static>, pending: PendingSubscriptionSink, d: Arc<Daemon>) {
    let p: SubscribeParams = match parse(&p) {
        Ok(p) => p,
        Err(e) => return pending.reject(e).await,
    };
    let s = match session(&d, p.account.as_deref()) {
        Ok(s) => s,
        Err(e) => return pending.reject(e).await,
    };
    let channel = match s.node.channel(p.channel_id).await {
        Ok(c) => c,
        Err(e) => return pending.reject(node_error(e)).await,
    };
    let mut stream = match channel.events_from(p.from.unwrap_or(0)).await {
        Ok(st) => st,
        Err(e) => return pending.reject(node_error(e)).await,
    };
    let Ok(sink) = pending.accept().await else { return };
    loop {
        tokio::select! {
            _ = sink.closed() => return,
            next = stream.recv_numbered() => {
                let Ok((seq, event)) = next else { return };
                let Ok(raw) = serde_json::value::to_raw_value(&json!({ "seq": seq, "event": event })) else { return };
                if sink.send(SubscriptionMessage::from(raw)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The API reference (`docs/daemon.md`'s method section), rendered from [`METHODS`] and [`codes`].
pub fn reference_markdown() -> String {
    let mut out = String::new();
    out.push_str("## Methods\n\n");
    out.push_str("<!-- Generated from crates/daemon/src/api.rs (METHODS); `ENTENTE_BLESS=1 cargo test -p entente-daemon --lib reference` rewrites it. -->\n\n");
    for m in METHODS {
        out.push_str(&format!("### `{}`\n\n{}\n\n", m.name, m.summary));
        out.push_str(&format!("- params: `{}`\n", m.params));
        out.push_str(&format!("- result: `{}`\n", m.result));
        if m.errors.is_empty() {
            out.push_str("- errors: none beside JSON-RPC's own\n\n");
        } else {
            let list: Vec<String> = m.errors.iter().map(|e| format!("`{e}`")).collect();
            out.push_str(&format!("- errors: {}\n\n", list.join(", ")));
        }
    }
    out.push_str("## Error codes\n\n| code | name | meaning |\n|---|---|---|\n");
    for (code, name, meaning) in ERROR_TABLE {
        out.push_str(&format!("| {code} | `{name}` | {meaning} |\n"));
    }
    out
}

/// Every API error code, its name and meaning (the reference's table).
pub const ERROR_TABLE: &[(i32, &str, &str)] = &[
    (-32700, "PARSE_ERROR", "the request is not JSON"),
    (-32600, "INVALID_REQUEST", "not a JSON-RPC 2.0 request"),
    (-32601, "METHOD_NOT_FOUND", "no such method"),
    (
        -32602,
        "INVALID_PARAMS",
        "parameters missing, unknown or of the wrong JSON type",
    ),
    (
        codes::UNKNOWN_ACCOUNT,
        "UNKNOWN_ACCOUNT",
        "no session for that account (or several and none named)",
    ),
    (
        codes::UNKNOWN_CHANNEL,
        "UNKNOWN_CHANNEL",
        "no channel or proposal with that id",
    ),
    (
        codes::UNKNOWN_MACHINE,
        "UNKNOWN_MACHINE",
        "no registered machine of that name or address",
    ),
    (
        codes::UNKNOWN_FUNCTION,
        "UNKNOWN_FUNCTION",
        "the machine has no such function, or the name is ambiguous",
    ),
    (
        codes::BAD_ARGUMENTS,
        "BAD_ARGUMENTS",
        "arguments that do not fit the function's types",
    ),
    (
        codes::MOVE_REFUSED,
        "MOVE_REFUSED",
        "the channel refused the move (turn, rules, game over)",
    ),
    (codes::NOT_LIVE, "NOT_LIVE", "the channel is not live"),
    (
        codes::CHAIN,
        "CHAIN",
        "the chain could not be reached or refused a call",
    ),
    (
        codes::BAD_PROPOSAL,
        "BAD_PROPOSAL",
        "a proposal that cannot be made or accepted",
    ),
    (
        codes::CODE_MISMATCH,
        "CODE_MISMATCH",
        "the chain's code at the address is not the artifact's",
    ),
    (
        codes::REFUSED,
        "REFUSED",
        "the node refused the request for another reason",
    ),
    (
        codes::NODE,
        "NODE",
        "the node failed (data directory, network, machine runtime)",
    ),
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn daemon() -> Arc<Daemon> {
        let config = crate::config::DaemonConfig {
            chain: crate::config::ChainConfig {
                rpc_url: "http://127.0.0.1:1".into(),
                manager: None,
                confirmations: 0,
                poll_interval_ms: 250,
            },
            api: crate::config::ApiConfig::default(),
            accounts: Vec::new(),
            home: std::path::PathBuf::new(),
        };
        Arc::new(Daemon {
            config,
            sessions: Default::default(),
            machines: Default::default(),
            config_writes: Default::default(),
        })
    }

    #[test]
    fn every_method_is_in_the_reference_and_every_reference_entry_is_a_method() {
        let module = rpc_module(daemon());
        let mut served: Vec<&str> = module
            .method_names()
            .filter(|n| !n.ends_with("_unsubscribe"))
            .collect();
        served.sort_unstable();
        let mut documented: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
        documented.sort_unstable();
        assert_eq!(served, documented);
        for m in METHODS {
            for e in m.errors {
                assert!(
                    ERROR_TABLE.iter().any(|(_, name, _)| name == e),
                    "{}: unknown error {e}",
                    m.name
                );
            }
        }
    }

    #[test]
    fn the_reference_in_docs_is_the_generated_one() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/daemon.md");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let marker = "## Methods\n";
        let generated = reference_markdown();
        let head = text.split(marker).next().unwrap_or_default().to_string();
        if std::env::var_os("ENTENTE_BLESS").is_some() {
            std::fs::write(&path, format!("{head}{generated}")).unwrap();
            return;
        }
        let current = text.find(marker).map(|i| &text[i..]).unwrap_or_default();
        assert!(
            current == generated,
            "docs/daemon.md is out of date: run `ENTENTE_BLESS=1 cargo test -p entente-daemon --lib reference`"
        );
    }

    /// One HTTP/1.1 request over a fresh connection; the whole response as text.
    async fn http(addr: std::net::SocketAddr, head: String) -> String {
        tokio::task::spawn_blocking(move || {
            use std::io::{Read as _, Write as _};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(head.as_bytes()).unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn the_static_directory_is_served_without_the_token_and_confined_to_itself() {
        let root = tempfile::tempdir().unwrap();
        let web = root.path().join("web");
        std::fs::create_dir_all(web.join("assets")).unwrap();
        std::fs::write(web.join("index.html"), "<p>the page</p>").unwrap();
        std::fs::write(web.join("assets/app.js"), "let a = 1;").unwrap();
        std::fs::write(root.path().join("secret.txt"), "outside").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret.txt"), web.join("link.txt")).unwrap();
        let (addr, _handle) = crate::server::serve(
            daemon(),
            "127.0.0.1:0".parse().unwrap(),
            "secret",
            Some(web.clone()),
        )
        .await
        .unwrap();
        let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let index = http(addr, get("/")).await;
        assert!(index.starts_with("HTTP/1.1 200"), "{index}");
        assert!(index.contains("text/html"), "{index}");
        assert!(index.contains("frame-ancestors 'none'"), "{index}");
        assert!(index.ends_with("<p>the page</p>"), "{index}");
        let js = http(addr, get("/assets/app.js?v=1")).await;
        assert!(
            js.starts_with("HTTP/1.1 200") && js.contains("text/javascript"),
            "{js}"
        );
        for escape in [
            "/../secret.txt",
            "/assets/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/link.txt",
            "/nothing.html",
        ] {
            let r = http(addr, get(escape)).await;
            assert!(r.starts_with("HTTP/1.1 404"), "{escape}: {r}");
            assert!(!r.contains("outside"), "{escape}: {r}");
        }
        // the API itself still asks for the token
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"session_list"}"#;
        let post = |auth: &str| {
            format!(
                "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        assert!(http(addr, post("")).await.starts_with("HTTP/1.1 401"));
        let ok = http(addr, post("Authorization: Bearer secret\r\n")).await;
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.contains("\"result\":[]"),
            "{ok}"
        );
        let url = format!("ws://{addr}");
        assert!(crate::client::Client::connect(&url, "wrong").await.is_err());
        assert!(crate::client::Client::connect(&url, "secret").await.is_ok());
        // another name for the loopback address (DNS rebinding) is refused, files and API alike
        let rebound = |path: &str| {
            format!(
                "GET {path} HTTP/1.1\r\nHost: evil.example:{}\r\nConnection: close\r\n\r\n",
                addr.port()
            )
        };
        let r = http(addr, rebound("/")).await;
        assert!(r.starts_with("HTTP/1.1 403"), "{r}");
        assert!(!r.contains("the page"), "{r}");
        let localhost = format!(
            "GET / HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
            addr.port()
        );
        assert!(http(addr, localhost).await.starts_with("HTTP/1.1 200"));
    }

    #[test]
    fn a_static_directory_that_overlaps_the_home_or_that_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home");
        let web = root.path().join("web");
        for d in [&home, &web] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("index.html"), "page").unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert!(crate::server::check_static_dir(&web, &home).is_ok());
        let e = crate::server::check_static_dir(&home, &home).unwrap_err();
        assert!(e.contains("overlaps"), "{e}");
        let e = crate::server::check_static_dir(root.path(), &home).unwrap_err();
        assert!(e.contains("index.html") || e.contains("overlaps"), "{e}");
        std::fs::write(root.path().join("index.html"), "page").unwrap();
        let e = crate::server::check_static_dir(root.path(), &home).unwrap_err();
        assert!(e.contains("overlaps"), "{e}");
        std::fs::set_permissions(&web, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = crate::server::check_static_dir(&web, &home).unwrap_err();
        assert!(e.contains("others may write"), "{e}");
        let e = crate::server::check_static_dir(&root.path().join("none"), &home).unwrap_err();
        assert!(e.contains("none"), "{e}");
    }

    #[tokio::test]
    async fn a_request_without_the_token_is_refused_before_any_json_rpc() {
        let (addr, handle) = crate::server::serve(daemon(), "127.0.0.1:0".parse().unwrap(), "secret", None)
            .await
            .unwrap();
        let url = format!("ws://{addr}");
        assert!(crate::client::Client::connect(&url, "wrong").await.is_err());
        let c = crate::client::Client::connect(&url, "secret").await.unwrap();
        assert_eq!(c.call("session_list", json!({})).await.unwrap(), json!([]));
        let e = c.call("channel_list", json!({})).await.unwrap_err();
        assert!(
            matches!(
                e,
                crate::client::ClientError::Api {
                    code: codes::UNKNOWN_ACCOUNT,
                    ..
                }
            ),
            "{e}"
        );
        // a request over the size limit is refused whole, and the daemon goes on
        let big = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"machine_register\",\"params\":{{\"name\":\"x\",\"address\":\"0x0000000000000000000000000000000000000001\",\"artifact\":\"{}\"}}}}",
            "a".repeat(5 * 1024 * 1024)
        );
        let status = tokio::task::spawn_blocking(move || {
            use std::io::{Read as _, Write as _};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            let head = format!(
                "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAuthorization: Bearer secret\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                big.len()
            );
            s.write_all(head.as_bytes()).unwrap();
            let _ = s.write_all(big.as_bytes());
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out.lines().next().unwrap_or_default().to_string()
        })
        .await
        .unwrap();
        assert!(status.contains("413"), "{status}");
        assert_eq!(c.call("session_list", json!({})).await.unwrap(), json!([]));
        handle.stop().unwrap();
    }
}
