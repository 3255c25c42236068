// The YAML config file (--config FILE): text -> the settings it gives, each
// checked as strictly as its command-line flag.
//
//   file text --yaml parseDocument (core schema)--> node tree --KEYS[key](node)--> FileConfig
//
// The file is data only. It is read with YAML 1.2's core schema and the tree is
// walked key by key, so a tag (!!js/function, !!binary, !custom) is refused
// rather than resolved, nothing is evaluated and nothing is coerced: a quoted
// "1000" is a string, not a number. A bad file (syntax error, unknown key, wrong
// type, bad address, empty master list) is refused with one line naming the
// file, the line, the key and the problem; nothing of it is applied.

import { readFileSync } from 'node:fs';
import {
  Document, isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument,
  type Node, type Pair, type YAMLError,
} from 'yaml';

import {
  DEFAULTS, MAX_INT, MAX_ITEM_SIZE, MAX_PENDING_BYTES, MAX_SECONDS, MAX_WORKERS, MIN_ITEM_SIZE, PENDING_EXPECTED, SIZE_EXPECTED,
  isAccountName, isHostName, parseListenAddress, parseMode, parseServerAddress, parseSize, serverKey, IO_EXPECTED, MODE_EXPECTED,
  type AdminAddress, type Config, type Distribution, type IoMode, type ListenAddress, type ServerAddress,
} from './config.js';
import {
  CLIENT_AUTH_EXPECTED, emptyServerTlsDraft, emptyTlsDraft, parseClientAuth, parseTlsVersion, TLS_VERSION_EXPECTED,
  type ClientAuth, type ServerTlsDraft, type TlsDraft, type TlsVersion,
} from './tls.js';
import { unreadable } from '../errors.js';

/**
 * What a file sets; a key it leaves out is absent. listen is the first listen
 * address with the file's first TCP address and first socket path merged (as -l,
 * -p and -f would give it, so those flags override it field by field);
 * extraListen holds the rest of the list.
 */
export type FileConfig = { -readonly [K in keyof Omit<Config, 'configPath' | 'tls' | AuthKeys>]?: Config[K] }
  & { tls?: TlsDraft; mastersTls?: ServerTlsDraft; backupsTls?: ServerTlsDraft } & AuthPaths;

/** The password files are named in the file and read once every setting is known (config/auth-file.ts). */
type AuthKeys = 'clientUsers' | 'mastersAuth' | 'backupsAuth';
export interface AuthPaths {
  authFile?: string;
  backendAuthFile?: string;
  mastersAuthFile?: string;
  backupsAuthFile?: string;
}

export type FileResult = { config: FileConfig } | { error: string };

/** Reads and checks the file at path; messages start with the path as given. */
export function loadConfigFile(path: string): FileResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { error: `${path}: cannot read the config file: ${unreadable(err)}` };
  }
  return parseConfigText(text, path);
}

/** The same checks on text already read; name labels the messages. */
export function parseConfigText(text: string, name: string): FileResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, schema: 'core' });
  const lineAt = (offset: number): number => lines.linePos(offset).line;

  // An unresolved tag is refused where the walk meets it, which names its key.
  const syntax = doc.errors[0] ?? doc.warnings.find((w) => w.code !== 'TAG_RESOLVE_FAILED');
  if (syntax !== undefined) return { error: `${name}:${lineAt(syntax.pos[0])}: ${yamlProblem(syntax, text)}` };

  try {
    return { config: readTop(doc) };
  } catch (err) {
    if (!(err instanceof FileError)) throw err;
    const line = err.node?.range != null ? `:${lineAt(err.node.range[0])}` : '';
    return { error: `${name}${line}: ${err.key}: ${err.problem}` };
  }
}

function yamlProblem(e: YAMLError, text: string): string {
  if (e.code === 'DUPLICATE_KEY') {
    const key = /^[^:\n]*/.exec(text.slice(e.pos[0]))![0].trim();
    return `${quoteless(key)}: given twice`;
  }
  return `YAML syntax error: ${quoteless(e.message.split('\n')[0]!)}`;
}

class FileError extends Error {
  constructor(readonly key: string, readonly problem: string, readonly node: Node | null) {
    super(`${key}: ${problem}`);
  }
}

type Reader = (out: FileConfig, value: Node | null, key: string, doc: Document) => void;

// Every key the file may hold: the keys, and one for each flag that has
// no key above (connections_per_server, user, group, verbose).
const KEYS: Record<string, Reader> = {
  listen: readListen,
  workers: (out, v, key, doc) => { out.workers = integer(v, key, doc, 1, MAX_WORKERS); },
  masters: (out, v, key, doc) => {
    out.masters = servers(v, key, doc, out.backups, 'backup');
    if (out.masters.length === 0) throw new FileError(key, 'expected at least one master server', v);
  },
  backups: (out, v, key, doc) => { out.backups = servers(v, key, doc, out.masters, 'master'); },
  distribution: (out, v, key, doc) => {
    const s = string(v, key, doc, 'jump, ketama or magent');
    if (s !== 'jump' && s !== 'ketama' && s !== 'magent') throw new FileError(key, `expected jump, ketama or magent, got ${describe(v)}`, v);
    out.distribution = s satisfies Distribution;
  },
  timeout_ms: (out, v, key, doc) => { out.timeoutMs = integer(v, key, doc, 1, MAX_INT); },
  retry_interval_ms: (out, v, key, doc) => { out.retryIntervalMs = integer(v, key, doc, 1, MAX_INT); },
  failure_limit: (out, v, key, doc) => { out.failureLimit = integer(v, key, doc, 1, MAX_INT); },
  max_connections: (out, v, key, doc) => { out.maxConnections = integer(v, key, doc, 1, MAX_INT); },
  connections_per_server: (out, v, key, doc) => { out.connectionsPerServer = integer(v, key, doc, 1, MAX_INT); },
  max_item_size: (out, v, key) => { out.maxItemSize = size(v, key, MAX_ITEM_SIZE, SIZE_EXPECTED); },
  max_pending_bytes: (out, v, key) => { out.maxPendingBytes = size(v, key, MAX_PENDING_BYTES, PENDING_EXPECTED); },
  warmup: (out, v, key, doc) => {
    section(v, key, doc, {
      seconds: (n, k) => { out.warmupSeconds = integer(n, k, doc, 0, MAX_SECONDS); },
      done_ratio: (n, k) => { out.warmupDoneRatio = ratio(n, k, doc); },
    });
  },
  restore: (out, v, key, doc) => {
    section(v, key, doc, {
      keys_per_second: (n, k) => { out.restoreKeysPerSecond = integer(n, k, doc, 1, MAX_INT); },
      max_inflight: (n, k) => { out.restoreMaxInflight = integer(n, k, doc, 1, MAX_INT); },
    });
  },
  journal: (out, v, key, doc) => {
    section(v, key, doc, {
      max_keys: (n, k) => { out.journalMaxKeys = integer(n, k, doc, 1, MAX_INT); },
    });
  },
  admin: (out, v, key, doc) => {
    const s = string(v, key, doc, 'host:port or off');
    if (s === 'off') {
      out.admin = null;
      return;
    }
    const a = parseListenAddress(s, false);
    if (typeof a === 'string') throw new FileError(key, `${a} (or off), got ${describe(v)}`, v);
    out.admin = Object.freeze({ host: a.host, port: a.port }) satisfies AdminAddress;
  },
  // The admin listener's security (issue 18): paths as written, made absolute by argv.ts.
  admin_token_file: (out, v, key, doc) => { out.adminTokenFile = filePath(v, key, doc); },
  admin_insecure: (out, v, key) => {
    if (!isScalar(v) || typeof v.value !== 'boolean') throw new FileError(key, `expected true or false, got ${describe(v)}`, v);
    out.adminInsecure = v.value;
  },
  admin_tls: (out, v, key, doc) => {
    const t = emptyTlsDraft();
    section(v, key, doc, tlsKeys(t, doc));
    if (t.cert === null || t.key === null) throw new FileError(key, 'expected both cert and key', v);
    const clientAuth = t.clientAuth ?? 'none';
    if (clientAuth !== 'none' && t.ca === null) throw new FileError(key, `client_auth: ${clientAuth} needs ca (the CA client certificates are checked against)`, v);
    out.adminTls = Object.freeze({ cert: t.cert, key: t.key, ca: t.ca, clientAuth, minVersion: t.minVersion ?? 'TLSv1.2' });
  },
  backup_coverage_warn: (out, v, key, doc) => { out.backupCoverageWarn = ratio(v, key, doc); },
  drain_seconds: (out, v, key, doc) => { out.drainSeconds = integer(v, key, doc, 0, MAX_SECONDS); },
  switch_delay_seconds: (out, v, key, doc) => { out.switchDelaySeconds = integer(v, key, doc, 0, MAX_SECONDS); },
  unix_socket_mode: readMode,
  user: (out, v, key, doc) => { out.user = account(v, key, doc, 'user'); },
  group: (out, v, key, doc) => { out.group = account(v, key, doc, 'group'); },
  verbose: (out, v, key, doc) => { out.verbose = integer(v, key, doc, 0, MAX_INT); },
  tls: readTls,
  masters_tls: (out, v, key, doc) => { out.mastersTls = readServerTls(v, key, doc); },
  backups_tls: (out, v, key, doc) => { out.backupsTls = readServerTls(v, key, doc); },
  io: (out, v, key, doc) => {
    const s = string(v, key, doc, 'fast or portable');
    if (s !== 'fast' && s !== 'portable') throw new FileError(key, `${IO_EXPECTED}, got ${describe(v)}`, v);
    out.io = s satisfies IoMode;
  },
  // ---- authentication: paths of password files (memcached -Y format) ----
  auth_file: (out, v, key, doc) => { out.authFile = authPath(v, key, doc); },
  backend_auth_file: (out, v, key, doc) => { out.backendAuthFile = authPath(v, key, doc); },
  masters_auth_file: (out, v, key, doc) => { out.mastersAuthFile = authPath(v, key, doc); },
  backups_auth_file: (out, v, key, doc) => { out.backupsAuthFile = authPath(v, key, doc); },
};

function authPath(v: Node | null, key: string, doc: Document): string {
  const s = string(v, key, doc, 'the path of a user:password file');
  if (s === '') throw new FileError(key, 'expected the path of a user:password file, got an empty string', v);
  return s;
}

/** The key an operator may have meant, for an unknown key that is a flag's name or a near miss. */
const HINTS: Record<string, string> = {
  port: 'listen', host: 'listen', unix_socket: 'listen',
  server: 'masters', servers: 'masters', master: 'masters',
  backup: 'backups', timeout: 'timeout_ms', retry_interval: 'retry_interval_ms',
  ketama: 'distribution', thread: 'workers', threads: 'workers',
};

/** The keys of the file, for the example file's test. */
export const FILE_KEYS: readonly string[] = Object.keys(KEYS);

function readTop(doc: Document): FileConfig {
  const out: FileConfig = {};
  const top = deref(doc.contents, doc, '(top level)');
  // An empty file (or one of comments only) sets nothing.
  if (top === null || (isScalar(top) && top.value === null && top.tag === undefined)) return out;
  if (!isMap(top)) throw new FileError('(top level)', `expected a mapping of settings (key: value lines), got ${describe(top)}`, top);
  for (const pair of top.items as Array<Pair<unknown, unknown>>) {
    const key = keyName(pair, doc);
    const read = KEYS[key];
    if (read === undefined) throw new FileError(key, unknownKey(key, Object.keys(KEYS), HINTS), pair.key as Node);
    try {
      read(out, valueNode(pair, doc, key), key, doc);
    } catch (err) {
      // A missing value has no position of its own: point at its key.
      if (err instanceof FileError && err.node === null) throw new FileError(err.key, err.problem, pair.key as Node);
      throw err;
    }
  }
  return out;
}

function readListen(out: FileConfig, v: Node | null, key: string, doc: Document): void {
  const entries: Array<[string, Node | null, string]> = [];
  if (isSeq(v)) {
    if (v.items.length === 0) throw new FileError(key, 'expected an address or a list of addresses, got an empty list', v);
    v.items.forEach((item, i) => {
      const n = deref(item as Node, doc, `${key}[${i}]`);
      entries.push([`${key}[${i}]`, n, string(n, `${key}[${i}]`, doc, 'host:port or a socket path')]);
    });
  } else {
    entries.push([key, v, string(v, key, doc, 'host:port, a socket path, or a list of them')]);
  }
  let tcp: ListenAddress | null = null;
  let path: string | null = null;
  const extra: ListenAddress[] = [];
  const seen = new Set<string>();
  for (const [k, n, s] of entries) {
    const a = parseListenAddress(s, true);
    if (typeof a === 'string') throw new FileError(k, `${a}, got ${describe(n)}`, n);
    const id = a.path ?? `${a.host.toLowerCase()}:${a.port}`;
    if (seen.has(id)) throw new FileError(k, `${describe(n)} is listed twice`, n);
    seen.add(id);
    if (a.path === null && tcp === null) tcp = a;
    else if (a.path !== null && path === null) path = a.path;
    else extra.push(a);
  }
  // Merged as -l/-p/-f would give it: a list of socket paths only means no TCP (port 0).
  out.listen = Object.freeze({
    host: tcp?.host ?? DEFAULTS.host,
    port: tcp?.port ?? 0,
    path,
  });
  out.extraListen = Object.freeze(extra);
}

/** The client listeners' TLS: file paths and choices; config/tls.ts reads the files. */
function readTls(out: FileConfig, v: Node | null, key: string, doc: Document): void {
  const t = emptyTlsDraft();
  section(v, key, doc, {
    ...tlsKeys(t, doc),
    listen: (n, k) => {
      const items = isSeq(n) ? n.items.map((item, i) => [deref(item as Node, doc, `${k}[${i}]`), `${k}[${i}]`] as const) : [[n, k] as const];
      t.listen = [];
      for (const [node, name] of items) {
        const a = parseListenAddress(string(node, name, doc, 'host:port'), false);
        if (typeof a === 'string') throw new FileError(name, `${a}, got ${describe(node)}`, node);
        if (t.listen.some((l) => l.port === a.port && l.host.toLowerCase() === a.host.toLowerCase())) throw new FileError(name, `${describe(node)} is listed twice`, node);
        t.listen.push(a);
      }
    },
  });
  out.tls = t;
}

/** The keys a listener's TLS section shares (tls, admin_tls), read into `t`. */
function tlsKeys(t: TlsDraft, doc: Document): Record<string, (n: Node | null, key: string) => void> {
  return {
    cert: (n, k) => { t.cert = filePath(n, k, doc); },
    key: (n, k) => { t.key = filePath(n, k, doc); },
    ca: (n, k) => { t.ca = filePath(n, k, doc); },
    client_auth: (n, k) => { t.clientAuth = readClientAuth(n, k, doc); },
    min_version: (n, k) => { t.minVersion = tlsVersion(n, k, doc); },
  };
}

/** A pool's TLS toward its servers (masters_tls, backups_tls). */
function readServerTls(v: Node | null, key: string, doc: Document): ServerTlsDraft {
  const t = emptyServerTlsDraft();
  section(v, key, doc, {
    ca: (n, k) => { t.ca = filePath(n, k, doc); },
    cert: (n, k) => { t.cert = filePath(n, k, doc); },
    key: (n, k) => { t.key = filePath(n, k, doc); },
    servername: (n, k) => {
      const s = string(n, k, doc, 'a host name');
      if (!isHostName(s)) throw new FileError(k, `expected a host name, got ${describe(n)}`, n);
      t.servername = s;
    },
    min_version: (n, k) => { t.minVersion = tlsVersion(n, k, doc); },
  });
  return t;
}

function readClientAuth(n: Node | null, k: string, doc: Document): ClientAuth {
  const a = parseClientAuth(string(n, k, doc, 'none, optional or require'));
  if (a === null) throw new FileError(k, `${CLIENT_AUTH_EXPECTED}, got ${describe(n)}`, n);
  return a;
}

function tlsVersion(n: Node | null, k: string, doc: Document): TlsVersion {
  const m = parseTlsVersion(string(n, k, doc, 'TLSv1.2 or TLSv1.3'));
  if (m === null) throw new FileError(k, `${TLS_VERSION_EXPECTED}, got ${describe(n)}`, n);
  return m;
}

/** A byte count, as a number or a string with a k or m suffix (2m), MIN_ITEM_SIZE..max. */
function size(v: Node | null, key: string, max: number, expected: string): number {
  let n: number | null = null;
  if (isScalar(v) && typeof v.value === 'number' && Number.isSafeInteger(v.value)) n = v.value;
  else if (isScalar(v) && typeof v.value === 'string') n = parseSize(v.value);
  if (n === null || n < MIN_ITEM_SIZE || n > max) throw new FileError(key, `${expected}, got ${describe(v)}`, v);
  return n;
}

function readMode(out: FileConfig, v: Node | null, key: string): void {
  let n: number | null = null;
  if (isScalar(v) && typeof v.value === 'string') n = parseMode(v.value);
  // YAML 1.2 reads an unquoted 0660 as the decimal 660: only 0o660 is octal.
  else if (isScalar(v) && typeof v.value === 'number' && /^0o[0-7]+$/.test(v.source ?? '') && v.value <= 0o777) n = v.value;
  if (n === null) throw new FileError(key, `${MODE_EXPECTED}, quoted ('0660') or as 0o660; got ${describe(v)}`, v);
  out.unixSocketMode = n;
}

/** `other`: the other pool, when read already; a server in both is refused (see argv.ts backupIsMaster). */
function servers(v: Node | null, key: string, doc: Document, other: readonly ServerAddress[] | undefined, otherRole: string): ServerAddress[] {
  if (!isSeq(v)) throw new FileError(key, `expected a list of host:port, got ${describe(v)}`, v);
  const list: ServerAddress[] = [];
  v.items.forEach((item, i) => {
    const k = `${key}[${i}]`;
    const n = deref(item as Node, doc, k);
    const s = string(n, k, doc, 'host:port');
    const a = parseServerAddress(s);
    if (typeof a === 'string') throw new FileError(k, `${a}, got ${describe(n)}`, n);
    // The same server twice would take two slots of the hash (see options.ts addServer).
    if (list.some((x) => serverKey(x) === serverKey(a))) throw new FileError(k, `duplicate server '${a.name}'`, n);
    const twin = other?.find((x) => serverKey(x) === serverKey(a));
    if (twin !== undefined) throw new FileError(k, `'${a.name}' is also ${otherRole} server '${twin.name}': a backup must be another server`, n);
    list.push(a);
  });
  return list;
}

function section(v: Node | null, key: string, doc: Document, keys: Record<string, (n: Node | null, key: string) => void>): void {
  const names = Object.keys(keys);
  if (!isMap(v)) throw new FileError(key, `expected a mapping { ${names.join(', ')} }, got ${describe(v)}`, v);
  for (const pair of v.items as Array<Pair<unknown, unknown>>) {
    const sub = keyName(pair, doc, `${key}.`);
    const read = keys[sub];
    if (read === undefined) throw new FileError(`${key}.${sub}`, unknownKey(sub, names, {}), pair.key as Node);
    read(valueNode(pair, doc, `${key}.${sub}`), `${key}.${sub}`);
  }
}

function keyName(pair: Pair<unknown, unknown>, doc: Document, prefix = ''): string {
  const k = deref(pair.key as Node | null, doc, `${prefix}(key)`);
  if (isScalar(k) && typeof k.value === 'string') return k.value;
  throw new FileError(`${prefix}${describe(k)}`, 'expected a key name', k);
}

function unknownKey(key: string, known: readonly string[], hints: Record<string, string>): string {
  const normal = key.toLowerCase().replace(/-/g, '_');
  const hint = known.includes(normal) && normal !== key ? normal : hints[normal];
  return hint !== undefined ? `unknown key (did you mean ${hint}?)` : `unknown key (known: ${known.join(', ')})`;
}

/** A pair's value with aliases resolved; an empty value (`key:`) is a null scalar or null. */
function valueNode(pair: Pair<unknown, unknown>, doc: Document, key: string): Node | null {
  return deref(pair.value as Node | null, doc, key);
}

const CORE_TAGS = new Set([
  'tag:yaml.org,2002:str', 'tag:yaml.org,2002:int', 'tag:yaml.org,2002:float',
  'tag:yaml.org,2002:bool', 'tag:yaml.org,2002:null', 'tag:yaml.org,2002:map', 'tag:yaml.org,2002:seq',
]);

/**
 * Resolves an alias to the node it names, and refuses any tag outside the core
 * schema (yaml resolves a few YAML 1.1 tags, such as !!binary and !!set, by
 * default). The walk only descends where the key table expects a list or a
 * mapping, so a self-referencing alias cannot make it loop.
 */
function deref(node: Node | null | undefined, doc: Document, key: string): Node | null {
  if (node === null || node === undefined) return null;
  const n = isAlias(node) ? (node.resolve(doc) ?? null) : node;
  if (n !== null && n.tag !== undefined && !CORE_TAGS.has(n.tag)) {
    const tag = n.tag.replace(/^tag:yaml\.org,2002:/, '!!');
    throw new FileError(key, `tag ${quoteless(tag)} not allowed (the file holds plain values only)`, n);
  }
  return n;
}

/** A file's path: a non-empty string. */
function filePath(v: Node | null, key: string, doc: Document): string {
  const s = string(v, key, doc, 'a file path');
  if (s === '') throw new FileError(key, 'expected a file path, got an empty string', v);
  return s;
}

function string(v: Node | null, key: string, doc: Document, expected: string): string {
  if (isScalar(v) && typeof v.value === 'string') return v.value;
  throw new FileError(key, `expected ${expected}, got ${describe(v)}`, v);
}

function integer(v: Node | null, key: string, doc: Document, min: number, max: number): number {
  if (isScalar(v) && typeof v.value === 'number' && Number.isInteger(v.value) && v.value >= min && v.value <= max) return v.value;
  throw new FileError(key, `expected an integer ${min}..${max}, got ${describe(v)}`, v);
}

function ratio(v: Node | null, key: string, doc: Document): number {
  if (isScalar(v) && typeof v.value === 'number' && v.value >= 0 && v.value <= 1) return v.value;
  throw new FileError(key, `expected a number 0..1, got ${describe(v)}`, v);
}

function account(v: Node | null, key: string, doc: Document, what: 'user' | 'group'): string {
  if (isScalar(v) && typeof v.value === 'number' && Number.isInteger(v.value) && v.value >= 0 && v.value <= MAX_INT) return String(v.value);
  if (isScalar(v) && typeof v.value === 'string' && isAccountName(v.value)) return v.value;
  throw new FileError(key, `expected a ${what} name or numeric id, got ${describe(v)}`, v);
}

/** What a value was, for messages: the text as written for a scalar, else its kind. */
function describe(v: Node | null): string {
  if (v === null) return 'nothing';
  if (isMap(v)) return 'a mapping';
  if (isSeq(v)) return 'a list';
  if (isScalar(v)) {
    if (v.value === null) return 'nothing';
    if (typeof v.value === 'string') return `'${quoteless(v.value)}'`;
    return quoteless(v.source ?? String(v.value));
  }
  return 'a value';
}

/** Keeps a message on one line whatever the file or the command line holds. */
export function quoteless(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
