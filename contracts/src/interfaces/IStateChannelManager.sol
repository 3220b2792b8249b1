// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {
    Transaction,
    Intent,
    Exit,
    ChannelSpec,
    StateProof,
    DisputeKind,
    DisputeRecord,
    DoubleSignProof,
    JoinApproval,
    LeaveApproval,
    Channel
} from "../ChannelTypes.sol";
import {IStateChannelEvents} from "./IStateChannelEvents.sol";

/// @title IStateChannelManager
/// @notice The whole public ABI of the StateChannelManager, including the entry points it forwards to
/// its extension (`cancelFunding`, `reclaimDeposit`, `proveDoubleSign`, `proveFraud`, `requestExit`, `joinChannel`,
/// `leaveChannel`, `challenge`, `finalizeDispute`, `postIntent`, `forceIntent`, `postedIntent` and the approval
/// digests). Bind clients to this interface.
interface IStateChannelManager is IStateChannelEvents {
    // views
    function transactionDigest(Transaction calldata transaction) external view returns (bytes32);
    function joinApprovalDigest(JoinApproval calldata approval) external view returns (bytes32);
    function leaveApprovalDigest(LeaveApproval calldata approval) external view returns (bytes32);
    function domainSeparator() external view returns (bytes32);
    function computeChannelId(ChannelSpec calldata spec, bytes calldata genesisState)
        external
        view
        returns (bytes32);
    function getChannel(bytes32 channelId) external view returns (Channel memory);
    function getParticipants(bytes32 channelId) external view returns (address[] memory);
    function postedAt(bytes32 digest) external view returns (uint64);
    function machineInstance(bytes32 channelId) external view returns (address);
    function pendingBalance(address account, address token) external view returns (uint256);
    function isClaimed(bytes32 channelId, uint256 index) external view returns (bool);
    function postedIntent(bytes32 channelId, uint256 index)
        external
        view
        returns (bytes32 digest, uint64 dueAt, uint64 notAfter);
    function extension() external view returns (address);
    function verdicts() external view returns (address);
    function MAX_PARTICIPANTS() external view returns (uint256);
    function MIN_MACHINE_GAS() external view returns (uint256);
    function MACHINE_GAS_PER_PARTICIPANT() external view returns (uint256);

    // funding
    function open(ChannelSpec calldata spec, bytes calldata genesisState) external payable returns (bytes32);
    function deposit(bytes32 channelId, uint256 index) external payable;
    function cancelFunding(bytes32 channelId) external;
    function reclaimDeposit(bytes32 channelId, uint256 index) external;

    // data availability and disputes
    function postCalldata(
        Transaction calldata transaction,
        bytes calldata signature,
        StateProof calldata parent
    ) external;
    function checkpoint(bytes32 channelId, StateProof calldata proof) external;
    function postIntent(Intent calldata intent, bytes calldata signature) external;
    function forceIntent(
        bytes32 channelId,
        uint256 index,
        Intent calldata intent,
        bytes calldata signature,
        StateProof calldata parent
    ) external;
    function disputeTimeout(bytes32 channelId, StateProof calldata latest) external;
    function requestExit(bytes32 channelId, StateProof calldata latest) external;
    function proveDoubleSign(bytes32 channelId, StateProof calldata latest, DoubleSignProof calldata proof)
        external;
    function proveFraud(
        bytes32 channelId,
        DisputeKind kind,
        StateProof calldata prev,
        Transaction calldata t,
        bytes calldata sig
    ) external;
    function challenge(bytes32 channelId, DisputeRecord calldata d, StateProof calldata proof) external;
    function finalizeDispute(bytes32 channelId, DisputeRecord calldata d, bytes calldata state) external;

    // membership
    function joinChannel(JoinApproval calldata approval, bytes calldata state, bytes[] calldata signatures)
        external
        payable;
    function leaveChannel(LeaveApproval calldata approval, bytes calldata state, bytes[] calldata signatures)
        external;

    // settlement
    function close(bytes32 channelId, StateProof calldata proof) external;
    function withdraw(bytes32 channelId, Exit[] calldata exits, uint256 index) external;
    function withdrawTo(bytes32 channelId, Exit[] calldata exits, uint256 index, address recipient) external;
    function withdrawPending(address token) external;
    function withdrawPendingTo(address token, address recipient) external;
}
