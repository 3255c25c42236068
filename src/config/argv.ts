// Command line (over an optional --config file) -> Config. magent's flags keep
// magent's meaning (magent 0.6 parses with getopt "p:u:g:s:Dhvn:l:kb:f:i:"), each
// also has a long form, and mcrelay's own settings are long options only.
// Parsing is getopt-like: -p12000 and -p 12000, grouped flags (-vD, -kp12000),
// --opt=value and --opt value, and -- ends the options.
//
// With --config FILE the file is read first and the flags then apply over it,
// wherever --config stands on the line:
//
//   defaults -> file (config/file.ts) -> flags in order -> checks -> Config
//
// A flag overrides the file's setting: -l, -p and -f each replace one part of
// the file's first listen address; the first -s (or -b, or -v) replaces the
// file's whole list (or level) rather than adding to it.
//
// Where mcrelay departs from magent, on purpose:
// - the default listen address is 127.0.0.1 (magent: 0.0.0.0);
// - an unknown flag, a malformed value or a stray argument is a one-line error
//   (magent printed its usage, read numbers with atoi and ignored operands);
// - a server port that is not 1..65535 is an error (magent's atoi turned
//   "host:abc" and "host:0" into port 11211);
// - -u and -g take a name or a numeric id (magent: numeric only, so its
//   "-u root" was atoi("root") = 0, which it ignored).

import { availableParallelism } from 'node:os';
import { resolve as resolvePath } from 'node:path';

import {
  DEFAULTS, MAX_INT, MAX_ITEM_SIZE, MAX_PENDING_BYTES, MAX_SECONDS, MAX_WORKERS, MIN_ITEM_SIZE, PENDING_EXPECTED, SIZE_EXPECTED,
  isAccountName, parseInteger, parseListenAddress, parseListenHost, parseRatio, parseServerAddress,
  parseMode, parseSize, serverKey, IO_EXPECTED, MODE_EXPECTED,
  type AdminAddress, type Config, type Distribution, type IoMode, type ListenAddress, type ServerAddress,
} from './config.js';
import { loadConfigFile, quoteless, type FileConfig } from './file.js';
import { helpText } from './help.js';
import { VERSION } from '../version.js';

export { parseServerAddress } from './config.js';

export type ParseResult =
  | { kind: 'run'; config: Config }
  | { kind: 'help'; text: string }
  | { kind: 'version'; text: string }
  | { kind: 'error'; message: string };

export type LoadResult = { config: Config } | { error: string };

type OptionId =
  | 'port' | 'listen' | 'server' | 'backup' | 'maxConnections' | 'connectionsPerServer'
  | 'ketama' | 'unixSocket' | 'user' | 'group' | 'foreground' | 'verbose' | 'help'
  | 'version' | 'workers' | 'timeout' | 'retryInterval' | 'failureLimit'
  | 'maxItemSize' | 'distribution' | 'config' | 'admin' | 'drainSeconds' | 'warmupSeconds'
  | 'warmupDoneRatio' | 'journalMaxKeys' | 'unixSocketMode' | 'restoreKeysPerSecond' | 'restoreMaxInflight' | 'maxPendingBytes' | 'backupCoverageWarn' | 'io';

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
  { id: 'unixSocketMode', short: null, long: ['unix-socket-mode'], takesValue: true },
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
  { id: 'maxPendingBytes', short: null, long: ['max-pending-bytes'], takesValue: true },
  { id: 'distribution', short: null, long: ['distribution'], takesValue: true },
  { id: 'config', short: null, long: ['config'], takesValue: true },
  { id: 'admin', short: null, long: ['admin'], takesValue: true },
  { id: 'drainSeconds', short: null, long: ['drain-seconds'], takesValue: true },
  { id: 'warmupSeconds', short: null, long: ['warmup-seconds'], takesValue: true },
  { id: 'warmupDoneRatio', short: null, long: ['warmup-done-ratio'], takesValue: true },
  { id: 'journalMaxKeys', short: null, long: ['journal-max-keys'], takesValue: true },
  { id: 'restoreKeysPerSecond', short: null, long: ['restore-keys-per-second'], takesValue: true },
  { id: 'restoreMaxInflight', short: null, long: ['restore-max-inflight'], takesValue: true },
  { id: 'backupCoverageWarn', short: null, long: ['backup-coverage-warn'], takesValue: true },
  { id: 'io', short: null, long: ['io'], takesValue: true },
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
  unixSocketMode: number;
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
  maxPendingBytes: number;
  user: string | null;
  group: string | null;
  verbose: number;
  extraListen: readonly ListenAddress[];
  admin: AdminAddress | null;
  drainSeconds: number;
  warmupSeconds: number;
  warmupDoneRatio: number;
  journalMaxKeys: number;
  restoreKeysPerSecond: number;
  restoreMaxInflight: number;
  backupCoverageWarn: number;
  io: IoMode;
  /** --config as given */
  configPath: string | null;
  // Set while the list (or level) is still the file's: the first flag replaces it.
  mastersFromFile: boolean;
  backupsFromFile: boolean;
  verboseFromFile: boolean;
}

function defaultDraft(defaultWorkers: number): Draft {
  return {
    listenHost: DEFAULTS.host,
    port: DEFAULTS.port,
    unixSocket: null,
    unixSocketMode: DEFAULTS.unixSocketMode,
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
    maxPendingBytes: DEFAULTS.maxPendingBytes,
    user: null,
    group: null,
    verbose: 0,
    extraListen: [],
    admin: DEFAULTS.admin,
    drainSeconds: DEFAULTS.drainSeconds,
    warmupSeconds: DEFAULTS.warmupSeconds,
    warmupDoneRatio: DEFAULTS.warmupDoneRatio,
    journalMaxKeys: DEFAULTS.journalMaxKeys,
    restoreKeysPerSecond: DEFAULTS.restoreKeysPerSecond,
    restoreMaxInflight: DEFAULTS.restoreMaxInflight,
    backupCoverageWarn: DEFAULTS.backupCoverageWarn,
    io: DEFAULTS.io,
    configPath: null,
    mastersFromFile: false,
    backupsFromFile: false,
    verboseFromFile: false,
  };
}

/** The file's settings laid over the defaults, before any flag. */
function overlay(draft: Draft, file: FileConfig): void {
  if (file.listen !== undefined) {
    draft.listenHost = file.listen.host;
    draft.port = file.listen.port;
    draft.unixSocket = file.listen.path;
  }
  if (file.extraListen !== undefined) draft.extraListen = file.extraListen;
  if (file.masters !== undefined) {
    draft.masters = [...file.masters];
    draft.mastersFromFile = true;
  }
  if (file.backups !== undefined) {
    draft.backups = [...file.backups];
    draft.backupsFromFile = true;
  }
  if (file.verbose !== undefined) {
    draft.verbose = file.verbose;
    draft.verboseFromFile = true;
  }
  draft.distribution = file.distribution ?? draft.distribution;
  draft.workers = file.workers ?? draft.workers;
  draft.maxConnections = file.maxConnections ?? draft.maxConnections;
  draft.connectionsPerServer = file.connectionsPerServer ?? draft.connectionsPerServer;
  draft.timeoutMs = file.timeoutMs ?? draft.timeoutMs;
  draft.retryIntervalMs = file.retryIntervalMs ?? draft.retryIntervalMs;
  draft.failureLimit = file.failureLimit ?? draft.failureLimit;
  draft.maxItemSize = file.maxItemSize ?? draft.maxItemSize;
  draft.unixSocketMode = file.unixSocketMode ?? draft.unixSocketMode;
  draft.maxPendingBytes = file.maxPendingBytes ?? draft.maxPendingBytes;
  draft.user = file.user ?? draft.user;
  draft.group = file.group ?? draft.group;
  if (file.admin !== undefined) draft.admin = file.admin;
  draft.drainSeconds = file.drainSeconds ?? draft.drainSeconds;
  draft.warmupSeconds = file.warmupSeconds ?? draft.warmupSeconds;
  draft.warmupDoneRatio = file.warmupDoneRatio ?? draft.warmupDoneRatio;
  draft.journalMaxKeys = file.journalMaxKeys ?? draft.journalMaxKeys;
  draft.restoreKeysPerSecond = file.restoreKeysPerSecond ?? draft.restoreKeysPerSecond;
  draft.restoreMaxInflight = file.restoreMaxInflight ?? draft.restoreMaxInflight;
  draft.backupCoverageWarn = file.backupCoverageWarn ?? draft.backupCoverageWarn;
  draft.io = file.io ?? draft.io;
}

export function parseArgv(argv: readonly string[], env?: { cpus: number }): ParseResult {
  const cpus = env?.cpus ?? availableParallelism();
  const defaultWorkers = Math.min(MAX_WORKERS, Math.max(1, Math.floor(cpus)));

  // The first pass finds --config, and settles help, version and any flag error
  // in command-line order, before the file is read.
  let draft = defaultDraft(defaultWorkers);
  const first = applyFlags(argv, draft, defaultWorkers);
  if (first !== null) return first;

  if (draft.configPath !== null) {
    const loaded = loadConfigFile(draft.configPath);
    if ('error' in loaded) return error(loaded.error);
    draft = defaultDraft(defaultWorkers);
    overlay(draft, loaded.config);
    const second = applyFlags(argv, draft, defaultWorkers);
    if (second !== null) return second;
  }

  if (draft.masters.length === 0) {
    return error('at least one master server (-s host:port) is required');
  }
  const twin = backupIsMaster(draft.masters, draft.backups);
  if (twin !== null) return error(twin);
  if (draft.port === 0 && draft.unixSocket === null) {
    return error('-p 0 turns TCP off, so a unix socket to listen on (-f path) is required');
  }

  const listen: ListenAddress = Object.freeze({ host: draft.listenHost, port: draft.port, path: draft.unixSocket });
  // -p or -f over the file's list can make its first address equal a later one.
  const extraListen = draft.extraListen.filter((a) => (a.path === null
    ? !(listen.port === a.port && listen.host.toLowerCase() === a.host.toLowerCase())
    : a.path !== listen.path));

  const config: Config = {
    // With -f, magent also kept listening on TCP unless given -p 0; port keeps
    // that choice (0 = TCP off) for whoever opens the listeners.
    listen,
    extraListen: Object.freeze(extraListen),
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
    maxPendingBytes: draft.maxPendingBytes,
    user: draft.user,
    group: draft.group,
    unixSocketMode: draft.unixSocketMode,
    verbose: draft.verbose,
    admin: draft.admin,
    drainSeconds: draft.drainSeconds,
    warmupSeconds: draft.warmupSeconds,
    warmupDoneRatio: draft.warmupDoneRatio,
    journalMaxKeys: draft.journalMaxKeys,
    restoreKeysPerSecond: draft.restoreKeysPerSecond,
    restoreMaxInflight: draft.restoreMaxInflight,
    backupCoverageWarn: draft.backupCoverageWarn,
    io: draft.io,
    configPath: draft.configPath === null ? null : resolvePath(draft.configPath),
  };
  return { kind: 'run', config: Object.freeze(config) };
}

/**
 * For SIGHUP: reads the --config file again and applies the same command line
 * over it, exactly as at start. The running config is the caller's to keep when
 * this returns an error.
 */
export function loadConfig(argv: readonly string[], env?: { cpus: number }): LoadResult {
  const r = parseArgv(argv, env);
  if (r.kind === 'run') return { config: r.config };
  if (r.kind === 'error') return { error: r.message };
  return { error: 'mcrelay: the command line asks for --help or --version, not a configuration' };
}

/** Applies every flag of argv, in order, to the draft; returns a result that ends parsing, or null. */
function applyFlags(argv: readonly string[], draft: Draft, defaultWorkers: number): ParseResult | null {
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
  return null;
}

/** Applies one option to the draft; returns a result that ends parsing, or null to go on. */
function apply(draft: Draft, id: OptionId, flag: string, value: string | null, defaultWorkers: number): ParseResult | null {
  const v = value ?? '';
  switch (id) {
    case 'help':
      return { kind: 'help', text: helpText(defaultWorkers) };
    case 'version':
      return { kind: 'version', text: `mcrelay ${VERSION}\n` };
    case 'ketama':
      draft.distribution = 'ketama';
      return null;
    case 'foreground':
      return null;
    case 'verbose':
      if (draft.verboseFromFile) {
        draft.verbose = 0;
        draft.verboseFromFile = false;
      }
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
    case 'unixSocketMode': {
      const mode = parseMode(v);
      if (mode === null) return invalid(flag, v, MODE_EXPECTED);
      draft.unixSocketMode = mode;
      return null;
    }
    case 'server':
      if (draft.mastersFromFile) {
        draft.masters = [];
        draft.mastersFromFile = false;
      }
      return addServer(draft.masters, 'master', flag, v);
    case 'backup':
      if (draft.backupsFromFile) {
        draft.backups = [];
        draft.backupsFromFile = false;
      }
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
      if (n === null || n < MIN_ITEM_SIZE || n > MAX_ITEM_SIZE) return invalid(flag, v, SIZE_EXPECTED);
      draft.maxItemSize = n;
      return null;
    }
    case 'maxPendingBytes': {
      const n = parseSize(v);
      if (n === null || n < MIN_ITEM_SIZE || n > MAX_PENDING_BYTES) return invalid(flag, v, PENDING_EXPECTED);
      draft.maxPendingBytes = n;
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
      if (!isAccountName(v)) return invalid(flag, v, `expected a ${id} name or numeric id`);
      if (id === 'user') draft.user = v;
      else draft.group = v;
      return null;
    }
    case 'config':
      if (v === '') return invalid(flag, v, 'expected a file path');
      draft.configPath = v;
      return null;
    case 'admin': {
      if (v === 'off') {
        draft.admin = null;
        return null;
      }
      const a = parseListenAddress(v, false);
      if (typeof a === 'string') return invalid(flag, v, 'expected host:port or off');
      draft.admin = Object.freeze({ host: a.host, port: a.port });
      return null;
    }
    case 'drainSeconds':
    case 'warmupSeconds': {
      const n = parseInteger(v, 0, MAX_SECONDS);
      if (n === null) return invalid(flag, v, `expected an integer 0..${MAX_SECONDS}`);
      if (id === 'drainSeconds') draft.drainSeconds = n;
      else draft.warmupSeconds = n;
      return null;
    }
    case 'warmupDoneRatio':
    case 'backupCoverageWarn': {
      const r = parseRatio(v);
      if (r === null) return invalid(flag, v, `expected a number 0..1 (e.g. ${id === 'warmupDoneRatio' ? '0.01' : '0.95'})`);
      if (id === 'warmupDoneRatio') draft.warmupDoneRatio = r;
      else draft.backupCoverageWarn = r;
      return null;
    }
    case 'restoreKeysPerSecond':
    case 'restoreMaxInflight': {
      const n = parseInteger(v, 1, MAX_INT);
      if (n === null) return invalid(flag, v, `expected an integer 1..${MAX_INT}`);
      if (id === 'restoreKeysPerSecond') draft.restoreKeysPerSecond = n;
      else draft.restoreMaxInflight = n;
      return null;
    }
    case 'io':
      if (v !== 'fast' && v !== 'portable') return invalid(flag, v, IO_EXPECTED);
      draft.io = v;
      return null;
    case 'journalMaxKeys': {
      const n = parseInteger(v, 1, MAX_INT);
      if (n === null) return invalid(flag, v, `expected an integer 1..${MAX_INT}`);
      draft.journalMaxKeys = n;
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

/**
 * A backup that is also a master would hold the master's own copy: writes go to
 * one server twice, and a repair (delete on the backup) deletes the master's
 * value. Names that differ but resolve alike are found by config/same-server.ts.
 */
function backupIsMaster(masters: readonly ServerAddress[], backups: readonly ServerAddress[]): string | null {
  for (const b of backups) {
    const m = masters.find((s) => serverKey(s) === serverKey(b));
    if (m !== undefined) return `backup server '${b.name}' is also master server '${m.name}': a backup must be another server`;
  }
  return null;
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
