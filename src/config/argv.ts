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
//
// What each option is and does to the settings: config/options.ts.

import { availableParallelism } from 'node:os';
import { resolve as resolvePath } from 'node:path';

import { MAX_WORKERS, isLoopbackHost, serverKey, type AdminTlsSettings, type Config, type ListenAddress, type ServerAddress } from './config.js';
import { loadConfigFile, type AuthPaths, type FileConfig } from './file.js';
import { finishServerTls, finishTls, type ServerTlsDraft } from './tls.js';
import { loadAuthFile, type AuthFile } from './auth-file.js';
import { apply, BY_LONG, BY_SHORT, defaultDraft, error, unexpected, unknown, type Draft, type ParseResult } from './options.js';

export { parseServerAddress } from './config.js';

export type { ParseResult } from './options.js';

export type LoadResult = { config: Config } | { error: string };

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
  draft.switchDelaySeconds = file.switchDelaySeconds ?? draft.switchDelaySeconds;
  draft.warmupSeconds = file.warmupSeconds ?? draft.warmupSeconds;
  draft.warmupDoneRatio = file.warmupDoneRatio ?? draft.warmupDoneRatio;
  draft.journalMaxKeys = file.journalMaxKeys ?? draft.journalMaxKeys;
  draft.restoreKeysPerSecond = file.restoreKeysPerSecond ?? draft.restoreKeysPerSecond;
  draft.restoreMaxInflight = file.restoreMaxInflight ?? draft.restoreMaxInflight;
  draft.backupCoverageWarn = file.backupCoverageWarn ?? draft.backupCoverageWarn;
  draft.io = file.io ?? draft.io;
  if (file.tls !== undefined) {
    draft.tls = { ...file.tls, listen: file.tls.listen === null ? null : [...file.tls.listen] };
    draft.tlsListenFromFile = file.tls.listen !== null;
  }
  draft.mastersTls = file.mastersTls ?? null;
  draft.backupsTls = file.backupsTls ?? null;
  // The admin listener's security (issue 18).
  draft.adminTokenFile = file.adminTokenFile ?? draft.adminTokenFile;
  draft.adminInsecure = file.adminInsecure ?? draft.adminInsecure;
  if (file.adminTls != null) {
    draft.adminTlsCert = file.adminTls.cert;
    draft.adminTlsKey = file.adminTls.key;
    draft.adminTlsCa = file.adminTls.ca;
    draft.adminTlsClientAuth = file.adminTls.clientAuth;
    draft.adminTlsMinVersion = file.adminTls.minVersion;
  }
  draft.auth = { authFile: file.authFile, backendAuthFile: file.backendAuthFile, mastersAuthFile: file.mastersAuthFile, backupsAuthFile: file.backupsAuthFile };
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

  const adminSecurity = adminSecuritySettings(draft);
  if (typeof adminSecurity === 'string') return error(adminSecurity);
  const auth = readAuthFiles(draft.auth);
  if ('error' in auth) return error(auth.error);

  const listen: ListenAddress = Object.freeze({ host: draft.listenHost, port: draft.port, path: draft.unixSocket });
  const tls = finishTls(draft.tls);
  if (typeof tls === 'string') return error(tls);
  const plainTcp = [listen, ...draft.extraListen].filter((a) => a.path === null && a.port !== 0);
  const clash = tls?.listen.find((t) => plainTcp.some((p) => p.port === t.port && (p.host === t.host || isWildcard(p.host) || isWildcard(t.host))));
  if (clash !== undefined) return error(`--tls-listen ${clash.host}:${clash.port} is also a plain listener's port: TLS needs a port of its own (without --tls-listen, every TCP listener speaks TLS)`);
  // -p or -f over the file's list can make its first address equal a later one.
  const extraListen = draft.extraListen.filter((a) => (a.path === null
    ? !(listen.port === a.port && listen.host.toLowerCase() === a.host.toLowerCase())
    : a.path !== listen.path));

  // Each pool's TLS rides on its TCP servers' addresses, for every connection made to them.
  const pools: Array<[ServerAddress[], ServerTlsDraft | null, string]> = [[draft.masters, draft.mastersTls, 'masters_tls'], [draft.backups, draft.backupsTls, 'backups_tls']];
  const servers: ServerAddress[][] = [];
  for (const [list, d, key] of pools) {
    const serverTls = d === null ? null : finishServerTls(d, key);
    if (typeof serverTls === 'string') return error(serverTls);
    servers.push(serverTls === null ? list : list.map((s) => (s.path === null ? Object.freeze({ ...s, tls: serverTls }) : s)));
  }

  const config: Config = {
    // With -f, magent also kept listening on TCP unless given -p 0; port keeps
    // that choice (0 = TCP off) for whoever opens the listeners.
    listen,
    extraListen: Object.freeze(extraListen),
    masters: Object.freeze(servers[0]!),
    backups: Object.freeze(servers[1]!),
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
    switchDelaySeconds: draft.switchDelaySeconds,
    warmupSeconds: draft.warmupSeconds,
    warmupDoneRatio: draft.warmupDoneRatio,
    journalMaxKeys: draft.journalMaxKeys,
    restoreKeysPerSecond: draft.restoreKeysPerSecond,
    restoreMaxInflight: draft.restoreMaxInflight,
    backupCoverageWarn: draft.backupCoverageWarn,
    io: draft.io,
    tls,
    configPath: draft.configPath === null ? null : resolvePath(draft.configPath),
    ...adminSecurity,
    ...auth,
  };
  return { kind: 'run', config: Object.freeze(config) };
}

/**
 * The admin listener's security settings (issue 18), paths made absolute (the
 * files are read again on SIGHUP, from wherever mcrelay then stands), or why
 * they cannot be used. An admin listener any other host can reach needs a
 * token, or `admin_insecure: true` written out.
 */
function adminSecuritySettings(draft: Draft): Pick<Config, 'adminTokenFile' | 'adminTls' | 'adminInsecure'> | string {
  const file = (p: string | null): string | null => (p === null ? null : resolvePath(p));
  let adminTls: AdminTlsSettings | null = null;
  const clientAuth = draft.adminTlsClientAuth ?? 'none';
  if (draft.adminTlsCert !== null || draft.adminTlsKey !== null) {
    if (draft.adminTlsCert === null || draft.adminTlsKey === null) return 'admin_tls needs both cert and key (--admin-tls-cert, --admin-tls-key)';
    if (clientAuth !== 'none' && draft.adminTlsCa === null) return `admin_tls client_auth ${clientAuth} needs ca (--admin-tls-ca): the CA client certificates are checked against`;
    adminTls = Object.freeze({ cert: file(draft.adminTlsCert)!, key: file(draft.adminTlsKey)!, ca: file(draft.adminTlsCa), clientAuth, minVersion: draft.adminTlsMinVersion ?? 'TLSv1.2' });
  } else if (draft.adminTlsCa !== null || draft.adminTlsClientAuth !== null || draft.adminTlsMinVersion !== null) {
    return 'admin_tls settings without cert and key (--admin-tls-cert, --admin-tls-key)';
  }
  const a = draft.admin;
  if (a !== null && draft.adminTokenFile === null && !draft.adminInsecure && !isLoopbackHost(a.host)) {
    const at = a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
    return `the admin listener ${at} is not on a loopback address and has no token: set admin_token_file (--admin-token-file), or write admin_insecure: true (--admin-insecure) to serve it to anyone who can reach it`;
  }
  return { adminTokenFile: file(draft.adminTokenFile), adminTls, adminInsecure: draft.adminInsecure };
}

/**
 * The password files named, read now (at start, and again at each SIGHUP):
 * backend_auth_file is for both pools unless masters_auth_file or
 * backups_auth_file names another for one.
 */
function readAuthFiles(paths: AuthPaths): Pick<Config, 'clientUsers' | 'mastersAuth' | 'backupsAuth'> | { error: string } {
  const read = (path: string | undefined, setting: string): AuthFile | string | null => {
    if (path === undefined) return null;
    const r = loadAuthFile(path, setting);
    return 'error' in r ? r.error : r.file;
  };
  const clientUsers = read(paths.authFile, 'auth_file');
  const mastersAuth = read(paths.mastersAuthFile ?? paths.backendAuthFile, paths.mastersAuthFile !== undefined ? 'masters_auth_file' : 'backend_auth_file');
  const backupsAuth = read(paths.backupsAuthFile ?? paths.backendAuthFile, paths.backupsAuthFile !== undefined ? 'backups_auth_file' : 'backend_auth_file');
  for (const r of [clientUsers, mastersAuth, backupsAuth]) if (typeof r === 'string') return { error: r };
  return { clientUsers: clientUsers as AuthFile | null, mastersAuth: mastersAuth as AuthFile | null, backupsAuth: backupsAuth as AuthFile | null };
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

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
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
