// Every reply string mcrelay itself puts on the wire, exactly as memcached 1.6
// spells it. Replies from backends are forwarded as received and are not listed.

const line = (s: string): Buffer => Buffer.from(`${s}\r\n`, 'latin1');

export const CRLF = line('');
export const END = line('END');
export const OK = line('OK');
export const ERROR = line('ERROR');
export const RESET = line('RESET');
export const STORED = line('STORED');

export const MN = line('MN');
/** a reply that puts nothing on the wire (a quiet meta command's suppressed answer) */
export const NOTHING = Buffer.alloc(0);

export const CLIENT_ERROR_FORMAT = line('CLIENT_ERROR bad command line format');
export const CLIENT_ERROR_DATA_CHUNK = line('CLIENT_ERROR bad data chunk');
export const CLIENT_ERROR_DELTA = line('CLIENT_ERROR invalid numeric delta argument');
export const CLIENT_ERROR_EXPTIME = line('CLIENT_ERROR invalid exptime argument');
export const CLIENT_ERROR_DELETE_USAGE = line('CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]');
export const CLIENT_ERROR_FLAGS_TOO_LONG = line('CLIENT_ERROR options flags too long');
export const CLIENT_ERROR_FLAGS_ARE_TOO_LONG = line('CLIENT_ERROR options flags are too long');
/**
 * An unterminated request line past the limit, before the connection is closed.
 * memcached 1.6.18 closes without a word; its own proxy answers this first.
 */
export const CLIENT_ERROR_REQUEST_TOO_LONG = line('CLIENT_ERROR request too long');

/**
 * A command that manages or streams from one memcached server (watch,
 * lru_crawler, slabs, ...): through a proxy it would reach whichever server
 * and act there unseen, so mcrelay refuses it rather than answer ERROR.
 */
export function notPassedOn(command: string): Buffer {
  return line(`CLIENT_ERROR ${command} is not passed on by mcrelay: it acts on one server, send it to that server directly`);
}

// memcached's answers before a client has authenticated (-Y; proto_text.c try_read_command_asciiauth).
export const CLIENT_ERROR_UNAUTHENTICATED = line('CLIENT_ERROR unauthenticated');
export const CLIENT_ERROR_AUTH_FAILURE = line('CLIENT_ERROR authentication failure');
export const CLIENT_ERROR_AUTH_TOO_LONG = line('CLIENT_ERROR auth token too long');
export const CLIENT_ERROR_AUTH_FORMAT = line('CLIENT_ERROR bad authentication token format');
export const CLIENT_ERROR_LINE_TERMINATION = line('CLIENT_ERROR bad command line termination');

export const SERVER_ERROR_TOO_LARGE = line('SERVER_ERROR object too large for cache');
export const SERVER_ERROR_OUT_OF_MEMORY = line('SERVER_ERROR out of memory storing object');
export const SERVER_ERROR_UNAVAILABLE = line('SERVER_ERROR backend unavailable');
// memcached's own words when it is out of connections (it then closes).
export const ERROR_TOO_MANY_CONNECTIONS = line('ERROR Too many open connections');
