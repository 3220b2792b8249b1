export {
  EntenteClient,
  amountString,
  jsonArgs,
  type AccountOption,
  type ChannelSubscription,
  type ConnectOptions,
  type ConnectionState,
  type NodeSubscribeOptions,
  type NodeSubscription,
  type ReconnectOptions,
  type SubscribeOptions,
  type TokenTransport,
  type WebSocketConstructor,
  type WebSocketLike,
} from './client.js';
export {
  EntenteApiError,
  EntenteConnectionError,
  EntenteError,
  EntenteTimeoutError,
  ErrorCode,
  type EntenteErrorData,
  type ErrorCodeName,
} from './errors.js';
export { TypedChannel, decodeResult, encodeArgs, signature, type ArgsOf, type MoveMutability, type ViewMutability } from './typed.js';
export * from './types.js';
export { ticTacToeAbi } from './abis/ticTacToe.js';
