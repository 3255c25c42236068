// The validated configuration every part of mcrelay reads. Built by config/argv.ts
// from magent-compatible flags over an optional YAML file (config/file.ts);
// immutable once built. The value syntax both sources share lives here too, so a
// setting reads the same whether it was typed as a flag or written in the file.

import type { ClientAuth, ClientTls, ServerTls, TlsVersion } from './tls.js';
import { isIPv6 } from 'node:net';
import type { AuthFile } from './auth-file.js';

export type Distribution = 'jump' | 'ketama' | 'magent';

/** How sockets are driven (src/io/): Node's internal stream handles, or public APIs only. */
export type IoMode = 'fast' | 'portable';

export interface ServerAddress {
  /** host:port as given, or a unix socket path; used in logs and stats */
  readonly name: string;
  readonly host: string;
  /** 0 for a unix socket path */
  readonly port: number;
  /** set for unix sockets */
  readonly path: string | null;
  /** TLS toward this server (its pool's masters_tls or backups_tls); absent: plain */
  readonly tls?: ServerTls;
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  /** unix socket path (-f); when set, host/port are not used */
  readonly path: string | null;
}

/** The admin HTTP listener (/metrics, /health, /ready). */
export interface AdminAddress {
  readonly host: string;
  readonly port: number;
}

export interface Config {
  /**
   * The first listen address. With -f (or a socket path in the file's list) it
   * may hold both a TCP address and a socket path, as magent's -p and -f did;
   * port 0 then means no TCP.
   */
  readonly listen: ListenAddress;
  /**
   * Further addresses from the file's `listen:` list, each either TCP (path
   * null) or a unix socket (port 0, host '', path set); empty unless the file
   * lists more than one TCP address or more than one socket path.
   */
  readonly extraListen: readonly ListenAddress[];
  /** master pool, in command-line order (the order is part of the hash) */
  readonly masters: readonly ServerAddress[];
  /** backup pool, hashed the same way over its own list; may be empty */
  readonly backups: readonly ServerAddress[];
  readonly distribution: Distribution;
  readonly workers: number;
  readonly maxConnections: number;
  /** pipelined connections each worker keeps to each server */
  readonly connectionsPerServer: number;
  readonly timeoutMs: number;
  readonly retryIntervalMs: number;
  readonly failureLimit: number;
  readonly maxItemSize: number;
  /**
   * most bytes held for requests whose value is still arriving, over all
   * clients (each worker holds its share); past it a set is refused
   */
  readonly maxPendingBytes: number;
  readonly user: string | null;
  readonly group: string | null;
  /** permission bits of every unix socket mcrelay listens on */
  readonly unixSocketMode: number;
  readonly verbose: number;
  /** null when --admin off / `admin: off` */
  readonly admin: AdminAddress | null;
  /** on SIGTERM/SIGINT, how long in-flight requests may take before the process closes */
  readonly drainSeconds: number;
  /** a reload that moves keys takes effect this long after the first entry proxy's reload, on every proxy at once */
  readonly switchDelaySeconds: number;
  /** how long a returning master is warmed from the backup; 0: not at all */
  readonly warmupSeconds: number;
  /** warm-up ends early once fewer than this share (0..1) of its reads need the backup */
  readonly warmupDoneRatio: number;
  /** most keys remembered as written during one server's outage */
  readonly journalMaxKeys: number;
  /** restore of a returning server: keys copied per second at most, and copies in flight at once */
  readonly restoreKeysPerSecond: number;
  readonly restoreMaxInflight: number;
  /** a backup holding less than this share (0..1) of its masters' sampled recent keys is logged at warn */
  readonly backupCoverageWarn: number;
  /**
   * fast: the main thread accepts and hands sockets to the workers, which drive
   * them through Node's internals (portable instead, with a warning, when those
   * are missing); portable: net.Socket, and a reusePort listener per worker
   */
  readonly io: IoMode;
  /** TLS toward clients (config/tls.ts); null: every listener is plain */
  readonly tls: ClientTls | null;
  /** the --config file as an absolute path (what SIGHUP re-reads), or null */
  readonly configPath: string | null;
  // The admin listener's security (issue 18; README "Securing the admin listener").
  /** file holding the bearer token every admin endpoint but /health requires (absolute path; re-read on SIGHUP), or null: none */
  readonly adminTokenFile: string | null;
  /** HTTPS on the admin listener (its files re-read on SIGHUP), or null: plain HTTP */
  readonly adminTls: AdminTlsSettings | null;
  /** `admin_insecure: true`: the admin listener may be on a non-loopback address without a token */
  readonly adminInsecure: boolean;
  // ---- authentication (memcached's -Y ASCII authentication) ----
  /** auth_file / --auth-file: the users clients authenticate as; null: clients are not asked */
  readonly clientUsers: AuthFile | null;
  /** backend_auth_file (or masters_auth_file / backups_auth_file): its first user is sent to each server of the pool; null: none */
  readonly mastersAuth: AuthFile | null;
  readonly backupsAuth: AuthFile | null;
}

// ---- The admin listener's security settings ----

/** TLS files and policy, in the shape the client listeners' `tls:` takes; paths absolute. */
export interface AdminTlsSettings {
  readonly cert: string;
  readonly key: string;
  /** CA bundle client certificates are checked against; required unless clientAuth is none */
  readonly ca: string | null;
  /** none: no client certificate asked; optional: one is checked if sent; require: a handshake without one fails */
  readonly clientAuth: ClientAuth;
  readonly minVersion: TlsVersion;
}

/** The admin address needs no token: only this host can reach 127.0.0.0/8, ::1 and localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(h);
}

export const DEFAULTS = {
  host: '127.0.0.1',
  port: 11211,
  maxConnections: 4096,
  connectionsPerServer: 1,
  timeoutMs: 1000,
  retryIntervalMs: 1000,
  failureLimit: 3,
  maxItemSize: 1024 * 1024,
  maxPendingBytes: 64 * 1024 * 1024,
  distribution: 'jump' as Distribution,
  io: 'fast' as IoMode,
  admin: Object.freeze({ host: '127.0.0.1', port: 9121 }) as AdminAddress,
  drainSeconds: 10,
  switchDelaySeconds: 10,
  warmupSeconds: 300,
  warmupDoneRatio: 0.01,
  journalMaxKeys: 1_000_000,
  restoreKeysPerSecond: 5000,
  restoreMaxInflight: 32,
  backupCoverageWarn: 0.95,
  // Owner and group read-write: clients in mcrelay's group connect, others not.
  unixSocketMode: 0o660,
} as const;

// ---- Value syntax shared by the command line and the config file ----

export const MAX_WORKERS = 256;
// Counts and millisecond settings stay within an Int32 (the shared tables are
// Int32Arrays) and within setTimeout's limit, above which Node fires after 1 ms.
export const MAX_INT = 2 ** 31 - 1;
/** Second settings become timers in milliseconds, so they share that limit. */
export const MAX_SECONDS = Math.floor(MAX_INT / 1000);
// memcached -I refuses less than 1k and, in every version, more than 1 GiB.
export const MIN_ITEM_SIZE = 1024;
export const MAX_ITEM_SIZE = 1024 * 1024 * 1024;

export const SIZE_EXPECTED = `expected bytes ${MIN_ITEM_SIZE}..${MAX_ITEM_SIZE}, or with a k or m suffix (e.g. 2m)`;
export const MAX_PENDING_BYTES = 2 ** 40;
export const PENDING_EXPECTED = `expected bytes ${MIN_ITEM_SIZE}..${MAX_PENDING_BYTES}, or with a k or m suffix (e.g. 64m)`;

/**
 * Parses a server address (-s / -b, `masters:` / `backups:`). Returns the
 * address, or the reason it is not one.
 *
 * Follows magent where magent was well-defined: "host:port", and a bare "host"
 * means port 11211 (magent's init of a server: no ':' -> port 11211). Beyond
 * magent (which took IPv4 literals only, via inet_addr): host names, IPv6 in
 * brackets ("[::1]:11211", or "[::1]" for port 11211), and an absolute path for
 * a memcached listening on a unix socket. Unlike magent, a port that is not
 * 1..65535 is an error rather than silently 11211.
 *
 * name is "host:port" with the host exactly as typed and the port as a plain
 * number ("[host]:port" for IPv6): proxies given the same list label servers
 * identically, which ketama relies on.
 */
export function parseServerAddress(value: string): ServerAddress | string {
  if (value.startsWith('/')) {
    return Object.freeze({ name: value, host: '', port: 0, path: value });
  }
  let host: string;
  let portText: string | undefined;
  let bracketed = false;
  if (value.startsWith('[')) {
    const m = /^\[([^\]]*)\](?::(.*))?$/.exec(value);
    if (m === null || !isIPv6(m[1]!)) return 'expected host:port, with an IPv6 address as [addr]:port';
    host = m[1]!;
    portText = m[2];
    bracketed = true;
  } else {
    const colon = value.indexOf(':');
    if (colon >= 0 && value.indexOf(':', colon + 1) >= 0) {
      return 'expected host:port; write an IPv6 address in brackets, e.g. [::1]:11211';
    }
    host = colon < 0 ? value : value.slice(0, colon);
    portText = colon < 0 ? undefined : value.slice(colon + 1);
    if (!isHostName(host)) return 'expected host:port';
  }
  let port: number = DEFAULTS.port;
  if (portText !== undefined) {
    const p = parseInteger(portText, 1, 65535);
    if (p === null) return 'expected host:port with a port 1..65535';
    port = p;
  }
  const name = bracketed ? `[${host}]:${port}` : `${host}:${port}`;
  return Object.freeze({ name, host, port, path: null });
}

/** The key two entries of one server list collide on. */
export function serverKey(s: ServerAddress): string {
  return s.path ?? `${s.host.toLowerCase()}:${s.port}`;
}

/**
 * An address to listen on, as the file's `listen:` and --admin write it:
 * "host:port" with the port required ([addr]:port for IPv6), or, when
 * allowPath, a unix socket path (anything with a '/').
 */
export function parseListenAddress(value: string, allowPath: boolean): ListenAddress | string {
  if (value.includes('/')) {
    if (!allowPath) return 'expected host:port';
    return Object.freeze({ host: '', port: 0, path: value });
  }
  const hasPort = value.startsWith('[') ? value.includes(']:') : value.includes(':');
  const parsed = parseServerAddress(value);
  if (typeof parsed === 'string') return parsed;
  if (!hasPort) return 'expected host:port (the port is required)';
  return Object.freeze({ host: parsed.host, port: parsed.port, path: null });
}

/** -l: an IPv4 address, a host name, or an IPv6 address with or without brackets. */
export function parseListenHost(value: string): string | null {
  const inner = value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value;
  if (isIPv6(inner)) return inner;
  if (inner === value && isHostName(value)) return value;
  return null;
}

/** IPv4 literals and DNS names; a leading '-' would be a flag taken as a value. */
export function isHostName(s: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(s);
}

/**
 * -u / -g: a name or a numeric id. A value starting with '-' is almost surely
 * the next flag swallowed as the argument (as in "-u -n 100"); no portable user
 * or group name starts so.
 */
export function isAccountName(s: string): boolean {
  return s !== '' && !s.startsWith('-') && !/\s/.test(s);
}

/** Plain decimal digits only: no sign, no exponent, no hex, no blanks. */
export function parseInteger(s: string, min: number, max: number): number | null {
  if (!/^[0-9]+$/.test(s)) return null;
  const n = Number(s);
  return n >= min && n <= max ? n : null;
}

/** A byte count with an optional k or m suffix, as memcached's -I reads it (2m = 2 MiB). */
export function parseSize(s: string): number | null {
  const m = /^([0-9]+)([kKmM]?)$/.exec(s);
  if (m === null) return null;
  const unit = m[2]!.toLowerCase();
  const scale = unit === 'k' ? 1024 : unit === 'm' ? 1024 * 1024 : 1;
  const n = Number(m[1]) * scale;
  return Number.isSafeInteger(n) ? n : null;
}

export const MODE_EXPECTED = 'expected an octal mode 000..777, e.g. 0660';
export const IO_EXPECTED = 'expected fast or portable';

/** A file mode in octal digits as chmod takes it (660, 0660); only the permission bits. */
export function parseMode(s: string): number | null {
  if (!/^0?[0-7]{3}$/.test(s)) return null;
  return parseInt(s, 8);
}

/** A ratio 0..1 written in plain decimal (0.01, .5, 1); no exponent, no sign. */
export function parseRatio(s: string): number | null {
  if (!/^([0-9]+(\.[0-9]*)?|\.[0-9]+)$/.test(s)) return null;
  const n = Number(s);
  return n >= 0 && n <= 1 ? n : null;
}

/** The masters' names in configured order: the order the router numbers them. */
export function masterNames(config: Pick<Config, 'masters'>): string[] {
  return config.masters.map((s) => s.name);
}

/** The backups' names in configured order. */
export function backupNames(config: Pick<Config, 'backups'>): string[] {
  return config.backups.map((s) => s.name);
}

/**
 * Every server's name, masters first and then backups: the order in which the
 * health table and the per-server figures number them.
 */
export function serverNames(config: Pick<Config, 'masters' | 'backups'>): string[] {
  return [...masterNames(config), ...backupNames(config)];
}
