/** The API's error codes (docs/daemon.md, "Error codes"), beside JSON-RPC's own. */
export const ErrorCode = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  UNKNOWN_ACCOUNT: 1001,
  UNKNOWN_CHANNEL: 1002,
  UNKNOWN_MACHINE: 1003,
  UNKNOWN_FUNCTION: 1004,
  BAD_ARGUMENTS: 1005,
  MOVE_REFUSED: 1006,
  NOT_LIVE: 1007,
  CHAIN: 1008,
  BAD_PROPOSAL: 1009,
  CODE_MISMATCH: 1010,
  REFUSED: 1011,
  NODE: 1012,
} as const;

export type ErrorCodeName = keyof typeof ErrorCode;

/** `data` of an API error: `kind` names the error (`UnknownChannel`, `BadArgument`, ...), details beside it. */
export interface EntenteErrorData {
  kind?: string;
  [detail: string]: unknown;
}

/** Any error this client raises. */
export class EntenteError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The daemon answered a request with a JSON-RPC error object. */
export class EntenteApiError extends EntenteError {
  /** The JSON-RPC error code: one of {@link ErrorCode}. */
  readonly code: number;
  /** The error's `data` (`{kind, ...details}` for the API's own errors; may be absent for JSON-RPC's). */
  readonly data: EntenteErrorData | undefined;
  /** The method that failed. */
  readonly method: string;

  constructor(method: string, code: number, message: string, data: unknown) {
    super(`${method}: ${message} (code ${code}${kindOf(data) ? `, ${kindOf(data)}` : ''})`);
    this.method = method;
    this.code = code;
    this.data = isObject(data) ? (data as EntenteErrorData) : undefined;
  }

  /** `data.kind`, the error's name (`UnknownChannel`, `MoveRefused`, ...), when the daemon gave one. */
  get kind(): string | undefined {
    return this.data?.kind;
  }

  /** The name of the code (`UNKNOWN_CHANNEL`, ...), when it is one of the API's. */
  get codeName(): ErrorCodeName | undefined {
    for (const [name, code] of Object.entries(ErrorCode)) if (code === this.code) return name as ErrorCodeName;
    return undefined;
  }
}

/**
 * The connection failed: the daemon could not be reached or refused the token, or it went away
 * before answering (the request may or may not have been carried out), or the client was closed.
 */
export class EntenteConnectionError extends EntenteError {}

/** No answer within the request timeout. */
export class EntenteTimeoutError extends EntenteError {}

function kindOf(data: unknown): string | undefined {
  return isObject(data) && typeof data['kind'] === 'string' ? data['kind'] : undefined;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
