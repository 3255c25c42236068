// Command line -> Config. magent's flags keep magent's meaning (magent 0.6 parses
// with getopt "p:u:g:s:Dhvn:l:kb:f:i:"), each also has a long form, and mcrelay's
// own settings are long options only. Parsing is getopt-like: -p12000 and
// -p 12000, grouped flags (-vD, -kp12000), --opt=value and --opt value, and
// -- ends the options.
//
// Where mcrelay departs from magent, on purpose:
// - the default listen address is 127.0.0.1 (magent: 0.0.0.0);
// - an unknown flag, a malformed value or a stray argument is a one-line error
//   (magent printed its usage, read numbers with atoi and ignored operands);
// - a server port that is not 1..65535 is an error (magent's atoi turned
//   "host:abc" and "host:0" into port 11211);
// - -u and -g take a name or a numeric id (magent: numeric only, so its
//   "-u root" was atoi("root") = 0, which it ignored).

import { readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { availableParallelism } from 'node:os';

import { DEFAULTS, type Config, type Distribution, type ServerAddress } from './config.js';
import { helpText } from './help.js';

export type ParseResult =
  | { kind: 'run'; config: Config }
  | { kind: 'help'; text: string }
  | { kind: 'version'; text: string }
  | { kind: 'error'; message: string };

const MAX_WORKERS = 256;
// Counts and millisecond settings stay within an Int32 (the shared tables are
// Int32Arrays) and within setTimeout's limit, above which Node fires after 1 ms.
const MAX_INT = 2 ** 31 - 1;
// memcached -I refuses less than 1k and, in every version, more than 1 GiB.
const MIN_ITEM_SIZE = 1024;
const MAX_ITEM_SIZE = 1024 * 1024 * 1024;

type OptionId =
  | 'port' | 'listen' | 'server' | 'backup' | 'maxConnections' | 'connectionsPerServer'
  | 'ketama' | 'unixSocket' | 'user' | 'group' | 'foreground' | 'verbose' | 'help'
  | 'version' | 'workers' | 'timeout' | 'retryInterval' | 'failureLimit'
  | 'maxItemSize' | 'distribution';

interface OptionSpec {
  readonly id: OptionId;
  /** magent's letter, or -V; null for mcrelay's own settings */
  readonly short: string | null;
  readonly long: readonly string[];
  readonly takesValue: boolean;
}

const OPTIONS: readonly OptionSpec[] = [
  { id: 'port', short: 'p', long: ['port'], takesValue: true },
  { id: 'listen', short: 'l', long: ['listen'], takesValue: true },
  { id: 'server', short: 's', long: ['server', 'master'], takesValue: true },
  { id: 'backup', short: 'b', long: ['backup'], takesValue: true },
  { id: 'maxConnections', short: 'n', long: ['max-connections'], takesValue: true },
  { id: 'connectionsPerServer', short: 'i', long: ['connections-per-server'], takesValue: true },
  { id: 'ketama', short: 'k', long: ['ketama'], takesValue: false },
  { id: 'unixSocket', short: 'f', long: ['unix-socket'], takesValue: true },
  { id: 'user', short: 'u', long: ['user'], takesValue: true },
  { id: 'group', short: 'g', long: ['group'], takesValue: true },
  { id: 'foreground', short: 'D', long: ['foreground'], takesValue: false },
  { id: 'verbose', short: 'v', long: ['verbose'], takesValue: false },
  { id: 'help', short: 'h', long: ['help'], takesValue: false },
  { id: 'version', short: 'V', long: ['version'], takesValue: false },
  { id: 'workers', short: null, long: ['workers'], takesValue: true },
  { id: 'timeout', short: null, long: ['timeout'], takesValue: true },
  { id: 'retryInterval', short: null, long: ['retry-interval'], takesValue: true },
  { id: 'failureLimit', short: null, long: ['failure-limit'], takesValue: true },
  { id: 'maxItemSize', short: null, long: ['max-item-size'], takesValue: true },
  { id: 'distribution', short: null, long: ['distribution'], takesValue: true },
];

const BY_SHORT = new Map<string, OptionSpec>();
const BY_LONG = new Map<string, OptionSpec>();
for (const spec of OPTIONS) {
  if (spec.short !== null) BY_SHORT.set(spec.short, spec);
  for (const name of spec.long) BY_LONG.set(name, spec);
}

/** Every long option name, for tests and shell completion. */
export const LONG_OPTIONS: readonly string[] = OPTIONS.flatMap((o) => o.long.map((n) => `--${n}`));

/** The settings as they accumulate; -p, -l and the like: the last one given wins, as in magent. */
interface Draft {
  listenHost: string;
  port: number;
  unixSocket: string | null;
  masters: ServerAddress[];
  backups: ServerAddress[];
  distribution: Distribution;
  workers: number;
  maxConnections: number;
  connectionsPerServer: number;
  timeoutMs: number;
  retryIntervalMs: number;
  failureLimit: number;
  maxItemSize: number;
  user: string | null;
  group: string | null;
  verbose: number;
}

export function parseArgv(argv: readonly string[], env?: { cpus: number }): ParseResult {
  const cpus = env?.cpus ?? availableParallelism();
  const defaultWorkers = Math.min(MAX_WORKERS, Math.max(1, Math.floor(cpus)));
  const draft: Draft = {
    listenHost: DEFAULTS.host,
    port: DEFAULTS.port,
    unixSocket: null,
    masters: [],
    backups: [],
    distribution: DEFAULTS.distribution,
    workers: defaultWorkers,
    maxConnections: DEFAULTS.maxConnections,
    connectionsPerServer: DEFAULTS.connectionsPerServer,
    timeoutMs: DEFAULTS.timeoutMs,
    retryIntervalMs: DEFAULTS.retryIntervalMs,
    failureLimit: DEFAULTS.failureLimit,
    maxItemSize: DEFAULTS.maxItemSize,
    user: null,
    group: null,
    verbose: 0,
  };

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;

    if (arg === '--') {
      if (i + 1 < argv.length) return unexpected(argv[i + 1]!);
      break;
    }

    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const flag = `--${name}`;
      const spec = BY_LONG.get(name);
      if (spec === undefined) return unknown(flag);
      let value: string | null = null;
      if (spec.takesValue) {
        if (eq >= 0) value = arg.slice(eq + 1);
        else if (i + 1 < argv.length) value = argv[++i]!;
        else return error(`option '${flag}' requires a value`);
      } else if (eq >= 0) {
        return error(`option '${flag}' does not take a value`);
      }
      const outcome = apply(draft, spec.id, flag, value, defaultWorkers);
      if (outcome !== null) return outcome;
      continue;
    }

    if (arg.length > 1 && arg[0] === '-') {
      // A group of one-letter flags; a letter that takes a value takes the rest
      // of the group, or the next argument when it ends the group.
      for (let j = 1; j < arg.length; j++) {
        const flag = `-${arg[j]}`;
        const spec = BY_SHORT.get(arg[j]!);
        if (spec === undefined) return unknown(flag);
        let value: string | null = null;
        if (spec.takesValue) {
          if (j + 1 < arg.length) value = arg.slice(j + 1);
          else if (i + 1 < argv.length) value = argv[++i]!;
          else return error(`option '${flag}' requires a value`);
          j = arg.length;
        }
        const outcome = apply(draft, spec.id, flag, value, defaultWorkers);
        if (outcome !== null) return outcome;
      }
      continue;
    }

    return unexpected(arg);
  }

  if (draft.masters.length === 0) {
    return error('at least one master server (-s host:port) is required');
  }
  if (draft.port === 0 && draft.unixSocket === null) {
    return error('-p 0 turns TCP off, so a unix socket to listen on (-f path) is required');
  }

  const config: Config = {
    // With -f, magent also kept listening on TCP unless given -p 0; port keeps
    // that choice (0 = TCP off) for whoever opens the listeners.
    listen: Object.freeze({ host: draft.listenHost, port: draft.port, path: draft.unixSocket }),
    masters: Object.freeze(draft.masters),
    backups: Object.freeze(draft.backups),
    distribution: draft.distribution,
    workers: draft.workers,
    maxConnections: draft.maxConnections,
    connectionsPerServer: draft.connectionsPerServer,
    timeoutMs: draft.timeoutMs,
    retryIntervalMs: draft.retryIntervalMs,
    failureLimit: draft.failureLimit,
    maxItemSize: draft.maxItemSize,
    user: draft.user,
    group: draft.group,
    verbose: draft.verbose,
    // mcrelay never forks into the background: -D is accepted and changes nothing.
    daemonize: false,
  };
  return { kind: 'run', config: Object.freeze(config) };
}

/** Applies one option to the draft; returns a result that ends parsing, or null to go on. */
function apply(draft: Draft, id: OptionId, flag: string, value: string | null, defaultWorkers: number): ParseResult | null {
  const v = value ?? '';
  switch (id) {
    case 'help':
      return { kind: 'help', text: helpText(defaultWorkers) };
    case 'version':
      return { kind: 'version', text: `mcrelay ${packageVersion()}\n` };
    case 'ketama':
      draft.distribution = 'ketama';
      return null;
    case 'foreground':
      return null;
    case 'verbose':
      draft.verbose++;
      return null;
    case 'port': {
      // 0 is magent's "no TCP", meaningful only with -f (checked once all flags are read).
      const port = parseInteger(v, 0, 65535);
      if (port === null) return invalid(flag, v, 'expected a port number 1..65535, or 0 with -f');
      draft.port = port;
      return null;
    }
    case 'listen': {
      const host = parseListenHost(v);
      if (host === null) return invalid(flag, v, 'expected an IP address or host name');
      draft.listenHost = host;
      return null;
    }
    case 'unixSocket':
      if (v === '') return invalid(flag, v, 'expected a socket path');
      draft.unixSocket = v;
      return null;
    case 'server':
      return addServer(draft.masters, 'master', flag, v);
    case 'backup':
      return addServer(draft.backups, 'backup', flag, v);
    case 'maxConnections':
    case 'connectionsPerServer':
    case 'timeout':
    case 'retryInterval':
    case 'failureLimit': {
      const n = parseInteger(v, 1, MAX_INT);
      if (n === null) return invalid(flag, v, `expected an integer 1..${MAX_INT}`);
      if (id === 'maxConnections') draft.maxConnections = n;
      else if (id === 'connectionsPerServer') draft.connectionsPerServer = n;
      else if (id === 'timeout') draft.timeoutMs = n;
      else if (id === 'retryInterval') draft.retryIntervalMs = n;
      else draft.failureLimit = n;
      return null;
    }
    case 'workers': {
      const n = parseInteger(v, 1, MAX_WORKERS);
      if (n === null) return invalid(flag, v, `expected an integer 1..${MAX_WORKERS}`);
      draft.workers = n;
      return null;
    }
    case 'maxItemSize': {
      const n = parseSize(v);
      if (n === null || n < MIN_ITEM_SIZE || n > MAX_ITEM_SIZE) {
        return invalid(flag, v, `expected bytes ${MIN_ITEM_SIZE}..${MAX_ITEM_SIZE}, or with a k or m suffix (e.g. 2m)`);
      }
      draft.maxItemSize = n;
      return null;
    }
    case 'distribution':
      if (v !== 'jump' && v !== 'ketama' && v !== 'magent') {
        return invalid(flag, v, 'expected jump, ketama or magent');
      }
      draft.distribution = v;
      return null;
    case 'user':
    case 'group': {
      // A value starting with '-' is almost surely the next flag swallowed as the
      // argument (as in "-u -n 100"); no portable user or group name starts so.
      if (v === '' || v.startsWith('-') || /\s/.test(v)) {
        return invalid(flag, v, `expected a ${id} name or numeric id`);
      }
      if (id === 'user') draft.user = v;
      else draft.group = v;
      return null;
    }
  }
}

function addServer(list: ServerAddress[], role: 'master' | 'backup', flag: string, value: string): ParseResult | null {
  const parsed = parseServerAddress(value);
  if (typeof parsed === 'string') return invalid(flag, value, parsed);
  // The same server twice in one list would take two slots of the hash and so
  // shift keys between servers relative to a proxy given the list without it.
  const key = serverKey(parsed);
  if (list.some((s) => serverKey(s) === key)) {
    return error(`duplicate ${role} server '${parsed.name}' (${flag} ${quoteless(value)})`);
  }
  list.push(parsed);
  return null;
}

function serverKey(s: ServerAddress): string {
  return s.path ?? `${s.host.toLowerCase()}:${s.port}`;
}

/**
 * Parses a -s / -b value. Returns the address, or the reason it is not one.
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

/** -l: an IPv4 address, a host name, or an IPv6 address with or without brackets. */
function parseListenHost(value: string): string | null {
  const inner = value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value;
  if (isIPv6(inner)) return inner;
  if (inner === value && isHostName(value)) return value;
  return null;
}

/** IPv4 literals and DNS names; a leading '-' would be a flag taken as a value. */
function isHostName(s: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(s);
}

/** Plain decimal digits only: no sign, no exponent, no hex, no blanks. */
function parseInteger(s: string, min: number, max: number): number | null {
  if (!/^[0-9]+$/.test(s)) return null;
  const n = Number(s);
  return n >= min && n <= max ? n : null;
}

/** A byte count with an optional k or m suffix, as memcached's -I reads it (2m = 2 MiB). */
function parseSize(s: string): number | null {
  const m = /^([0-9]+)([kKmM]?)$/.exec(s);
  if (m === null) return null;
  const unit = m[2]!.toLowerCase();
  const scale = unit === 'k' ? 1024 : unit === 'm' ? 1024 * 1024 : 1;
  const n = Number(m[1]) * scale;
  return Number.isSafeInteger(n) ? n : null;
}

let cachedVersion: string | null = null;

/** The version in mcrelay's package.json, found upward from this file (src/ or dist/src/). */
function packageVersion(): string {
  if (cachedVersion !== null) return cachedVersion;
  cachedVersion = 'unknown';
  let dir = new URL('./', import.meta.url);
  for (let depth = 0; depth < 5; depth++) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'mcrelay' && typeof pkg.version === 'string') {
        cachedVersion = pkg.version;
        break;
      }
    } catch {
      // no package.json at this level: keep climbing
    }
    dir = new URL('../', dir);
  }
  return cachedVersion;
}

function error(message: string): ParseResult {
  return { kind: 'error', message: `mcrelay: ${message}` };
}

function unknown(flag: string): ParseResult {
  return error(`unknown option '${quoteless(flag)}' (see --help)`);
}

function unexpected(arg: string): ParseResult {
  return error(`unexpected argument '${quoteless(arg)}' (see --help)`);
}

function invalid(flag: string, value: string, expected: string): ParseResult {
  return error(`invalid value '${quoteless(value)}' for ${flag}: ${expected}`);
}

/** Keeps an error on one line whatever the argument holds. */
function quoteless(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
