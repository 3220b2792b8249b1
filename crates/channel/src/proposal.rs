//! Proposals as input: what this participant checks before a proposal is offered to its
//! application, and how many invitations it keeps.

use std::collections::BTreeMap;

use alloy_sol_types::SolValue;
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_types::{Address, B256, ChannelProposal, U256, keccak256};

use crate::onchain_spec;

/// The id the manager's `open` gives `proposal`'s channel, computed as `computeChannelId` does:
/// `keccak256(abi.encode(chainId, manager, spec, keccak256(genesisState)))`. A proposal whose
/// `channel_id` is not this one would have us deposit into a channel with other terms.
pub fn channel_id_of(proposal: &ChannelProposal) -> B256 {
    keccak256(
        (
            U256::from(proposal.chain_id),
            proposal.manager,
            onchain_spec(proposal),
            keccak256(&proposal.genesis_state),
        )
            .abi_encode_params(),
    )
}

/// Why a proposal is not offered to the application.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalRefusal {
    /// For another chain or manager than ours.
    #[error("for manager {manager} on chain {chain_id}, we use {our_manager} on chain {our_chain_id}")]
    WrongChain {
        /// The proposal's chain.
        chain_id: u64,
        /// The proposal's manager.
        manager: Address,
        /// Ours.
        our_chain_id: u64,
        /// Ours.
        our_manager: Address,
    },
    /// Fewer than two participants, more than the policy allows, or not one deposit each.
    #[error(
        "{participants} participants with {deposits} deposits (2 to {max} participants, one deposit each)"
    )]
    Participants {
        /// Participants listed.
        participants: usize,
        /// Deposits listed.
        deposits: usize,
        /// The policy's maximum.
        max: usize,
    },
    /// A participant is listed twice.
    #[error("a participant is listed twice")]
    Duplicate,
    /// Its channel id is not the one its terms give (`computeChannelId`).
    #[error("its channel id {claimed} is not the id of its terms ({computed})")]
    WrongId {
        /// The id it claims.
        claimed: B256,
        /// The id of its terms.
        computed: B256,
    },
    /// We are not among the participants.
    #[error("{0} is not a participant")]
    NotAParticipant(Address),
    /// The sender is not the proposer (its first participant, which opens the channel).
    #[error("sent by {from}, not by its proposer {proposer}")]
    NotFromProposer {
        /// Who sent it.
        from: Address,
        /// Its first participant.
        proposer: Address,
    },
    /// No state machine, or an empty genesis state.
    #[error("no state machine or no genesis state")]
    NoMachine,
    /// A deposit of zero (the manager refuses it) or above the policy's limit.
    #[error("deposit {amount} outside 1..={max}")]
    Deposit {
        /// The deposit.
        amount: U256,
        /// The policy's limit.
        max: U256,
    },
    /// A timing parameter outside the policy.
    #[error("timing outside the policy: {0}")]
    Timing(String),
    /// The genesis state does not load in the machine, or does not name the proposal's
    /// participants in order.
    #[error("the genesis state does not fit the machine: {0}")]
    Genesis(String),
    /// The genesis state pays out more or less than the deposits.
    #[error("the genesis state pays out {exits} but the deposits are {deposits}")]
    NotConserved {
        /// Sum of the genesis exits.
        exits: U256,
        /// Sum of the deposits.
        deposits: U256,
    },
    /// The code deployed at the proposal's machine address is not the machine's.
    #[error("the code deployed at {0} is not the state machine's")]
    DeployedCode(Address),
    /// The sender has too many invitations open with us.
    #[error("{0} has too many open invitations")]
    TooManyFromSender(Address),
    /// Too many invitations open in all.
    #[error("too many open invitations")]
    TooMany,
    /// No open invitation to this channel.
    #[error("no open invitation to channel {0}")]
    NoSuchInvitation(B256),
}

/// Checks a proposal we make ourselves (`me` its first participant) before it leaves: the policy
/// (as a peer would check it) and its genesis (it must name the participants and pay out exactly
/// the deposits, or every invitee refuses it).
pub fn check_own_proposal(
    policy: &ProposalPolicy,
    proposal: &ChannelProposal,
    me: Address,
    chain_id: u64,
    manager: Address,
    code: &MachineCode,
) -> Result<(), ProposalRefusal> {
    policy.check(proposal, me, me, chain_id, manager)?;
    check_genesis(code, proposal)
}

/// What an embedder accepts to be offered: limits on a proposal's shape and on the invitations
/// kept. Whom to accept stays the application's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalPolicy {
    /// Most participants in a channel.
    pub max_participants: usize,
    /// Largest deposit asked of anyone (wei or token units).
    pub max_deposit: U256,
    /// Shortest `p2pTime`, `agreementTime` and `chainFallbackTime` (seconds): a shorter window
    /// could remove us before we can answer.
    pub min_window: u64,
    /// Longest of any timing parameter and of the funding period (seconds): a longer one locks
    /// deposits for too long.
    pub max_window: u64,
    /// Invitations kept per sender.
    pub per_sender: usize,
    /// Invitations kept in all.
    pub total: usize,
    /// How long (seconds) an unanswered invitation is kept: a stranger's invitations cannot hold
    /// their places for ever, and a proposer that still waits sends its proposal again.
    pub invitation_ttl: u64,
}

impl Default for ProposalPolicy {
    fn default() -> Self {
        Self {
            max_participants: 64,
            max_deposit: U256::MAX,
            min_window: 1,
            max_window: 7 * 24 * 3600,
            per_sender: 4,
            total: 256,
            invitation_ttl: 3_600,
        }
    }
}

impl ProposalPolicy {
    /// Checks `proposal`, received from `from` by participant `me` of manager `manager` on chain
    /// `chain_id` (or made by `me` when `from == me`).
    pub fn check(
        &self,
        proposal: &ChannelProposal,
        from: Address,
        me: Address,
        chain_id: u64,
        manager: Address,
    ) -> Result<(), ProposalRefusal> {
        let p = proposal;
        if p.chain_id != chain_id || p.manager != manager {
            return Err(ProposalRefusal::WrongChain {
                chain_id: p.chain_id,
                manager: p.manager,
                our_chain_id: chain_id,
                our_manager: manager,
            });
        }
        let computed = channel_id_of(p);
        if computed != p.channel_id {
            return Err(ProposalRefusal::WrongId {
                claimed: p.channel_id,
                computed,
            });
        }
        let n = p.participants.len();
        if n < 2 || n > self.max_participants || n != p.deposits.len() {
            return Err(ProposalRefusal::Participants {
                participants: n,
                deposits: p.deposits.len(),
                max: self.max_participants,
            });
        }
        let distinct: std::collections::BTreeSet<&Address> = p.participants.iter().collect();
        if distinct.len() != n {
            return Err(ProposalRefusal::Duplicate);
        }
        if p.participant_index(&me).is_none() {
            return Err(ProposalRefusal::NotAParticipant(me));
        }
        let proposer = p.participants[0];
        if from != proposer {
            return Err(ProposalRefusal::NotFromProposer { from, proposer });
        }
        if p.state_machine == Address::ZERO || p.genesis_state.is_empty() {
            return Err(ProposalRefusal::NoMachine);
        }
        if let Some(amount) = p.deposits.iter().find(|d| d.is_zero() || **d > self.max_deposit) {
            return Err(ProposalRefusal::Deposit {
                amount: *amount,
                max: self.max_deposit,
            });
        }
        let t = &p.timing;
        for (name, value) in [
            ("p2pTime", t.p2p_time),
            ("agreementTime", t.agreement_time),
            ("chainFallbackTime", t.chain_fallback_time),
        ] {
            if value < self.min_window {
                return Err(ProposalRefusal::Timing(format!(
                    "{name} {value} s < {} s",
                    self.min_window
                )));
            }
        }
        for (name, value) in [
            ("p2pTime", t.p2p_time),
            ("agreementTime", t.agreement_time),
            ("chainFallbackTime", t.chain_fallback_time),
            ("challengeTime", t.challenge_time),
            ("fundingPeriod", p.funding_period),
        ] {
            if value > self.max_window {
                return Err(ProposalRefusal::Timing(format!(
                    "{name} {value} s > {} s",
                    self.max_window
                )));
            }
        }
        Ok(())
    }
}

/// Checks `proposal`'s genesis state with the machine's `code` (run locally), as the court checks
/// it when the channel opens (`_validateGenesis`: `participantsOf`, `exitsOf` and `isGameOverOf`
/// of the genesis state): it loads, names the proposal's participants in order, pays each of them
/// out exactly its deposit, and the game is not over yet.
pub fn check_genesis(code: &MachineCode, proposal: &ChannelProposal) -> Result<(), ProposalRefusal> {
    let genesis = |e: entente_evm_runtime::EvmError| ProposalRefusal::Genesis(e.to_string());
    let mut machine = MachineInstance::deploy(code, proposal.machine_gas_limit).map_err(genesis)?;
    let state = &proposal.genesis_state;
    machine.set_state(state).map_err(genesis)?;
    let participants = machine.participants_of(state).map_err(genesis)?;
    if participants != proposal.participants {
        return Err(ProposalRefusal::Genesis(format!(
            "it names {participants:?}, the proposal {:?}",
            proposal.participants
        )));
    }
    let exits = machine.exits_of(state).map_err(genesis)?;
    let sum = |amounts: &mut dyn Iterator<Item = U256>| amounts.fold(U256::ZERO, |s, a| s.saturating_add(a));
    let (paid, deposits) = (
        sum(&mut exits.iter().map(|e| e.amount)),
        sum(&mut proposal.deposits.iter().copied()),
    );
    if paid != deposits {
        return Err(ProposalRefusal::NotConserved {
            exits: paid,
            deposits,
        });
    }
    let each_own_deposit = exits.len() == proposal.participants.len()
        && exits
            .iter()
            .zip(proposal.participants.iter().zip(&proposal.deposits))
            .all(|(exit, (who, deposit))| exit.participant == *who && exit.amount == *deposit);
    if !each_own_deposit {
        let exits: Vec<(Address, U256)> = exits.iter().map(|e| (e.participant, e.amount)).collect();
        return Err(ProposalRefusal::Genesis(format!(
            "it pays out {exits:?}, not each participant its own deposit {:?}",
            proposal.deposits
        )));
    }
    if machine.is_game_over_of(state).map_err(genesis)? {
        return Err(ProposalRefusal::Genesis("the game is already over".into()));
    }
    Ok(())
}

/// Checks that `deployed` (the code at the proposal's machine address, as `eth_getCode` returns
/// it) is what the machine's `code` deploys: every peer then runs the code the chain runs.
pub fn check_deployed_code(
    code: &MachineCode,
    proposal: &ChannelProposal,
    deployed: &[u8],
) -> Result<(), ProposalRefusal> {
    check_machine_code(code, proposal.state_machine, proposal.machine_gas_limit, deployed)
}

/// Checks that `deployed`, the chain's code at `address`, is the runtime code of `code` (a
/// channel to join is checked this way before its ticket is awaited).
pub fn check_machine_code(
    code: &MachineCode,
    address: Address,
    gas_limit: u64,
    deployed: &[u8],
) -> Result<(), ProposalRefusal> {
    let machine =
        MachineInstance::deploy(code, gas_limit).map_err(|e| ProposalRefusal::Genesis(e.to_string()))?;
    if deployed.is_empty() || machine.runtime_code().as_ref() != deployed {
        return Err(ProposalRefusal::DeployedCode(address));
    }
    Ok(())
}

/// Proposals received and not answered yet, at most a few per sender, so a stranger cannot crowd
/// out the proposal a player waits for.
#[derive(Debug, Clone, Default)]
pub struct Invitations {
    policy: ProposalPolicy,
    /// Open invitations by channel id: sender, proposal, when it came (seconds).
    open: BTreeMap<B256, (Address, ChannelProposal, u64)>,
}

impl Invitations {
    /// Invitations kept under `policy`.
    pub fn new(policy: ProposalPolicy) -> Self {
        Self {
            policy,
            open: BTreeMap::new(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &ProposalPolicy {
        &self.policy
    }

    /// Offers `proposal` from `from` (already checked with [`ProposalPolicy::check`]) at time
    /// `now` (seconds): `Ok(true)` if it is new, `Ok(false)` if it was open already. Invitations
    /// older than the policy's `invitation_ttl` are forgotten first.
    pub fn offer(
        &mut self,
        from: Address,
        proposal: ChannelProposal,
        now: u64,
    ) -> Result<bool, ProposalRefusal> {
        self.expire(now);
        if self.open.contains_key(&proposal.channel_id) {
            return Ok(false);
        }
        if self.open.values().filter(|(f, _, _)| *f == from).count() >= self.policy.per_sender {
            return Err(ProposalRefusal::TooManyFromSender(from));
        }
        if self.open.len() >= self.policy.total {
            return Err(ProposalRefusal::TooMany);
        }
        self.open.insert(proposal.channel_id, (from, proposal, now));
        Ok(true)
    }

    /// A proposal `from` a peer, received by `me` at `now` (seconds): checked against the policy
    /// (for this chain and manager), then kept as an invitation. `Ok(true)` if it is new.
    pub fn receive(
        &mut self,
        from: Address,
        proposal: ChannelProposal,
        me: Address,
        chain_id: u64,
        manager: Address,
        now: u64,
    ) -> Result<bool, ProposalRefusal> {
        self.policy.check(&proposal, from, me, chain_id, manager)?;
        self.offer(from, proposal, now)
    }

    /// Takes the invitation to `channel_id` to accept it, if `code` is its machine (as the
    /// chain's `deployed` code at its machine address shows) and its genesis names its
    /// participants and pays out exactly the deposits; otherwise the invitation stays open.
    pub fn accept(
        &mut self,
        channel_id: &B256,
        code: &MachineCode,
        deployed: &[u8],
    ) -> Result<(Address, ChannelProposal), ProposalRefusal> {
        let (_, proposal, _) = self
            .open
            .get(channel_id)
            .ok_or(ProposalRefusal::NoSuchInvitation(*channel_id))?;
        check_deployed_code(code, proposal, deployed)?;
        check_genesis(code, proposal)?;
        self.take(channel_id)
            .ok_or(ProposalRefusal::NoSuchInvitation(*channel_id))
    }

    /// Forgets the invitations that came more than the policy's `invitation_ttl` before `now`
    /// (seconds).
    pub fn expire(&mut self, now: u64) {
        let ttl = self.policy.invitation_ttl;
        self.open.retain(|_, (_, _, at)| {
            if *at == 0 {
                // Came before the host knew the time: its clock starts now.
                *at = now;
            }
            now <= at.saturating_add(ttl)
        });
    }

    /// Takes the invitation to `channel_id` (to accept or decline it).
    pub fn take(&mut self, channel_id: &B256) -> Option<(Address, ChannelProposal)> {
        self.open.remove(channel_id).map(|(from, p, _)| (from, p))
    }

    /// Every open invitation, by channel id.
    pub fn list(&self) -> Vec<(Address, ChannelProposal)> {
        self.open
            .values()
            .map(|(from, p, _)| (*from, p.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use entente_types::{AgreementMode, Bytes, Timing};

    use super::*;

    fn proposal(id: u8, from: Address, me: Address) -> ChannelProposal {
        let mut p = ChannelProposal {
            channel_id: B256::ZERO,
            chain_id: 1,
            manager: Address::repeat_byte(9),
            participants: vec![from, me],
            deposits: vec![U256::from(1u64); 2],
            state_machine: Address::repeat_byte(7),
            token: Address::ZERO,
            timing: Timing::default(),
            funding_period: 600,
            machine_gas_limit: 1_000_000,
            salt: B256::ZERO,
            genesis_state: Bytes::from(vec![1u8]),
            agreement_mode: AgreementMode::default(),
        };
        p.salt = B256::repeat_byte(id);
        p.channel_id = channel_id_of(&p);
        p
    }

    /// A tic-tac-toe proposal between `x` and `o` with `deposit` each and `stake` in its genesis.
    fn tictactoe(x: Address, o: Address, deposit: u64, stake: u64) -> (MachineCode, ChannelProposal) {
        use alloy_sol_types::SolCall;
        let code = MachineCode::from_artifact_json(entente_contracts::artifacts::TIC_TAC_TOE).unwrap();
        let mut m = MachineInstance::deploy(&code, 5_000_000).unwrap();
        let call = entente_contracts::TicTacToe::initialStateCall {
            x,
            o,
            stake: U256::from(stake),
        };
        let raw = m.view(call.abi_encode().into()).unwrap();
        let genesis =
            <alloy_sol_types::sol_data::Bytes as alloy_sol_types::SolType>::abi_decode(&raw).unwrap();
        let mut p = proposal(1, x, o);
        p.deposits = vec![U256::from(deposit); 2];
        p.genesis_state = genesis;
        p.machine_gas_limit = 5_000_000;
        (code, p)
    }

    #[test]
    fn the_genesis_must_name_the_participants_and_pay_out_the_deposits() {
        let (x, o) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let (code, good) = tictactoe(x, o, 10, 10);
        assert_eq!(check_genesis(&code, &good), Ok(()));
        // Deposits of 10 each, but the genesis pays out 2 × 20.
        let (code, rich) = tictactoe(x, o, 10, 20);
        assert_eq!(
            check_genesis(&code, &rich),
            Err(ProposalRefusal::NotConserved {
                exits: U256::from(40u64),
                deposits: U256::from(20u64)
            })
        );
        // The genesis names other players.
        let (code, mut other) = tictactoe(x, o, 10, 10);
        other.participants = vec![o, x];
        assert!(matches!(
            check_genesis(&code, &other),
            Err(ProposalRefusal::Genesis(_))
        ));
        // The same total, but not each participant's own deposit: the court refuses to open it.
        let (code, mut uneven) = tictactoe(x, o, 10, 10);
        uneven.deposits = vec![U256::from(5u64), U256::from(15u64)];
        assert!(matches!(
            check_genesis(&code, &uneven),
            Err(ProposalRefusal::Genesis(reason)) if reason.contains("own deposit")
        ));
        // Not a state of this machine.
        let mut junk = good;
        junk.genesis_state = Bytes::from(vec![7u8; 5]);
        assert!(matches!(
            check_genesis(&code, &junk),
            Err(ProposalRefusal::Genesis(_))
        ));
    }

    #[test]
    fn the_deployed_code_must_be_the_machines() {
        let (x, o) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let (code, p) = tictactoe(x, o, 10, 10);
        let runtime = MachineInstance::deploy(&code, 5_000_000).unwrap().runtime_code();
        assert!(!runtime.is_empty());
        assert_eq!(check_deployed_code(&code, &p, &runtime), Ok(()));
        let counter =
            MachineCode::from_artifact_json(entente_contracts::artifacts::ROUND_ROBIN_COUNTER).unwrap();
        let other = MachineInstance::deploy(&counter, 5_000_000)
            .unwrap()
            .runtime_code();
        let refused = Err(ProposalRefusal::DeployedCode(p.state_machine));
        assert_eq!(check_deployed_code(&code, &p, &other), refused);
        assert_eq!(check_deployed_code(&code, &p, &[]), refused);
    }

    #[test]
    fn a_stranger_cannot_crowd_out_an_expected_proposal() {
        let me = Address::repeat_byte(1);
        let stranger = Address::repeat_byte(2);
        let friend = Address::repeat_byte(3);
        let mut inv = Invitations::default();
        for id in 0..10u8 {
            let p = proposal(id, stranger, me);
            let result = inv.offer(stranger, p, 100);
            if id < 4 {
                assert_eq!(result, Ok(true));
            } else {
                assert_eq!(result, Err(ProposalRefusal::TooManyFromSender(stranger)));
            }
        }
        assert_eq!(inv.offer(friend, proposal(100, friend, me), 100), Ok(true));
        assert_eq!(inv.list().len(), 5);
        // An hour later the stranger's invitations are gone: it may offer again, as may the
        // friend whose proposal comes again.
        inv.expire(100 + 3_601);
        assert!(inv.list().is_empty());
        assert_eq!(inv.offer(stranger, proposal(20, stranger, me), 3_701), Ok(true));
    }

    #[test]
    fn malformed_proposals_are_refused_with_their_reason() {
        let me = Address::repeat_byte(1);
        let from = Address::repeat_byte(2);
        let policy = ProposalPolicy::default();
        // Each altered proposal carries the id of its terms, so that the rule under test refuses it.
        let check = |p: &ChannelProposal, from| {
            let mut p = p.clone();
            p.channel_id = channel_id_of(&p);
            policy.check(&p, from, me, 1, Address::repeat_byte(9))
        };
        let good = proposal(1, from, me);
        assert_eq!(check(&good, from), Ok(()));
        // Terms that are not those of its id: the id of a channel with shorter windows.
        let mut sneaky = good.clone();
        sneaky.timing.p2p_time = 1;
        sneaky.channel_id = channel_id_of(&sneaky);
        sneaky.timing = good.timing;
        assert!(matches!(
            policy.check(&sneaky, from, me, 1, Address::repeat_byte(9)),
            Err(ProposalRefusal::WrongId { .. })
        ));
        let mut p = good.clone();
        p.state_machine = Address::ZERO;
        assert_eq!(check(&p, from), Err(ProposalRefusal::NoMachine));
        let mut p = good.clone();
        p.genesis_state = Bytes::new();
        assert_eq!(check(&p, from), Err(ProposalRefusal::NoMachine));
        let mut p = good.clone();
        p.deposits[0] = U256::ZERO;
        assert!(matches!(check(&p, from), Err(ProposalRefusal::Deposit { .. })));
        let mut p = good.clone();
        p.timing.p2p_time = 0;
        assert!(matches!(check(&p, from), Err(ProposalRefusal::Timing(_))));
        let mut p = good.clone();
        p.funding_period = u64::MAX;
        assert!(matches!(check(&p, from), Err(ProposalRefusal::Timing(_))));
        assert!(matches!(
            check(&good, me),
            Err(ProposalRefusal::NotFromProposer { .. })
        ));
        let mut p = good.clone();
        p.participants[1] = from;
        assert_eq!(check(&p, from), Err(ProposalRefusal::Duplicate));
        let mut p = good.clone();
        p.chain_id = 2;
        assert!(matches!(check(&p, from), Err(ProposalRefusal::WrongChain { .. })));
        let mut p = good;
        p.participants[1] = Address::repeat_byte(5);
        assert_eq!(check(&p, from), Err(ProposalRefusal::NotAParticipant(me)));
    }
}
