// The option table: each option's names (magent's letter where it has one, and
// its long forms) and what it does to the settings as they accumulate, the
// draft that config/argv.ts fills from the defaults, the file and the flags:
//
//   argv.ts finds a flag --> OPTIONS (BY_SHORT, BY_LONG) --> apply(draft, id, value)
//
// A value is checked here, where its flag is known: a bad one ends parsing with
// a one-line error that names the flag (error(), invalid() and the like).

import {
  DEFAULTS, MAX_INT, MAX_ITEM_SIZE, MAX_PENDING_BYTES, MAX_SECONDS, MAX_WORKERS, MIN_ITEM_SIZE, PENDING_EXPECTED, SIZE_EXPECTED,
  isAccountName, parseInteger, parseListenAddress, parseListenHost, parseRatio, parseServerAddress,
  parseMode, parseSize, serverKey, IO_EXPECTED, MODE_EXPECTED,
  type AdminAddress, type Config, type Distribution, type IoMode, type ListenAddress, type ServerAddress,
} from './config.js';
import { quoteless } from './file.js';
import { applySecurity, SECURITY_OPTIONS, securityDraft, type SecurityDraft, type SecurityOptionId } from './security-options.js';
import { helpText } from './help.js';
import { VERSION } from '../version.js';

/** What the command line (and the file it names) comes to. */
export type ParseResult =
  | { kind: 'run'; config: Config }
  | { kind: 'help'; text: string }
  | { kind: 'version'; text: string }
  | { kind: 'error'; message: string };

type OptionId =
  | 'port' | 'listen' | 'server' | 'backup' | 'maxConnections' | 'connectionsPerServer'
  | 'ketama' | 'unixSocket' | 'user' | 'group' | 'foreground' | 'verbose' | 'help'
  | 'version' | 'workers' | 'timeout' | 'retryInterval' | 'failureLimit'
  | 'maxItemSize' | 'distribution' | 'config' | 'admin' | 'drainSeconds' | 'switchDelaySeconds' | 'warmupSeconds'
  | 'warmupDoneRatio' | 'journalMaxKeys' | 'unixSocketMode' | 'restoreKeysPerSecond' | 'restoreMaxInflight' | 'maxPendingBytes' | 'backupCoverageWarn' | 'io'
  | SecurityOptionId;

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
  { id: 'switchDelaySeconds', short: null, long: ['switch-delay'], takesValue: true },
  { id: 'warmupSeconds', short: null, long: ['warmup-seconds'], takesValue: true },
  { id: 'warmupDoneRatio', short: null, long: ['warmup-done-ratio'], takesValue: true },
  { id: 'journalMaxKeys', short: null, long: ['journal-max-keys'], takesValue: true },
  { id: 'restoreKeysPerSecond', short: null, long: ['restore-keys-per-second'], takesValue: true },
  { id: 'restoreMaxInflight', short: null, long: ['restore-max-inflight'], takesValue: true },
  { id: 'backupCoverageWarn', short: null, long: ['backup-coverage-warn'], takesValue: true },
  { id: 'io', short: null, long: ['io'], takesValue: true },
  ...SECURITY_OPTIONS,
];

export const BY_SHORT = new Map<string, OptionSpec>();
export const BY_LONG = new Map<string, OptionSpec>();
for (const spec of OPTIONS) {
  if (spec.short !== null) BY_SHORT.set(spec.short, spec);
  for (const name of spec.long) BY_LONG.set(name, spec);
}

/** Every long option name, for tests and shell completion. */
export const LONG_OPTIONS: readonly string[] = OPTIONS.flatMap((o) => o.long.map((n) => `--${n}`));

/** The settings as they accumulate; -p, -l and the like: the last one given wins, as in magent. */
export interface Draft extends SecurityDraft {
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
  switchDelaySeconds: number;
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

export function defaultDraft(defaultWorkers: number): Draft {
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
    switchDelaySeconds: DEFAULTS.switchDelaySeconds,
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
    ...securityDraft(),
  };
}

/** Applies one option to the draft; returns a result that ends parsing, or null to go on. */
export function apply(draft: Draft, id: OptionId, flag: string, value: string | null, defaultWorkers: number): ParseResult | null {
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
    case 'switchDelaySeconds':
    case 'warmupSeconds': {
      const n = parseInteger(v, 0, MAX_SECONDS);
      if (n === null) return invalid(flag, v, `expected an integer 0..${MAX_SECONDS}`);
      if (id === 'drainSeconds') draft.drainSeconds = n;
      else if (id === 'switchDelaySeconds') draft.switchDelaySeconds = n;
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
    default: {
      const expected = applySecurity(draft, id, v);
      return expected === null ? null : invalid(flag, v, expected);
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

export function error(message: string): ParseResult {
  return { kind: 'error', message: `mcrelay: ${message}` };
}

export function unknown(flag: string): ParseResult {
  return error(`unknown option '${quoteless(flag)}' (see --help)`);
}

export function unexpected(arg: string): ParseResult {
  return error(`unexpected argument '${quoteless(arg)}' (see --help)`);
}

function invalid(flag: string, value: string, expected: string): ParseResult {
  return error(`invalid value '${quoteless(value)}' for ${flag}: ${expected}`);
}
