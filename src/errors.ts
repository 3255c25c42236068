// mcrelay's operational errors, on undici's model: one class per kind, each with
// a stable `code` that logs carry as a field ("code":"MCRELAY_BACKEND_TIMEOUT")
// and that a program embedding mcrelay can test. Codes are the contract: a class
// is only a way to make one, and its identity does not survive crossing a thread
// boundary (a structured clone drops it), where the code, read by codeOf, can be
// sent along. A message says what happened in words and may change; a code does
// not. The replies clients get are memcached's wire errors (protocol/wire.ts),
// never these.

export const Code = {
  /** the command line or the configuration file cannot be used */
  USAGE: 'MCRELAY_USAGE',
  /** a listener could not be set up (a unix socket path, an address taken, reusePort refused) */
  LISTEN_FAILED: 'MCRELAY_LISTEN_FAILED',
  /** a backend server refused or failed a new connection */
  CONNECT_FAILED: 'MCRELAY_CONNECT_FAILED',
  /** a backend server accepted, said it is at its -c limit, and closed */
  BACKEND_CONNECTION_LIMIT: 'MCRELAY_BACKEND_CONNECTION_LIMIT',
  /** a backend server closed or reset an open connection */
  BACKEND_CLOSED: 'MCRELAY_BACKEND_CLOSED',
  /** a backend request or probe had no reply within the timeout */
  BACKEND_TIMEOUT: 'MCRELAY_BACKEND_TIMEOUT',
  /** a backend server sent what is not a memcached reply */
  BACKEND_UNPARSEABLE: 'MCRELAY_BACKEND_UNPARSEABLE',
  /** a backend server sent a reply no request asked for */
  BACKEND_UNEXPECTED_REPLY: 'MCRELAY_BACKEND_UNEXPECTED_REPLY',
  /** a backend server refused mcrelay's credentials (backend_auth_file) */
  BACKEND_AUTH: 'MCRELAY_BACKEND_AUTH',
  /** the pipe that hands accepted sockets from the main thread to a worker could not be set up (io/handoff.ts) */
  HANDOFF_FAILED: 'MCRELAY_HANDOFF_FAILED',
  /** --io fast needs Node internals this Node lacks or refuses (io/internals.ts) */
  IO_INTERNALS: 'MCRELAY_IO_INTERNALS',
} as const;

export type ErrorCode = (typeof Code)[keyof typeof Code];

export abstract class McrelayError extends Error {
  abstract readonly code: ErrorCode;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The class of one kind: its code is fixed, its name is the class's. */
function kind<C extends ErrorCode>(code: C): abstract new (message: string, options?: ErrorOptions) => McrelayError & { readonly code: C } {
  abstract class Kind extends McrelayError {
    readonly code: C = code;
  }
  return Kind;
}

// One class per code (see Code for what each means). A socket error that
// caused one is its `cause`, with its own code (ECONNREFUSED...).
export class UsageError extends kind(Code.USAGE) {}
export class ListenError extends kind(Code.LISTEN_FAILED) {}
export class ConnectError extends kind(Code.CONNECT_FAILED) {}
export class BackendConnectionLimitError extends kind(Code.BACKEND_CONNECTION_LIMIT) {}
export class BackendClosedError extends kind(Code.BACKEND_CLOSED) {}
export class BackendTimeoutError extends kind(Code.BACKEND_TIMEOUT) {}
export class BackendUnparseableError extends kind(Code.BACKEND_UNPARSEABLE) {}
export class BackendUnexpectedReplyError extends kind(Code.BACKEND_UNEXPECTED_REPLY) {}
export class BackendAuthError extends kind(Code.BACKEND_AUTH) {}
export class HandoffError extends kind(Code.HANDOFF_FAILED) {}
export class IoInternalsError extends kind(Code.IO_INTERNALS) {}

/**
 * An error's code for a log line: mcrelay's, or a system error's (ECONNREFUSED,
 * EADDRINUSE...); undefined when it has none, which leaves the field out.
 */
export function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Why a file could not be read, in words for a one-line message ("no such file"). */
export function unreadable(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return UNREADABLE[e.code ?? ''] ?? e.message;
}

const UNREADABLE: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'is a directory',
};
