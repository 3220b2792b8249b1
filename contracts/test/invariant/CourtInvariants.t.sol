// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ChannelTestBase} from "../utils/ChannelTestBase.sol";
import {Test, Vm} from "../utils/Test.sol";
import {IStateChannelEvents} from "../../src/interfaces/IStateChannelEvents.sol";
import {IStateChannelManager} from "../../src/interfaces/IStateChannelManager.sol";
import {IStateMachine} from "../../src/interfaces/IStateMachine.sol";
import {RoundRobinCounter} from "../../src/machines/RoundRobinCounter.sol";
import {
    Transaction,
    StateProof,
    ProofKind,
    Exit,
    DisputeRecord,
    DisputeKind,
    DoubleSignProof,
    JoinApproval,
    LeaveApproval,
    Channel,
    ChannelStatus
} from "../../src/ChannelTypes.sol";

/// @notice One channel of N participants playing the RoundRobinCounter. Participant 0 is honest and
/// reacts after every step as the Rust DisputeHandler does (docs/security.md, O1-O6); participants
/// 1..N-1 collude with an outsider and are unrestricted: they sign anything with their keys, replay every
/// signature they have seen (the honest one's included), call every entry point of the manager, its
/// extension, the shared machine and the channel's clone with fuzzed arguments, and let time pass. The
/// handler keeps ghost accounting that the invariants compare with the chain.
contract CourtHandler is ChannelTestBase {
    /// A transaction of the honest participant's chain (its view of the current fork).
    struct Entry {
        Transaction t;
        bytes state;
        bytes issuerSig;
        bytes honestSig;
        bool honestSigned;
        bool nSigned;
    }

    /// A transaction with one signature (the issuer's, or the honest participant's for `honestPool`).
    struct Signed {
        Transaction t;
        bytes sig;
        bytes state;
    }

    uint64 internal constant TARGET = 1_000_000;

    uint256 public n;
    bytes32 public id;
    address public honest;
    address public outsider;
    uint256 public honestBalance0;

    // ------------------------------------------------------------------ the honest participant's view
    uint64 internal hFork;
    uint64 internal hGenesisHeight;
    uint64 internal hGenesisTs;
    bytes internal hGenesisState;
    uint64 internal hTip;
    /// It raised a dispute on this fork, or saw a conflicting post: it signs nothing more on the fork (O3).
    bool internal hStopped;
    mapping(uint64 => mapping(uint64 => Entry)) internal entries;
    /// A post conflicting with a transaction it holds, by the same writer: proof of a double sign.
    bool internal hasEvidence;
    DoubleSignProof internal evidence;
    /// The running dispute (from the last DisputeStarted / DisputeChallenged).
    bool internal hasCurrent;
    DisputeRecord internal current;
    Exit[] internal closedExits;
    /// Fuzzed by the adversary's actions: whether the colluders co-sign, the honest step size.
    bool internal cosign;
    uint64 internal honestStep = 1;
    bool public adversaryStopped;

    // ------------------------------------------------------------------ pools (what the adversary knows)
    mapping(bytes32 => bytes) internal stateByHash;
    bytes32[] internal stateHashes;
    Signed[] internal honestPool;
    Signed[] internal txPool;
    DisputeRecord[] internal records;
    mapping(bytes32 => bool) internal honestSignedState;
    bytes32[] internal otherIds;

    // ------------------------------------------------------------------ ghost chain view and counters
    uint64 internal ghostFork;
    uint64 internal ghostHeadHeight;
    bytes32 internal ghostHeadHash;
    uint64 internal lastFork;
    uint64 internal lastHeadHeight;
    /// The state the last post at a fork and height gave (what R2's cut compares against).
    mapping(uint64 fork => mapping(uint64 height => bytes32)) internal ghostPosted;

    uint256 public totalIn;
    uint256 public totalOut;
    uint256 public honestPendingOut;
    uint256 public honestValueHigh;

    // violations (each must stay 0)
    uint256 public honestRemoved;
    uint256 public headDecreased;
    uint256 public badPosts;
    uint256 public unsignedCheckpoints;
    uint256 public unknownHead;
    uint256 public headUntracked;
    uint256 public honestValueDropped;

    // coverage
    uint256 public posts;
    uint256 public honestPosts;
    uint256 public confirmations;
    uint256 public refusals;
    uint256 public honestMoves;
    uint256 public honestDisputes;
    uint256 public honestChallenges;
    uint256 public finalizations;
    uint256 public conflicts;
    uint256 public forks;
    uint256 public slashes;
    uint256 public removals;
    uint256 public closes;
    uint256 public disputesStarted;
    uint256 public advSuccesses;
    /// Successful adversary calls by kind: 0 post, 1..13 `advDispute` kinds, 14 raw.
    uint256[16] public advOk;
    uint256 internal advKind;
    uint256 public honestFailed;

    constructor(uint256 n_) {
        setUp();
        n = n_;
        honest = addrs[0];
        outsider = addrs[7];
        (bytes32 cid, bytes memory g) = _openRr(n_, TARGET);
        id = cid;
        Channel memory ch = m.getChannel(cid);
        _resetFork(ch.forkCnt, ch.genesisHeight, ch.timestamp, g);
        lastFork = ch.forkCnt;
        lastHeadHeight = ch.headHeight;
        totalIn = n_ * STAKE;
        honestBalance0 = honest.balance;
        honestValueHigh = STAKE;
        vm.recordLogs();
        _honestReacts();
    }

    // ================================================================== adversary actions

    /// (a) The colluder whose turn it is at the honest tip sends it a move (valid, or mutated); the honest
    /// participant validates it (O1) and confirms it. `cosign_` says whether the colluders co-sign.
    /// Up to three moves in a row (each answered by the honest participant); only the first is mutated.
    function advOffchainMove(uint256 step, uint256 mutate, uint256 tsOff, bool cosign_) external {
        _begin(cosign_, step);
        uint256 count = 1 + (mutate >> 8) % 3;
        for (uint256 i = 0; i < count; i++) {
            bytes memory s = _hStateAt(hTip);
            address w = rr.nextToWriteOf(s);
            if (hStopped || w == address(0) || w == honest) break;
            Transaction memory t = _advMove(s, w, step >> (8 * i), i == 0 ? mutate : 0, tsOff >> (8 * i));
            bytes memory sig = _sign(_keyOf(t.participant), m.transactionDigest(t));
            _poolTx(t, sig, "");
            _honestReceives(t, sig);
            _honestReacts();
        }
        _end();
    }

    /// A colluder's move on the honest tip `s` (writer `w`), valid or mutated by `mutate`.
    function _advMove(bytes memory s, address w, uint256 step, uint256 mutate, uint256 tsOff)
        internal
        returns (Transaction memory t)
    {
        uint256 kind = mutate % 10;
        uint64 lo = uint64(block.timestamp) - AGREE;
        if (lo < _hTsAt(hTip)) lo = _hTsAt(hTip);
        uint64 ts = lo + uint64(tsOff % (uint256(AGREE) * 2 + 1));
        if (ts > block.timestamp + AGREE) ts = uint64(block.timestamp) + AGREE;
        if (kind == 6) ts = uint64(block.timestamp) + AGREE + 1 + uint64(tsOff % 1000);
        if (kind == 7) ts = uint64(block.timestamp) - AGREE - 1 - uint64(tsOff % 1000);
        if (kind == 5) {
            // the wrong writer (another colluder, or the outsider)
            address other = _actor(mutate / 10 + 1);
            if (other == w) other = outsider;
            t = Transaction(
                id,
                hFork,
                hTip + 1,
                other,
                ts,
                keccak256(s),
                bytes32(0),
                abi.encodeCall(RoundRobinCounter.add, (1))
            );
            t.stateHash = keccak256(abi.encode(t.height));
        } else {
            (t,) = _rrAdd(id, hFork, hTip + 1, w, ts, s, 1 + uint64(step % 10));
            if (kind == 8) t.stateHash = keccak256(abi.encode(mutate));
            if (kind == 9) t.prevStateHash = keccak256(abi.encode(mutate));
        }
    }

    /// (b) A colluder (or the outsider) posts a transaction it signs with fuzzed fields on a fuzzed parent.
    function advPostAnything(uint256 parentChoice, uint256 txChoice, uint256 seed, uint256 tsOff, uint256 who)
        external
    {
        _begin(cosign, seed);
        StateProof memory parent = _pickProof(parentChoice, seed);
        uint64 baseHeight = _proofHeight(parent);
        (Transaction memory t, bytes memory sig) = _craftTx(txChoice, seed, tsOff, parent.state, baseHeight);
        _poolTx(t, sig, "");
        address from = _actor(who);
        vm.prank(from);
        bool ok;
        advKind = 0;
        try m.postCalldata(t, sig, parent) {
            ok = true;
        } catch {}
        _endAdv(ok);
    }

    /// (c) A colluder (or the outsider) calls one of the court's entry points with pool arguments.
    function advDispute(uint256 kind, uint256 a, uint256 b, uint256 c, uint256 who) external {
        _begin(cosign, c);
        address from = _actor(who);
        if ((who >> 8) % 20 == 0) {
            // the adversary acts first at the moment something expires (a writer deadline, a dispute)
            Channel memory ch = m.getChannel(id);
            uint256 moment = ch.status == ChannelStatus.Disputed && hasCurrent
                ? uint256(current.deadline) + 1
                : uint256(ch.headSince) + P2P + AGREE + FALLBACK + 1;
            if (moment > block.timestamp && moment < block.timestamp + 2 days) _warpTo(moment, true);
        }
        // the dispute entry points (0-6) twice as often as the rest
        uint256 k = kind % 20;
        if (k >= 13) k -= 13;
        advKind = 1 + k;
        bool ok;
        if (k == 0) {
            StateProof memory p = _pickProof(a, b);
            vm.prank(from);
            try m.disputeTimeout(id, p) {
                ok = true;
            } catch {}
        } else if (k == 1) {
            StateProof memory p = _pickProof(a, b);
            vm.prank(from);
            try m.requestExit(id, p) {
                ok = true;
            } catch {}
        } else if (k == 2) {
            StateProof memory p = _pickProof(a, b);
            (DisputeKind fk, Transaction memory t, bytes memory sig) = _craftFraud(p, b, c);
            vm.prank(from);
            try m.proveFraud(id, fk, p, t, sig) {
                ok = true;
            } catch {}
        } else if (k == 3) {
            StateProof memory p = _pickProof(a, b);
            DoubleSignProof memory d = _craftDoubleSign(c, b);
            vm.prank(from);
            try m.proveDoubleSign(id, p, d) {
                ok = true;
            } catch {}
        } else if (k == 4) {
            StateProof memory p = _pickProof(a, b);
            vm.prank(from);
            try m.checkpoint(id, p) {
                ok = true;
            } catch {}
        } else if (k == 5) {
            StateProof memory p = _pickProof(a, b);
            DisputeRecord memory d = _pickRecord(c);
            vm.prank(from);
            try m.challenge(id, d, p) {
                ok = true;
            } catch {}
        } else if (k == 6) {
            DisputeRecord memory d = _pickRecord(c);
            bytes memory s = a % 3 == 0 ? _poolState(b) : stateByHash[m.getChannel(id).headStateHash];
            vm.prank(from);
            try m.finalizeDispute(id, d, s) {
                ok = true;
            } catch {}
        } else if (k == 7) {
            StateProof memory p = _pickProof(a, b);
            vm.prank(from);
            try m.close(id, p) {
                ok = true;
            } catch {}
        } else if (k == 8) {
            ok = _advLeave(from, a, b, c);
        } else if (k == 9) {
            ok = _advJoin(from, a, b, c);
        } else if (k == 10) {
            ok = _advWithdraw(from, a, b);
        } else if (k == 11) {
            address to = _actor(b);
            vm.prank(from);
            if (a % 2 == 0) {
                try m.withdrawPending(address(0)) {
                    ok = true;
                } catch {}
            } else {
                try m.withdrawPendingTo(address(0), to) {
                    ok = true;
                } catch {}
            }
        } else {
            vm.prank(from);
            if (a % 3 == 0) {
                try m.deposit{value: STAKE}(id, b % 4) {
                    ok = true;
                } catch {}
            } else if (a % 3 == 1) {
                try m.cancelFunding(id) {
                    ok = true;
                } catch {}
            } else {
                try m.reclaimDeposit(id, b % 4) {
                    ok = true;
                } catch {}
            }
        }
        _endAdv(ok);
    }

    /// (d) Raw calldata to the manager, its extension, the shared machine or the channel's clone.
    function advRaw(uint256 target, uint256 sel, bytes calldata payload, uint256 who, uint256 value)
        external
    {
        _begin(cosign, sel);
        address to;
        uint256 t = target % 4;
        if (t == 0) to = address(manager);
        else if (t == 1) to = manager.extension();
        else if (t == 2) to = address(rr);
        else to = m.machineInstance(id);
        bytes memory data;
        uint256 s = sel % 26;
        if (s < 18) {
            data = bytes.concat(_managerSelector(s), payload);
        } else if (s == 18) {
            data = abi.encodeCall(IStateMachine.setState, (_hugeState(payload.length)));
        } else if (s == 19) {
            data = abi.encodeCall(IStateMachine.initialize, ());
        } else if (s == 20) {
            data = abi.encodeCall(IStateMachine.setState, (_poolState(value)));
        } else if (s == 21) {
            data = abi.encodeCall(IStateMachine.removeParticipant, (honest));
        } else if (s == 22) {
            data = abi.encodeCall(IStateMachine.slashParticipant, (honest));
        } else if (s == 23) {
            data = abi.encodeCall(IStateMachine.joinParticipant, (_actor(who), STAKE, payload));
        } else if (s == 24) {
            Transaction memory tx_ =
                txPool.length > 0 ? txPool[value % txPool.length].t : entries[hFork][hTip].t;
            data = abi.encodeCall(IStateMachine.stateTransition, (tx_));
        } else {
            data = abi.encodeCall(RoundRobinCounter.add, (uint64(value % 20)));
        }
        address from = _actor(who);
        uint256 v = value % 3 == 0 ? value % (2 * STAKE) : 0;
        vm.prank(from);
        advKind = 14;
        (bool ok,) = to.call{value: v}(data);
        _endAdv(ok);
    }

    /// (e) Time passes (up to 2 days); the honest participant is online at each of its deadlines. With
    /// `frontRun`, the adversary's next action comes before the honest reaction at the new time.
    function warp(uint256 dt, bool cosign_, uint256 step, bool frontRun) external {
        _begin(cosign_, step);
        // mostly within the protocol's windows, sometimes past a challenge period or days
        uint256 cls = dt % 16;
        uint256 max = cls < 12
            ? P2P + AGREE
            : cls < 14 ? P2P + AGREE + FALLBACK + 100 : cls == 14 ? CHALLENGE + 200 : 2 days;
        _warpTo(block.timestamp + bound(dt >> 4, 1, max), frontRun);
    }

    /// Moves time to `target`, waking the honest participant at each of its deadlines on the way.
    function _warpTo(uint256 target, bool frontRun) internal {
        // it has reacted to everything up to now (after a front-run, the adversary's move was the reaction)
        _honestReacts();
        for (uint256 i = 0; i < 16; i++) {
            uint256 w = _nextHonestDeadline();
            if (w == 0 || w >= target) break;
            vm.warp(w);
            _honestReacts();
        }
        vm.warp(target);
        if (frontRun) {
            _sync();
            _ghostEnd();
        } else {
            _end();
        }
    }

    /// The adversary stops; the honest participant alone brings the channel to `Closed` (G3) and collects.
    /// Returns whether it closed, the time it took and the number of wake-ups.
    function settle() external returns (bool closed, uint256 elapsed, uint256 steps) {
        adversaryStopped = true;
        cosign = false;
        uint256 start = block.timestamp;
        vm.recordLogs();
        _honestReacts();
        for (; steps < 64; steps++) {
            if (m.getChannel(id).status == ChannelStatus.Closed) break;
            uint256 w = _nextWake();
            if (w <= block.timestamp) w = block.timestamp + 1;
            vm.warp(w);
            _honestReacts();
        }
        _honestReacts();
        _ghostEnd();
        closed = m.getChannel(id).status == ChannelStatus.Closed;
        elapsed = block.timestamp - start;
    }

    // ================================================================== the honest participant

    function _begin(bool cosign_, uint256 step) internal {
        vm.recordLogs();
        cosign = cosign_;
        honestStep = 1 + uint64(step % 10);
    }

    /// After an adversary's call: follows its logs if it succeeded, drops them if it reverted (forge records
    /// the logs of reverted calls too).
    function _endAdv(bool ok) internal {
        if (ok) {
            advSuccesses++;
            advOk[advKind]++;
            _sync();
        } else {
            _drop();
        }
        _end();
    }

    function _drop() internal {
        vm.getRecordedLogs();
    }

    function _end() internal {
        _honestReacts();
        _ghostEnd();
    }

    function _honestReacts() internal {
        for (uint256 i = 0; i < 12; i++) {
            if (!_honestStep()) break;
        }
        _sync();
    }

    /// One reaction; returns whether it did something (then it looks again).
    function _honestStep() internal returns (bool) {
        _sync();
        Channel memory ch = m.getChannel(id);
        if (ch.status == ChannelStatus.Closed) return _honestCollect();
        if (ch.status != ChannelStatus.Open && ch.status != ChannelStatus.Disputed) return false;
        bool disputed = ch.status == ChannelStatus.Disputed;
        // A writer signed two transactions at one height: prove it and stop signing on the fork (O3).
        if (hasEvidence && !(disputed && ch.fraudDispute)) {
            hasEvidence = false;
            StateProof memory latest = _latestProof(ch, disputed);
            DoubleSignProof memory d = evidence;
            vm.prank(honest);
            try m.proveDoubleSign(id, latest, d) {
                hStopped = true;
                honestDisputes++;
                return true;
            } catch {
                honestFailed++;
                _drop();
            }
        }
        if (disputed && hasCurrent) {
            uint64 k = _highestNSigned();
            if (k > ch.headHeight && block.timestamp <= current.deadline) {
                StateProof memory p = _entryProof(k);
                DisputeRecord memory d = current;
                vm.prank(honest);
                try m.challenge(id, d, p) {
                    honestChallenges++;
                    return true;
                } catch {
                    honestFailed++;
                    _drop();
                }
            }
            if (block.timestamp > current.deadline) {
                DisputeRecord memory d = current;
                bytes memory s = stateByHash[ch.headStateHash];
                vm.prank(honest);
                try m.finalizeDispute(id, d, s) {
                    finalizations++;
                    return true;
                } catch {
                    honestFailed++;
                    _drop();
                }
            }
        }
        if (hStopped) return false;
        // Its turn at its tip: it writes at once (within p2pTime).
        if (rr.nextToWriteOf(_hStateAt(hTip)) == honest) {
            _honestMove();
            return true;
        }
        // A transaction it signed lacks N signatures at its confirmation deadline: bring the head to it (O2).
        if (!(disputed && ch.timeoutDispute) && _confirmationDue(ch)) return _bringHeadUp(ch, disputed);
        // The writer at its tip (a colluder) is late: bring the head to the tip first (O2), so that no
        // N-signed state lies above the head when it accuses (R5).
        if (
            !disputed && hTip > ch.headHeight
                && block.timestamp > uint256(_hTsAt(hTip)) + P2P + AGREE + FALLBACK
        ) return _bringHeadUp(ch, false);
        // The head is its tip and the head's writer (a colluder) missed its deadline: accuse it (R5).
        if (!disputed && hTip == ch.headHeight && keccak256(_hStateAt(hTip)) == ch.headStateHash) {
            bytes memory head = _hStateAt(hTip);
            address w = rr.nextToWriteOf(head);
            if (
                w != address(0) && w != honest
                    && block.timestamp > uint256(ch.headSince) + P2P + AGREE + FALLBACK
            ) {
                StateProof memory latest = _postedProof(entries[hFork][hTip].t, head);
                vm.prank(honest);
                try m.disputeTimeout(id, latest) {
                    hStopped = true;
                    honestDisputes++;
                    return true;
                } catch {
                    honestFailed++;
                    _drop();
                }
            }
        }
        return false;
    }

    /// The honest participant's move on its tip; the colluders co-sign it or not.
    function _honestMove() internal {
        bytes memory s = _hStateAt(hTip);
        uint64 ts = _hTsAt(hTip);
        if (ts < block.timestamp) ts = uint64(block.timestamp);
        (Transaction memory t, bytes memory next) = _rrAdd(id, hFork, hTip + 1, honest, ts, s, honestStep);
        bytes memory sig = _sign(keys[0], m.transactionDigest(t));
        _append(t, next, sig, sig, true, cosign && !adversaryStopped);
        honestMoves++;
    }

    /// Validates a colluder's move (O1: writer, parent, stamp, result) and confirms it.
    function _honestReceives(Transaction memory t, bytes memory sig) internal {
        bytes memory s = _hStateAt(hTip);
        bool valid = t.channelId == id && t.forkCnt == hFork && t.height == hTip + 1
            && t.prevStateHash == keccak256(s) && t.participant != honest
            && t.participant == rr.nextToWriteOf(s) && t.timestamp >= _hTsAt(hTip)
            && uint256(t.timestamp) + AGREE >= block.timestamp && t.timestamp <= block.timestamp + AGREE;
        bytes32 digest = m.transactionDigest(t);
        valid = valid && _recoverSig(digest, sig) == t.participant;
        bytes memory next;
        if (valid) {
            bool ok;
            (ok, next) = _apply(s, t);
            valid = ok && keccak256(next) == t.stateHash;
        }
        if (!valid) {
            refusals++;
            return;
        }
        _append(t, next, sig, _sign(keys[0], digest), true, cosign || n == 2);
        confirmations++;
    }

    /// Shows its highest N-signed state above the head (if any) and posts every transaction above it up to
    /// its tip, in order (O2).
    function _bringHeadUp(Channel memory ch, bool disputed) internal returns (bool) {
        uint64 k = _highestNSigned();
        StateProof memory parent;
        uint64 from = ch.headHeight;
        if (k > ch.headHeight && !disputed) {
            parent = _entryProof(k);
            from = k;
        } else {
            parent = _postedProof(entries[hFork][from].t, stateByHash[ch.headStateHash]);
        }
        if (from == hTip) {
            vm.prank(honest);
            try m.checkpoint(id, parent) {
                return true;
            } catch {
                honestFailed++;
                _drop();
                return false;
            }
        }
        for (uint64 h = from + 1; h <= hTip; h++) {
            Transaction memory t = entries[hFork][h].t;
            bytes memory sig = entries[hFork][h].issuerSig;
            vm.prank(honest);
            try m.postCalldata(t, sig, parent) {
                honestPosts++;
                _sync();
            } catch {
                honestFailed++;
                _drop();
                return false;
            }
            parent = _postedProof(t, entries[hFork][h].state);
        }
        return true;
    }

    /// Once the channel is closed: withdraws its exit and its pending credits.
    function _honestCollect() internal returns (bool acted) {
        for (uint256 i = 0; i < closedExits.length; i++) {
            if (closedExits[i].participant == honest && !m.isClaimed(id, i)) {
                Exit[] memory e = closedExits;
                vm.prank(honest);
                try m.withdraw(id, e, i) {
                    acted = true;
                    _sync();
                } catch {
                    honestFailed++;
                    _drop();
                }
            }
        }
        if (m.pendingBalance(honest, address(0)) > 0) {
            vm.prank(honest);
            try m.withdrawPending(address(0)) {
                acted = true;
                _sync();
            } catch {
                honestFailed++;
                _drop();
            }
        }
    }

    function _confirmationDue(Channel memory ch) internal view returns (bool) {
        for (uint64 h = ch.headHeight + 1; h <= hTip; h++) {
            Entry storage e = entries[hFork][h];
            if (e.honestSigned && !e.nSigned && block.timestamp >= uint256(_hTsAt(h - 1)) + P2P + AGREE) {
                return true;
            }
        }
        return false;
    }

    /// The earliest confirmation deadline still ahead (0: none).
    function _nextHonestDeadline() internal view returns (uint256 w) {
        if (hStopped) return 0;
        uint64 head = ghostHeadHeight;
        for (uint64 h = head + 1; h <= hTip; h++) {
            Entry storage e = entries[hFork][h];
            if (!e.honestSigned || e.nSigned) continue;
            uint256 d = uint256(_hTsAt(h - 1)) + P2P + AGREE;
            if (d > block.timestamp && (w == 0 || d < w)) w = d;
        }
    }

    /// When the honest participant next has something to do, with nobody else acting.
    function _nextWake() internal view returns (uint256 w) {
        w = _nextHonestDeadline();
        Channel memory ch = m.getChannel(id);
        if (ch.status == ChannelStatus.Disputed && hasCurrent) {
            uint256 d = uint256(current.deadline) + 1;
            if (w == 0 || d < w) w = d;
        }
        if (ch.status == ChannelStatus.Open && !hStopped) {
            uint256 since = hTip == ch.headHeight ? ch.headSince : _hTsAt(hTip);
            uint256 d = since + P2P + AGREE + FALLBACK + 1;
            if (w == 0 || d < w) w = d;
        }
    }

    // ================================================================== following the chain (O5)

    /// Reads the manager's logs since the last call and follows them.
    function _sync() internal {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; i++) {
            Vm.Log memory l = logs[i];
            if (l.emitter != address(manager) || l.topics.length == 0) continue;
            bytes32 t0 = l.topics[0];
            if (t0 == IStateChannelEvents.Withdrawn.selector) {
                totalOut += abi.decode(l.data, (uint256));
            } else if (t0 == IStateChannelEvents.PendingWithdrawn.selector) {
                uint256 a = abi.decode(l.data, (uint256));
                totalOut += a;
                if (address(uint160(uint256(l.topics[1]))) == honest) honestPendingOut += a;
            } else if (
                t0 == IStateChannelEvents.Deposited.selector
                    || t0 == IStateChannelEvents.ParticipantJoined.selector
            ) {
                totalIn += abi.decode(l.data, (uint256));
            } else if (t0 == IStateChannelEvents.ChannelOpened.selector && l.topics[1] != id) {
                otherIds.push(l.topics[1]);
            }
            if (l.topics.length < 2 || l.topics[1] != id) continue;
            if (t0 == IStateChannelEvents.CalldataPosted.selector) {
                (Transaction memory t, bytes memory sig) = abi.decode(l.data, (Transaction, bytes));
                _onPosted(t, sig);
            } else if (t0 == IStateChannelEvents.Checkpointed.selector) {
                (uint64 f, uint64 h, bytes32 sh) = abi.decode(l.data, (uint64, uint64, bytes32));
                if (!honestSignedState[sh]) unsignedCheckpoints++;
                // R2's one way down: an N-signed state cuts a posted branch that holds another state at
                // its height (a writer equivocated)
                bytes32 posted = ghostPosted[f][h];
                if (f == lastFork && h < lastHeadHeight && posted != bytes32(0) && posted != sh) {
                    lastHeadHeight = h;
                }
                ghostHeadHeight = h;
                ghostHeadHash = sh;
            } else if (
                t0 == IStateChannelEvents.DisputeStarted.selector
                    || t0 == IStateChannelEvents.DisputeChallenged.selector
            ) {
                (DisputeRecord memory d, bytes memory s) = abi.decode(l.data, (DisputeRecord, bytes));
                if (t0 == IStateChannelEvents.DisputeStarted.selector) disputesStarted++;
                current = d;
                hasCurrent = true;
                if (records.length < 64) records.push(d);
                if (s.length > 0) _learn(s);
            } else if (t0 == IStateChannelEvents.ParticipantRemoved.selector) {
                bool slashed = abi.decode(l.data, (bool));
                if (address(uint160(uint256(l.topics[2]))) == honest) honestRemoved++;
                if (slashed) slashes++;
                else removals++;
            } else if (t0 == IStateChannelEvents.SetState.selector) {
                (uint64 f, uint64 gh, uint64 gts, bytes memory s,) =
                    abi.decode(l.data, (uint64, uint64, uint64, bytes, address[]));
                forks++;
                _resetFork(f, gh, gts, s);
            } else if (t0 == IStateChannelEvents.ChannelClosed.selector) {
                (,, Exit[] memory e) = abi.decode(l.data, (uint64, uint64, Exit[]));
                delete closedExits;
                for (uint256 j = 0; j < e.length; j++) {
                    closedExits.push(e[j]);
                }
                hasCurrent = false;
                closes++;
            }
        }
        _checkHead();
    }

    /// A post: it must link to the head the chain had (R3) and be a valid move; the honest participant
    /// adopts it, or finds it conflicts with a transaction it holds (a double sign by its writer).
    function _onPosted(Transaction memory t, bytes memory sig) internal {
        posts++;
        ghostPosted[t.forkCnt][t.height] = t.stateHash;
        _poolTx(t, sig, "");
        if (t.forkCnt != ghostFork || t.height != ghostHeadHeight + 1 || t.prevStateHash != ghostHeadHash) {
            badPosts++;
        }
        (bool ok, bytes memory next) = _apply(stateByHash[ghostHeadHash], t);
        ok = ok && keccak256(next) == t.stateHash;
        if (ok) _learn(next);
        else badPosts++;
        ghostHeadHeight = t.height;
        ghostHeadHash = t.stateHash;
        if (t.forkCnt != hFork) return;
        if (t.height <= hTip) {
            Entry storage e = entries[hFork][t.height];
            if (m.transactionDigest(t) != m.transactionDigest(e.t)) {
                if (!hStopped) conflicts++;
                hStopped = true;
                if (e.t.participant == t.participant && e.issuerSig.length > 0) {
                    evidence = DoubleSignProof(e.t, e.issuerSig, t, sig);
                    hasEvidence = true;
                }
            }
        } else if (!hStopped && ok && t.height == hTip + 1 && t.prevStateHash == keccak256(_hStateAt(hTip))) {
            _append(t, next, sig, "", false, false);
        }
    }

    /// R2 (the head never goes down within a fork but by cutting a posted branch that conflicts with an
    /// N-signed state) and the head is a state the honest side can rebuild.
    function _checkHead() internal {
        Channel memory ch = m.getChannel(id);
        if (ch.forkCnt == lastFork && ch.headHeight < lastHeadHeight) headDecreased++;
        lastFork = ch.forkCnt;
        lastHeadHeight = ch.headHeight;
        if (ch.status == ChannelStatus.Open || ch.status == ChannelStatus.Disputed) {
            if (ch.headHeight != ghostHeadHeight || ch.headStateHash != ghostHeadHash) headUntracked++;
            if (stateByHash[ch.headStateHash].length == 0) unknownHead++;
            ghostHeadHeight = ch.headHeight;
            ghostHeadHash = ch.headStateHash;
        }
    }

    /// The honest participant's value in the channel must never go down (G1).
    function _ghostEnd() internal {
        uint256 v = honestValue();
        if (v < honestValueHigh) honestValueDropped++;
        else honestValueHigh = v;
    }

    function _resetFork(uint64 f, uint64 gh, uint64 gts, bytes memory s) internal {
        hFork = f;
        hGenesisHeight = gh;
        hGenesisTs = gts;
        hGenesisState = s;
        hTip = gh;
        hStopped = false;
        hasEvidence = false;
        hasCurrent = false;
        ghostFork = f;
        ghostHeadHeight = gh;
        ghostHeadHash = keccak256(s);
        _learn(s);
    }

    function _append(
        Transaction memory t,
        bytes memory state,
        bytes memory issuerSig,
        bytes memory honestSig,
        bool honestSigned,
        bool nSigned
    ) internal {
        hTip = t.height;
        Entry storage e = entries[hFork][t.height];
        e.t = t;
        e.state = state;
        e.issuerSig = issuerSig;
        e.honestSig = honestSig;
        e.honestSigned = honestSigned;
        e.nSigned = nSigned;
        _learn(state);
        if (honestSigned) {
            honestSignedState[t.stateHash] = true;
            honestPool.push(Signed(t, honestSig, state));
        }
    }

    function _hStateAt(uint64 h) internal view returns (bytes memory) {
        return h == hGenesisHeight ? hGenesisState : entries[hFork][h].state;
    }

    function _hTsAt(uint64 h) internal view returns (uint64) {
        return h == hGenesisHeight ? hGenesisTs : entries[hFork][h].t.timestamp;
    }

    function _highestNSigned() internal view returns (uint64) {
        for (uint64 h = hTip; h > hGenesisHeight; h--) {
            if (entries[hFork][h].nSigned) return h;
        }
        return 0;
    }

    /// The N-signed proof of the honest chain's entry at `h`.
    function _entryProof(uint64 h) internal view returns (StateProof memory) {
        Entry storage e = entries[hFork][h];
        return _nSigned(e.t, e.state, e.honestSig);
    }

    /// `latest` for a dispute the honest participant raises: its highest N-signed state if above the head,
    /// else the head.
    function _latestProof(Channel memory ch, bool disputed) internal view returns (StateProof memory) {
        uint64 k = _highestNSigned();
        if (k > ch.headHeight && !disputed) return _entryProof(k);
        return _postedProof(entries[hFork][ch.headHeight].t, stateByHash[ch.headStateHash]);
    }

    /// Signatures of the current participants in order; the honest participant's is `honestSig`.
    function _nSigned(Transaction memory t, bytes memory state, bytes memory honestSig)
        internal
        view
        returns (StateProof memory p)
    {
        p.kind = ProofKind.Signed;
        p.transaction = t;
        p.state = state;
        bytes32 digest = m.transactionDigest(t);
        address[] memory ps = m.getParticipants(id);
        p.signatures = new bytes[](ps.length);
        for (uint256 i = 0; i < ps.length; i++) {
            p.signatures[i] = ps[i] == honest ? honestSig : _sign(_keyOf(ps[i]), digest);
        }
    }

    /// Runs `t` on `state` in the handler's own scratch machine.
    function _apply(bytes memory state, Transaction memory t) internal returns (bool, bytes memory) {
        try rrScratch.setState(state) {}
        catch {
            return (false, "");
        }
        try rrScratch.stateTransition(t) {}
        catch {
            return (false, "");
        }
        return (true, rrScratch.getState());
    }

    // ================================================================== the adversary's material

    /// A colluder, or the outsider.
    function _actor(uint256 seed) internal view returns (address) {
        uint256 i = seed % n;
        return i == 0 ? outsider : addrs[i];
    }

    function _learn(bytes memory s) internal {
        bytes32 h = keccak256(s);
        if (stateByHash[h].length == 0 && s.length > 0) {
            stateByHash[h] = s;
            stateHashes.push(h);
        }
    }

    function _poolTx(Transaction memory t, bytes memory sig, bytes memory state) internal {
        if (txPool.length < 256) txPool.push(Signed(t, sig, state));
    }

    function _poolState(uint256 seed) internal view returns (bytes memory) {
        return stateByHash[stateHashes[seed % stateHashes.length]];
    }

    function _headState() internal view returns (bytes memory) {
        return stateByHash[m.getChannel(id).headStateHash];
    }

    /// A state proof of one of many kinds: right or wrong, current or stale, with any signatures known.
    function _pickProof(uint256 choice, uint256 seed) internal view returns (StateProof memory p) {
        uint256 c = choice % 12;
        if (c >= 9) return _postedProof(p.transaction, _headState());
        if (c == 0) return _genesisProof(hGenesisState);
        if (c == 1) return _postedProof(p.transaction, _headState());
        if (c == 2) return _postedProof(p.transaction, _poolState(seed));
        if (c == 3) return _genesisProof(_poolState(seed));
        if (c == 4 && hTip > hGenesisHeight) {
            // an entry of the honest chain, N-signed with the honest signature (if it signed it)
            Entry storage e = entries[hFork][hGenesisHeight + 1 + uint64(seed % (hTip - hGenesisHeight))];
            if (e.honestSigned) return _nSigned(e.t, e.state, e.honestSig);
        }
        if ((c == 4 || c == 5) && honestPool.length > 0) {
            Signed storage s = honestPool[seed % honestPool.length];
            return _nSigned(s.t, s.state, s.sig);
        }
        if (c == 6 && honestPool.length > 0) {
            Signed storage s = honestPool[seed % honestPool.length];
            p = _nSigned(s.t, s.state, s.sig);
            p.state = _poolState(seed >> 8);
            return p;
        }
        if (c == 7 && txPool.length > 0) {
            // a colluder's transaction with colluder signatures in every slot (the honest one's forged)
            Signed storage s = txPool[seed % txPool.length];
            p = _nSigned(s.t, s.state.length > 0 ? s.state : _poolState(seed >> 8), "");
            bytes32 digest = m.transactionDigest(s.t);
            for (uint256 i = 0; i < p.signatures.length; i++) {
                if (p.signatures[i].length == 0) p.signatures[i] = _sign(keys[1 + i % 6], digest);
            }
            return p;
        }
        if (c == 8 && honestPool.length > 0) {
            // an honest transaction signed by the colluders only (wrong count)
            Signed storage s = honestPool[seed % honestPool.length];
            p = _nSigned(s.t, s.state, s.sig);
            if (p.signatures.length > 1) {
                bytes[] memory sigs = new bytes[](p.signatures.length - 1);
                for (uint256 i = 0; i < sigs.length; i++) {
                    sigs[i] = p.signatures[i + 1];
                }
                p.signatures = sigs;
            }
            return p;
        }
        return _postedProof(p.transaction, _headState());
    }

    function hStateHeadMatches() internal view returns (bool) {
        return ghostHeadHeight >= hGenesisHeight && keccak256(_hStateAt(ghostHeadHeight)) == ghostHeadHash;
    }

    /// The height a proof claims (the head's for a head or pool state).
    function _proofHeight(StateProof memory p) internal view returns (uint64) {
        if (p.kind == ProofKind.Signed) return p.transaction.height;
        if (p.kind == ProofKind.Genesis && keccak256(p.state) == keccak256(hGenesisState)) {
            return hGenesisHeight;
        }
        return ghostHeadHeight;
    }

    /// A transaction a colluder signs (or a replayed one) following `base` at `baseHeight`.
    function _craftTx(uint256 choice, uint256 seed, uint256 tsOff, bytes memory base, uint64 baseHeight)
        internal
        returns (Transaction memory t, bytes memory sig)
    {
        uint256 c = choice % 10;
        if (c == 9 && hTip > ghostHeadHeight && hStateHeadMatches()) {
            // the honest chain's next transaction above the head, with its issuer's signature
            Entry storage e = entries[hFork][ghostHeadHeight + 1];
            return (e.t, e.issuerSig);
        }
        if (c == 6 && honestPool.length > 0) {
            Signed storage s = honestPool[seed % honestPool.length];
            return (s.t, s.sig);
        }
        if (c == 7 && txPool.length > 0) {
            Signed storage s = txPool[seed % txPool.length];
            return (s.t, s.sig);
        }
        Channel memory ch = m.getChannel(id);
        address w;
        try rr.nextToWriteOf(base) returns (address w_) {
            w = w_;
        } catch {}
        if (w == address(0) || w == honest || c == 5) w = _actor(seed >> 16);
        uint64 step = 1 + uint64(seed % 10);
        // a stamp between the head's and the latest the chain accepts; sometimes outside
        uint256 latest = block.timestamp + AGREE;
        uint256 lo = ch.headTimestamp;
        uint256 ts = lo <= latest ? lo + tsOff % (latest - lo + 1) : latest;
        if ((tsOff >> 32) % 8 == 0) ts = latest + 1 + (tsOff >> 40) % 100;
        if ((tsOff >> 32) % 8 == 1 && ts > 0) ts = lo > 0 ? lo - 1 : 0;
        t = Transaction(
            id,
            ch.forkCnt,
            baseHeight + 1,
            w,
            uint64(ts),
            keccak256(base),
            bytes32(0),
            abi.encodeCall(RoundRobinCounter.add, (step))
        );
        (bool ok, bytes memory next) = _apply(base, t);
        if (ok) t.stateHash = keccak256(next);
        if (c == 2) {
            // the writer's move with a state that pays the writer from the honest deposit
            bytes memory bad = _payMe(base, w, step);
            if (bad.length > 0) {
                t.stateHash = keccak256(bad);
                _learn(bad);
            }
        } else if (c == 3) {
            t.height = baseHeight + 2 + uint64(seed % 5);
        } else if (c == 4) {
            t.prevStateHash = keccak256(abi.encode(seed));
        } else if (c == 8) {
            t.stateHash = keccak256(abi.encode(seed, tsOff));
        }
        if (ok && c != 2 && c != 8) _learn(next);
        sig = _sign(_keyOf(t.participant), m.transactionDigest(t));
    }

    /// A fraud claim on `prev`: half of the time a transaction with the flaw the claimed kind names (a
    /// colluder's real fraud, or an attempt to frame the honest participant with its own transactions).
    function _craftFraud(StateProof memory prev, uint256 seed, uint256 c)
        internal
        returns (DisputeKind fk, Transaction memory t, bytes memory sig)
    {
        uint256 txc = c >> 8;
        if (c % 2 == 0) {
            uint256 pick = (c >> 1) % 3;
            fk = pick == 0
                ? DisputeKind.InvalidTransition
                : pick == 1 ? DisputeKind.WrongParent : DisputeKind.TimestampOutOfOrder;
            // keep the replays of honest transactions (6, 9) and the pool (7); else the matching flaw
            uint256 r = txc % 10;
            if (r != 6 && r != 7 && r != 9) {
                txc = pick == 0 ? ((txc >> 4) % 2 == 0 ? 2 : 8) : pick == 1 ? 4 : 0;
            }
        } else {
            fk = DisputeKind(c % 10);
        }
        (t, sig) = _craftTx(txc, seed, c >> 16, prev.state, _proofHeight(prev));
        if (fk == DisputeKind.TimestampOutOfOrder && txc % 10 == 0) {
            uint64 pts = prev.kind == ProofKind.Signed
                ? prev.transaction.timestamp
                : prev.kind == ProofKind.Genesis ? hGenesisTs : m.getChannel(id).headTimestamp;
            if (pts > 0) t.timestamp = pts - 1;
            sig = _sign(_keyOf(t.participant), m.transactionDigest(t));
        }
    }

    /// `base` after `step` with half of the honest balance moved to `w`.
    function _payMe(bytes memory base, address w, uint64 step) internal view returns (bytes memory) {
        try rr.decode(base) returns (RoundRobinCounter.State memory st) {
            uint256 hi = st.participants.length;
            uint256 wi = hi;
            for (uint256 i = 0; i < st.participants.length; i++) {
                if (st.participants[i] == honest) hi = i;
                if (st.participants[i] == w) wi = i;
            }
            if (hi == st.participants.length || wi == st.participants.length || st.participants.length == 0) {
                return "";
            }
            uint256 amount = st.balances[hi] / 2;
            st.balances[hi] -= amount;
            st.balances[wi] += amount;
            st.counter += step;
            st.next = uint64((st.next + 1) % st.participants.length);
            return abi.encode(st);
        } catch {
            return "";
        }
    }

    /// Two transactions at one height: a colluder's real double sign, or attempts to frame the honest one.
    function _craftDoubleSign(uint256 c, uint256 seed) internal view returns (DoubleSignProof memory d) {
        uint256 k = c % 5;
        if (k == 0 || honestPool.length == 0) {
            address cheat = _actor(seed);
            uint256 key = _keyOf(cheat);
            d.a = Transaction(
                id, hFork, hTip + 1, cheat, uint64(block.timestamp), bytes32(0), bytes32(seed), ""
            );
            d.b = _copy(d.a);
            d.b.stateHash = bytes32(seed ^ 1);
            d.sigA = _sign(key, m.transactionDigest(d.a));
            d.sigB = _sign(key, m.transactionDigest(d.b));
            return d;
        }
        Signed storage x = honestPool[seed % honestPool.length];
        Signed storage y = honestPool[(seed >> 8) % honestPool.length];
        d.a = x.t;
        d.sigA = x.sig;
        if (k == 1) {
            // two honest signatures (at different heights or forks, as it never double-signs)
            d.b = y.t;
            d.sigB = y.sig;
        } else if (k == 2) {
            // an honest transaction altered, with another honest signature replayed
            d.b = _copy(x.t);
            d.b.stateHash = keccak256(abi.encode(seed));
            d.sigB = y.sig;
        } else if (k == 3) {
            // the same height as the honest one, with a colluder's signature
            d.b = _copy(x.t);
            d.b.timestamp ^= 1;
            d.sigB = _sign(keys[1], m.transactionDigest(d.b));
        } else {
            // an honest transaction and a posted/crafted one at the same height
            if (txPool.length > 0) {
                Signed storage z = txPool[seed % txPool.length];
                d.b = z.t;
                d.sigB = z.sig;
            } else {
                d.b = y.t;
                d.sigB = x.sig;
            }
        }
    }

    /// A dispute record seen on chain (the current one, an old one), maybe altered.
    function _pickRecord(uint256 c) internal view returns (DisputeRecord memory d) {
        if (hasCurrent && c % 3 != 0) d = current;
        else if (records.length > 0) d = records[(c >> 2) % records.length];
        uint256 mut = (c >> 8) % 7;
        if (mut == 3) d.target = honest;
        else if (mut == 4) d.deadline = uint64(block.timestamp);
        else if (mut == 5) d.slash = !d.slash;
        else if (mut == 6) d.height ^= 1;
    }

    /// A leave approval signed by the colluders; the honest slot holds a replayed honest signature or a
    /// colluder's.
    function _advLeave(address from, uint256 a, uint256 b, uint256 c) internal returns (bool ok) {
        Channel memory ch = m.getChannel(id);
        LeaveApproval memory ap = LeaveApproval(
            id,
            ch.forkCnt,
            ch.headHeight + uint64(a % 3),
            a % 3 == 0 ? ch.headStateHash : keccak256(_poolState(b)),
            a % 5 == 0 ? honest : _actor(b),
            uint64(block.timestamp + 1000)
        );
        bytes memory state = a % 3 == 0 ? _headState() : _poolState(b);
        bytes[] memory sigs = _approvalSigs(m.leaveApprovalDigest(ap), c);
        vm.prank(from);
        try m.leaveChannel(ap, state, sigs) {
            ok = true;
        } catch {}
    }

    function _advJoin(address from, uint256 a, uint256 b, uint256 c) internal returns (bool ok) {
        Channel memory ch = m.getChannel(id);
        JoinApproval memory ap = JoinApproval(
            id, ch.forkCnt, ch.headHeight, ch.headStateHash, from, STAKE, "", uint64(block.timestamp + 1000)
        );
        bytes memory state = a % 2 == 0 ? _headState() : _poolState(b);
        bytes[] memory sigs = _approvalSigs(m.joinApprovalDigest(ap), c);
        vm.prank(from);
        try m.joinChannel{value: STAKE}(ap, state, sigs) {
            ok = true;
        } catch {}
    }

    function _approvalSigs(bytes32 digest, uint256 c) internal view returns (bytes[] memory sigs) {
        address[] memory ps = m.getParticipants(id);
        sigs = new bytes[](ps.length);
        for (uint256 i = 0; i < ps.length; i++) {
            if (ps[i] != honest) {
                sigs[i] = _sign(_keyOf(ps[i]), digest);
            } else if (c % 2 == 0 && honestPool.length > 0) {
                sigs[i] = honestPool[c % honestPool.length].sig;
            } else {
                sigs[i] = _sign(keys[1], digest);
            }
        }
    }

    function _advWithdraw(address from, uint256 a, uint256 b) internal returns (bool ok) {
        Exit[] memory e = closedExits;
        if (a % 4 == 3 || e.length == 0) {
            // forged exits
            e = new Exit[](2);
            e[0] = Exit(from, STAKE * n);
            e[1] = Exit(honest, 0);
        }
        uint256 idx = b % e.length;
        vm.prank(from);
        if (a % 2 == 0) {
            try m.withdraw(id, e, idx) {
                ok = true;
            } catch {}
        } else {
            try m.withdrawTo(id, e, idx, _actor(b >> 8)) {
                ok = true;
            } catch {}
        }
    }

    function _managerSelector(uint256 s) internal pure returns (bytes4) {
        bytes4[18] memory sels = [
            IStateChannelManager.postCalldata.selector,
            IStateChannelManager.checkpoint.selector,
            IStateChannelManager.disputeTimeout.selector,
            IStateChannelManager.requestExit.selector,
            IStateChannelManager.proveDoubleSign.selector,
            IStateChannelManager.proveFraud.selector,
            IStateChannelManager.challenge.selector,
            IStateChannelManager.finalizeDispute.selector,
            IStateChannelManager.joinChannel.selector,
            IStateChannelManager.leaveChannel.selector,
            IStateChannelManager.close.selector,
            IStateChannelManager.withdraw.selector,
            IStateChannelManager.withdrawPending.selector,
            IStateChannelManager.deposit.selector,
            IStateChannelManager.open.selector,
            IStateChannelManager.postIntent.selector,
            IStateChannelManager.forceIntent.selector,
            bytes4(0xdeadbeef)
        ];
        return sels[s];
    }

    /// A decodable state with many participants (to exhaust the clone's gas or storage).
    function _hugeState(uint256 seed) internal view returns (bytes memory) {
        uint256 k = 200 + seed % 800;
        address[] memory ps = new address[](k);
        uint256[] memory bs = new uint256[](k);
        for (uint256 i = 0; i < k; i++) {
            ps[i] = address(uint160(i + 1));
            bs[i] = i;
        }
        ps[0] = honest;
        return abi.encode(RoundRobinCounter.State(ps, bs, 0, TARGET, 0));
    }

    function _recoverSig(bytes32 digest, bytes memory sig) internal pure returns (address) {
        if (sig.length != 65) return address(0);
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(sig, 32))
            s := mload(add(sig, 64))
            v := byte(0, mload(add(sig, 96)))
        }
        return ecrecover(digest, v, r, s);
    }

    // ================================================================== views for the invariants

    /// What the honest participant has or can take: its pending credit, what it withdrew from it, and its
    /// exit (in the closing exits once Closed, else in the head state).
    function honestValue() public view returns (uint256 v) {
        v = m.pendingBalance(honest, address(0)) + honestPendingOut;
        Channel memory ch = m.getChannel(id);
        Exit[] memory e;
        if (ch.status == ChannelStatus.Closed) {
            e = closedExits;
        } else {
            bytes memory s = stateByHash[ch.headStateHash];
            if (s.length == 0) return 0;
            e = rr.exitsOf(s);
        }
        for (uint256 i = 0; i < e.length; i++) {
            if (e[i].participant == honest) v += e[i].amount;
        }
    }

    /// What the manager owes: every channel's locked total and every known account's pending credit.
    function owed() public view returns (uint256 o) {
        o = m.getChannel(id).locked;
        for (uint256 i = 0; i < otherIds.length; i++) {
            o += m.getChannel(otherIds[i]).locked;
        }
        for (uint256 i = 0; i < addrs.length; i++) {
            o += m.pendingBalance(addrs[i], address(0));
        }
        o += m.pendingBalance(address(this), address(0));
    }

    /// A summary of what happened (for debugging and reports).
    function stats() external view returns (string memory s) {
        s = string.concat("posts ", vm.toString(posts), " honestPosts ", vm.toString(honestPosts));
        s = string.concat(
            s, " confirmations ", vm.toString(confirmations), " refusals ", vm.toString(refusals)
        );
        s = string.concat(
            s, " honestMoves ", vm.toString(honestMoves), " honestDisputes ", vm.toString(honestDisputes)
        );
        s = string.concat(
            s, " challenges ", vm.toString(honestChallenges), " finalizations ", vm.toString(finalizations)
        );
        s = string.concat(s, " conflicts ", vm.toString(conflicts), " forks ", vm.toString(forks));
        s = string.concat(s, " removals ", vm.toString(removals), " slashes ", vm.toString(slashes));
        s = string.concat(s, " disputes ", vm.toString(disputesStarted), " closes ", vm.toString(closes));
        s = string.concat(
            s, " advSuccesses ", vm.toString(advSuccesses), " honestFailed ", vm.toString(honestFailed)
        );
        for (uint256 i = 0; i < 15; i++) {
            s = string.concat(s, " adv", vm.toString(i), " ", vm.toString(advOk[i]));
        }
    }

    function managerAddress() external view returns (address) {
        return address(manager);
    }

    function honestIsParticipant() external view returns (bool) {
        address[] memory ps = m.getParticipants(id);
        for (uint256 i = 0; i < ps.length; i++) {
            if (ps[i] == honest) return true;
        }
        return false;
    }

    function status() external view returns (ChannelStatus) {
        return m.getChannel(id).status;
    }
}

/// @notice G1, G2, G5 and R1-R3 after every call of an unrestricted adversary; G3 (with G4) at the end of
/// every run: the adversary stops and the honest participant alone settles the channel and is paid.
abstract contract CourtInvariantsBase is Test {
    CourtHandler internal handler;
    IStateChannelManager internal m;

    uint256 internal constant STAKE = 1 ether;
    uint256 internal constant P2P = 30;
    uint256 internal constant AGREE = 10;
    uint256 internal constant FALLBACK = 60;
    uint256 internal constant CHALLENGE = 3600;

    function _n() internal pure virtual returns (uint256);

    function setUp() public {
        handler = new CourtHandler(_n());
        m = IStateChannelManager(handler.managerAddress());
        targetContract(address(handler));
        bytes4[] memory sels = new bytes4[](5);
        sels[0] = CourtHandler.advOffchainMove.selector;
        sels[1] = CourtHandler.advPostAnything.selector;
        sels[2] = CourtHandler.advDispute.selector;
        sels[3] = CourtHandler.advRaw.selector;
        sels[4] = CourtHandler.warp.selector;
        targetSelector(FuzzSelector(address(handler), sels));
    }

    /// Every check after every call (one invariant: forge runs a separate campaign per invariant function).
    function invariant_court() public view {
        checkG5Conservation();
        checkG2HonestNeverRemoved();
        checkG1Entitlement();
        checkR2HeadNeverDecreases();
        checkR1R3HeadIsProvable();
    }

    /// G5: the manager holds what it owes; deposits = paid + credited + locked.
    function checkG5Conservation() public view {
        uint256 owed = handler.owed();
        vm.assertGe(address(m).balance, owed, "G5: manager holds less than it owes");
        vm.assertEq(handler.totalIn(), handler.totalOut() + owed, "G5: deposits != paid + credited + locked");
    }

    /// G2: the honest participant is never removed or slashed, and stays a participant until Closed.
    function checkG2HonestNeverRemoved() public view {
        vm.assertEq(handler.honestRemoved(), 0, "G2: honest participant removed");
        if (handler.status() != ChannelStatus.Closed) {
            vm.assertTrue(handler.honestIsParticipant(), "G2: honest participant not a participant");
        }
    }

    /// G1: the honest participant's value (pending + withdrawn + exit) is at least its deposit and never
    /// goes down (moves do not change balances; slashes only add to it).
    function checkG1Entitlement() public view {
        vm.assertGe(handler.honestValue(), STAKE, "G1: honest value below its deposit");
        vm.assertEq(handler.honestValueDropped(), 0, "G1: honest value went down");
    }

    /// R2: the head never goes down within a fork, but to cut a posted branch that conflicts with an
    /// N-signed state.
    function checkR2HeadNeverDecreases() public view {
        vm.assertEq(handler.headDecreased(), 0, "R2: head height decreased");
    }

    /// R1, R3: every post links to the head and is a valid move; every checkpoint is a state the honest
    /// participant signed; the head is always a state the honest side can rebuild from the logs (O5).
    function checkR1R3HeadIsProvable() public view {
        vm.assertEq(handler.badPosts(), 0, "R3: unlinked or invalid post accepted");
        vm.assertEq(handler.unsignedCheckpoints(), 0, "R1: head moved to a state honest never signed");
        vm.assertEq(handler.unknownHead(), 0, "O5: head state unknown to the honest side");
        vm.assertEq(handler.headUntracked(), 0, "O5: head moved without an event");
    }

    /// G3 (and G4): once the adversary stops, the honest participant alone closes the channel within a
    /// bounded time and is paid at least its deposit.
    function afterInvariant() public {
        _settleAndCheck();
    }

    function _settleAndCheck() internal {
        (bool closed, uint256 elapsed, uint256 steps) = handler.settle();
        vm.assertTrue(closed, "G3: channel not closed by the honest participant alone");
        uint256 n = _n();
        vm.assertLe(
            elapsed, (n + 1) * (2 * (P2P + AGREE + FALLBACK) + CHALLENGE + 2), "G3: settlement too slow"
        );
        vm.assertLe(steps, 8 * n + 4);
        address h = handler.honest();
        vm.assertEq(m.pendingBalance(h, address(0)), 0);
        vm.assertGe(h.balance, handler.honestBalance0() + STAKE, "G1: honest withdrew less than its deposit");
        vm.assertGe(h.balance - handler.honestBalance0(), handler.honestValueHigh(), "G1: honest paid less");
        invariant_court();
    }

    /// A fixed walk through the actions (each really happens), then settlement by the honest participant.
    function test_settlesWhenAdversaryStops() public {
        handler.advOffchainMove(3, 0, 5, false); // a colluder moves, the honest participant confirms
        handler.advPostAnything(9, 9, 7, 3, 1); // a colluder posts the honest chain's next transaction
        handler.warp((59 << 4) | 12, false, 2, false); // confirmation deadlines pass: the honest side posts
        handler.advOffchainMove(4, 1, 5, true); // co-signed this time
        handler.advOffchainMove(4, 8, 5, true); // a wrong state: refused
        handler.advDispute(1, 9, 0, 0, 1); // a colluder forces its exit at the head
        handler.warp(((CHALLENGE + 10) << 4) | 14, false, 1, true); // the challenge period ends
        handler.advRaw(3, 16, hex"01", 1, 0); // a huge state into the clone (refused)
        handler.advRaw(3, 17, "", 1, 0); // initialize the clone (refused)
        handler.advRaw(0, 0, hex"0102", 1, 0); // junk to the manager
        handler.warp(((1 days) << 4) | 15, true, 1, false);
        vm.assertGe(handler.confirmations(), 1, "confirmations");
        vm.assertGe(handler.refusals(), 1, "refusals");
        vm.assertGe(handler.posts(), 1, "posts");
        vm.assertGe(handler.honestPosts(), 1, "honestPosts");
        vm.assertGe(handler.disputesStarted(), 1, "disputesStarted");
        vm.assertGe(handler.finalizations(), 1, "finalizations");
        vm.assertGe(handler.removals() + handler.slashes(), 1, "removals");
        invariant_court();
        _settleAndCheck();
        vm.assertEq(handler.closes(), 1);
    }
}

/// forge-config: default.invariant.runs = 256
/// forge-config: default.invariant.depth = 64
/// forge-config: long.invariant.runs = 10000
/// forge-config: long.invariant.depth = 64
contract CourtInvariantsN2Test is CourtInvariantsBase {
    function _n() internal pure override returns (uint256) {
        return 2;
    }
}

/// forge-config: default.invariant.runs = 256
/// forge-config: default.invariant.depth = 64
/// forge-config: long.invariant.runs = 10000
/// forge-config: long.invariant.depth = 64
contract CourtInvariantsN3Test is CourtInvariantsBase {
    function _n() internal pure override returns (uint256) {
        return 3;
    }
}

/// forge-config: default.invariant.runs = 256
/// forge-config: default.invariant.depth = 64
/// forge-config: long.invariant.runs = 10000
/// forge-config: long.invariant.depth = 64
contract CourtInvariantsN4Test is CourtInvariantsBase {
    function _n() internal pure override returns (uint256) {
        return 4;
    }
}

