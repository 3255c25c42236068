// The YAML config file (--config): what a valid file sets, the exact one-line
// message for each way a file can be wrong, flags over the file, and the example
// file in the repository.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { loadConfig, parseArgv } from '../../src/config/argv.js';
import type { Config } from '../../src/config/config.js';
import { FILE_KEYS, loadConfigFile, parseConfigText } from '../../src/config/file.js';
import { CLI, ROOT } from '../helpers/procs.js';

const ENV = { cpus: 6 };
const dir = mkdtempSync(path.join(tmpdir(), 'mcrelay-config-'));
const EXAMPLE = path.join(ROOT, 'mcrelay.example.yml');

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

function configOf(argv: readonly string[]): Config {
  const r = parseArgv(argv, ENV);
  if (r.kind !== 'run') assert.unreachable(`${argv.join(' ')} -> ${JSON.stringify(r)}`);
  return (r as { config: Config }).config;
}

function plain(x: unknown): unknown {
  return JSON.parse(JSON.stringify(x));
}

const tcp = (host: string, port: number) => ({ name: `${host}:${port}`, host, port, path: null });

const FULL = `# every key
listen: [127.0.0.1:12000, /tmp/mcrelay-test.sock, 127.0.0.1:12001]
workers: 3
masters: [10.0.0.1:11211, 10.0.0.2]
backups: [10.0.0.9:12002]
distribution: ketama
timeout_ms: 250
retry_interval_ms: 500
failure_limit: 5
max_connections: 100
connections_per_server: 2
max_item_size: 2m
max_pending_bytes: 32m
warmup: { seconds: 60, done_ratio: 0.05 }
restore: { keys_per_second: 800, max_inflight: 4 }
journal:
  max_keys: 5000
backup_coverage_warn: 0.5
admin: 0.0.0.0:9200
admin_token_file: /etc/mcrelay/admin.token
admin_tls: { cert: /etc/mcrelay/admin.pem, key: /etc/mcrelay/admin.key, ca: /etc/mcrelay/ca.pem, client_auth: require, min_version: TLSv1.3 }
admin_insecure: false
drain_seconds: 3
switch_delay_seconds: 4
unix_socket_mode: '0600'
user: nobody
group: 65534
verbose: 1
io: portable
`;

test('a file with every key gives every setting', () => {
  const file = write('full.yml', FULL);
  const c = configOf(['--config', file]);
  assert.equal(plain(c), {
    listen: { host: '127.0.0.1', port: 12000, path: '/tmp/mcrelay-test.sock' },
    extraListen: [{ host: '127.0.0.1', port: 12001, path: null }],
    masters: [tcp('10.0.0.1', 11211), tcp('10.0.0.2', 11211)],
    backups: [tcp('10.0.0.9', 12002)],
    distribution: 'ketama',
    workers: 3,
    maxConnections: 100,
    connectionsPerServer: 2,
    timeoutMs: 250,
    retryIntervalMs: 500,
    failureLimit: 5,
    maxItemSize: 2 * 1024 * 1024,
    user: 'nobody',
    group: '65534',
    unixSocketMode: 0o600,
    verbose: 1,
    admin: { host: '0.0.0.0', port: 9200 },
    drainSeconds: 3,
    switchDelaySeconds: 4,
    warmupSeconds: 60,
    warmupDoneRatio: 0.05,
    journalMaxKeys: 5000,
    restoreKeysPerSecond: 800,
    restoreMaxInflight: 4,
    io: 'portable',
    maxPendingBytes: 32 * 1024 * 1024,
    backupCoverageWarn: 0.5,
    tls: null,
    configPath: file,
    adminTokenFile: '/etc/mcrelay/admin.token',
    adminTls: { cert: '/etc/mcrelay/admin.pem', key: '/etc/mcrelay/admin.key', ca: '/etc/mcrelay/ca.pem', clientAuth: 'require', minVersion: 'TLSv1.3' },
    adminInsecure: false,
    clientUsers: null,
    mastersAuth: null,
    backupsAuth: null,
  });
  assert.ok(Object.isFrozen(c));
});

test('password files: auth_file for clients, backend_auth_file for both pools unless a pool names its own; flags over the file', () => {
  const users = write('users.txt', 'alice:a1\nbob:b2\n');
  const both = write('both.txt', 'svc:s1\n');
  const backups = write('backups.txt', 'bsvc:s2\n');
  const file = write('auth.yml', `masters: [a:1]\nbackups: [b:1]\nauth_file: ${users}\nbackend_auth_file: ${both}\nbackups_auth_file: ${backups}\n`);
  const c = configOf(['--config', file]);
  assert.equal(plain(c.clientUsers), { path: users, users: [{ user: 'alice', password: 'a1' }, { user: 'bob', password: 'b2' }] });
  assert.equal(plain(c.mastersAuth), { path: both, users: [{ user: 'svc', password: 's1' }] });
  assert.equal(plain(c.backupsAuth), { path: backups, users: [{ user: 'bsvc', password: 's2' }] });
  const flags = configOf(['--config', file, '--auth-file', both, '--masters-auth-file', backups]);
  assert.is(flags.clientUsers!.path, both);
  assert.is(flags.mastersAuth!.path, backups);
  const none = configOf(['-s', 'a']);
  assert.equal([none.clientUsers, none.mastersAuth, none.backupsAuth], [null, null, null]);
  // A bad path or file is the configuration's error: one line, naming the file.
  assert.equal(parseArgv(['--config', write('auth-empty.yml', 'masters: [a:1]\nauth_file: ""\n')], ENV).kind, 'error');
  const bad = write('bad-users.txt', 'alice\n');
  assert.equal(parseArgv(['-s', 'a', '--backups-auth-file', bad], ENV), { kind: 'error', message: `mcrelay: ${bad}:1: backups_auth_file: expected user:password` });
  assert.equal(parseArgv(['-s', 'a', '--auth-file='], ENV), { kind: 'error', message: "mcrelay: invalid value '' for --auth-file: expected the path of a user:password file" });
});

test('defaults of the new settings, without a file', () => {
  const c = configOf(['-s', 'a']);
  assert.equal(plain({
    extraListen: c.extraListen, admin: c.admin, drainSeconds: c.drainSeconds, warmupSeconds: c.warmupSeconds,
    warmupDoneRatio: c.warmupDoneRatio, journalMaxKeys: c.journalMaxKeys, configPath: c.configPath,
    backupCoverageWarn: c.backupCoverageWarn,
  }), {
    extraListen: [], admin: { host: '127.0.0.1', port: 9121 }, drainSeconds: 10, warmupSeconds: 300,
    warmupDoneRatio: 0.01, journalMaxKeys: 1000000, configPath: null, backupCoverageWarn: 0.95,
  });
});

test('new flags', () => {
  const c = configOf(['-s', 'a', '--admin', '[::1]:9300', '--drain-seconds=0', '--warmup-seconds', '0',
    '--warmup-done-ratio', '.5', '--journal-max-keys', '7', '--backup-coverage-warn', '0.8']);
  assert.equal(plain(c.admin), { host: '::1', port: 9300 });
  assert.is(c.drainSeconds, 0);
  assert.is(c.warmupSeconds, 0);
  assert.is(c.warmupDoneRatio, 0.5);
  assert.is(c.journalMaxKeys, 7);
  assert.is(c.backupCoverageWarn, 0.8);
  assert.equal(parseArgv(['-s', 'a', '--backup-coverage-warn', '1.5'], ENV), { kind: 'error', message: "mcrelay: invalid value '1.5' for --backup-coverage-warn: expected a number 0..1 (e.g. 0.95)" });
  assert.is(configOf(['-s', 'a', '--admin=off']).admin, null);
  assert.is(configOf(['-s', 'a']).unixSocketMode, 0o660);
  assert.is(configOf(['-s', 'a', '--unix-socket-mode', '600']).unixSocketMode, 0o600);
  assert.is(configOf(['-s', 'a', '--unix-socket-mode=0666']).unixSocketMode, 0o666);
  assert.equal(parseArgv(['-s', 'a', '--unix-socket-mode', '0860'], ENV), { kind: 'error', message: "mcrelay: invalid value '0860' for --unix-socket-mode: expected an octal mode 000..777, e.g. 0660" });
  assert.is(configOf(['-s', 'a', '--config', write('mode.yml', 'unix_socket_mode: 0o640\n')]).unixSocketMode, 0o640);
});

test('listen forms: one address, a socket only, a list', () => {
  const one = configOf(['--config', write('l1.yml', 'listen: 0.0.0.0:12000\nmasters: [a]\n')]);
  assert.equal(plain(one.listen), { host: '0.0.0.0', port: 12000, path: null });
  assert.equal(plain(one.extraListen), []);
  // A socket path only: no TCP, as -p 0 -f would say.
  const sock = configOf(['--config', write('l2.yml', 'listen: ./relay.sock\nmasters: [a]\n')]);
  assert.equal(plain(sock.listen), { host: '127.0.0.1', port: 0, path: './relay.sock' });
  const list = configOf(['--config', write('l3.yml', 'listen: ["[::1]:1", /a.sock, /b.sock, 127.0.0.1:2]\nmasters: [a]\n')]);
  assert.equal(plain(list.listen), { host: '::1', port: 1, path: '/a.sock' });
  assert.equal(plain(list.extraListen), [{ host: '', port: 0, path: '/b.sock' }, { host: '127.0.0.1', port: 2, path: null }]);
});

test('flags override the file, wherever --config stands', () => {
  const file = write('over.yml', FULL);
  for (const argv of [
    ['--config', file, '-p', '13000', '-s', 'x:1', '-b', 'y:2', '--timeout', '9', '--admin', 'off', '-k'],
    ['-p', '13000', '-s', 'x:1', '-b', 'y:2', '--timeout', '9', '--admin', 'off', '-k', '--config', file],
  ]) {
    const c = configOf(argv);
    // -p replaces the port of the first address only; the rest of the list stays.
    assert.equal(plain(c.listen), { host: '127.0.0.1', port: 13000, path: '/tmp/mcrelay-test.sock' });
    assert.equal(plain(c.extraListen), [{ host: '127.0.0.1', port: 12001, path: null }]);
    // The first -s / -b replaces the file's list rather than adding to it.
    assert.equal(c.masters.map((s) => s.name), ['x:1']);
    assert.equal(c.backups.map((s) => s.name), ['y:2']);
    assert.is(c.timeoutMs, 9);
    assert.is(c.admin, null);
    assert.is(c.distribution, 'ketama');
    // What the flags leave alone comes from the file.
    assert.is(c.workers, 3);
    assert.is(c.journalMaxKeys, 5000);
  }
  // -v replaces the file's level; two -s add to each other, not to the file's list.
  const c = configOf(['--config', file, '-vv', '-s', 'p', '-s', 'q']);
  assert.is(c.verbose, 2);
  assert.equal(c.masters.map((s) => s.name), ['p:11211', 'q:11211']);
  // -l and -f replace their part of the first address.
  const l = configOf(['--config', file, '-l', '0.0.0.0', '-f', '/other.sock']);
  assert.equal(plain(l.listen), { host: '0.0.0.0', port: 12000, path: '/other.sock' });
  // A flag that makes the first address equal a later one leaves a single listener.
  const same = configOf(['--config', file, '-p', '12001']);
  assert.equal(plain(same.listen), { host: '127.0.0.1', port: 12001, path: '/tmp/mcrelay-test.sock' });
  assert.equal(plain(same.extraListen), []);
});

test('a file without masters needs -s; flags are checked before the file is read', () => {
  const file = write('nomasters.yml', 'workers: 2\n');
  assert.equal(parseArgv(['--config', file], ENV), { kind: 'error', message: 'mcrelay: at least one master server (-s host:port) is required' });
  assert.is(configOf(['--config', file, '-s', 'a']).workers, 2);
  const bad = write('bad-late.yml', 'workers: x\n');
  assert.is(parseArgv(['--config', bad, '-h'], ENV).kind, 'help');
  assert.equal(parseArgv(['--config', bad, '--bogus'], ENV), { kind: 'error', message: "mcrelay: unknown option '--bogus' (see --help)" });
});

// [file text, exact message after "mcrelay: <file>"]
const FILE_ERRORS: [string, string][] = [
  ['bogus: 1\n', ':1: bogus: unknown key (known: listen, workers, masters, backups, distribution, timeout_ms, retry_interval_ms, failure_limit, max_connections, connections_per_server, max_item_size, max_pending_bytes, warmup, restore, journal, admin, admin_token_file, admin_insecure, admin_tls, backup_coverage_warn, drain_seconds, switch_delay_seconds, unix_socket_mode, user, group, verbose, tls, masters_tls, backups_tls, io, auth_file, backend_auth_file, masters_auth_file, backups_auth_file)'],
  ['masters: [a]\ntimeout: 5\n', ':2: timeout: unknown key (did you mean timeout_ms?)'],
  ['timeout-ms: 5\n', ':1: timeout-ms: unknown key (did you mean timeout_ms?)'],
  ['server: [a]\n', ':1: server: unknown key (did you mean masters?)'],
  ['port: 12000\n', ':1: port: unknown key (did you mean listen?)'],
  ['warmup: { seconds: 1, ratio: 0.1 }\n', ':1: warmup.ratio: unknown key (known: seconds, done_ratio)'],
  ['tls: { certificate: a.pem }\n', ':1: tls.certificate: unknown key (known: cert, key, ca, client_auth, min_version, listen)'],
  ['tls: { client_auth: yes }\n', ":1: tls.client_auth: expected none, optional or require, got 'yes'"],
  ['tls:\n  min_version: TLSv1.1\n', ":2: tls.min_version: expected TLSv1.2 or TLSv1.3, got 'TLSv1.1'"],
  ['tls: { listen: [127.0.0.1] }\n', ":1: tls.listen[0]: expected host:port (the port is required), got '127.0.0.1'"],
  ['tls: { listen: [/tmp/s.sock] }\n', ":1: tls.listen[0]: expected host:port, got '/tmp/s.sock'"],
  ['tls: { cert: "" }\n', ":1: tls.cert: expected a file path, got an empty string"],
  ['masters_tls: { verify: no }\n', ':1: masters_tls.verify: unknown key (known: ca, cert, key, servername, min_version)'],
  ['backups_tls: { servername: "a b" }\n', ":1: backups_tls.servername: expected a host name, got 'a b'"],
  ['workers: "4"\n', ":1: workers: expected an integer 1..256, got '4'"],
  ['workers: 0\n', ':1: workers: expected an integer 1..256, got 0'],
  ['workers: 2.5\n', ':1: workers: expected an integer 1..256, got 2.5'],
  ['workers:\n', ':1: workers: expected an integer 1..256, got nothing'],
  ['timeout_ms: 2147483648\n', ':1: timeout_ms: expected an integer 1..2147483647, got 2147483648'],
  ['retry_interval_ms: true\n', ':1: retry_interval_ms: expected an integer 1..2147483647, got true'],
  ['failure_limit: [1]\n', ':1: failure_limit: expected an integer 1..2147483647, got a list'],
  ['max_connections: -1\n', ':1: max_connections: expected an integer 1..2147483647, got -1'],
  ['max_item_size: 2g\n', ":1: max_item_size: expected bytes 1024..1073741824, or with a k or m suffix (e.g. 2m), got '2g'"],
  ['drain_seconds: 3000000\n', ':1: drain_seconds: expected an integer 0..2147483, got 3000000'],
  ['warmup: 300\n', ':1: warmup: expected a mapping { seconds, done_ratio }, got 300'],
  ['warmup:\n  done_ratio: 1.5\n', ':2: warmup.done_ratio: expected a number 0..1, got 1.5'],
  ['journal: { max_keys: 0 }\n', ':1: journal.max_keys: expected an integer 1..2147483647, got 0'],
  ['distribution: modulo\n', ":1: distribution: expected jump, ketama or magent, got 'modulo'"],
  ['masters: []\n', ':1: masters: expected at least one master server'],
  ['masters:\n', ':1: masters: expected a list of host:port, got nothing'],
  ['masters: 10.0.0.1:11211\n', ":1: masters: expected a list of host:port, got '10.0.0.1:11211'"],
  ['masters:\n  - a:1\n  - a:0\n', ":3: masters[1]: expected host:port with a port 1..65535, got 'a:0'"],
  ['masters: [a:1, A:1]\n', ":1: masters[1]: duplicate server 'A:1'"],
  ['masters: [a:1, b:2]\nbackups: [c:3, B:2]\n', ":2: backups[1]: 'B:2' is also master server 'b:2': a backup must be another server"],
  ['backups: [a:1]\nmasters:\n  - b:2\n  - a:1\n', ":4: masters[1]: 'a:1' is also backup server 'a:1': a backup must be another server"],
  ['masters: [a]\nbackups: ["::1"]\n', ":2: backups[0]: expected host:port; write an IPv6 address in brackets, e.g. [::1]:11211, got '::1'"],
  ['masters: [11211]\n', ':1: masters[0]: expected host:port, got 11211'],
  ['listen: 127.0.0.1\n', ":1: listen: expected host:port (the port is required), got '127.0.0.1'"],
  ['listen: []\n', ':1: listen: expected an address or a list of addresses, got an empty list'],
  ['listen: [a:1, "a b:2"]\n', ":1: listen[1]: expected host:port, got 'a b:2'"],
  ['listen: [a:1, A:1]\n', ":1: listen[1]: 'A:1' is listed twice"],
  ['listen: 12000\n', ':1: listen: expected host:port, a socket path, or a list of them, got 12000'],
  ['admin: on\n', ":1: admin: expected host:port (the port is required) (or off), got 'on'"],
  ['admin: /run/admin.sock\n', ":1: admin: expected host:port (or off), got '/run/admin.sock'"],
  ['admin_token_file: ""\n', ':1: admin_token_file: expected a file path, got an empty string'],
  ['admin_insecure: yes\n', ":1: admin_insecure: expected true or false, got 'yes'"],
  ['admin_tls: { cert: a.pem }\n', ':1: admin_tls: expected both cert and key'],
  ['admin_tls: { cert: a.pem, key: a.key, client_auth: require }\n', ':1: admin_tls: client_auth: require needs ca (the CA client certificates are checked against)'],
  ['admin_tls: { cert: a.pem, key: a.key, client_auth: yes }\n', ":1: admin_tls.client_auth: expected none, optional or require, got 'yes'"],
  ['admin_tls: { cert: a.pem, key: a.key, min_version: TLSv1.1 }\n', ":1: admin_tls.min_version: expected TLSv1.2 or TLSv1.3, got 'TLSv1.1'"],
  ['admin_tls: { cert: a.pem, key: a.key, sni: x }\n', ':1: admin_tls.sni: unknown key (known: cert, key, ca, client_auth, min_version)'],
  ['unix_socket_mode: 0660\n', ":1: unix_socket_mode: expected an octal mode 000..777, e.g. 0660, quoted ('0660') or as 0o660; got 0660"],
  ['unix_socket_mode: "rw"\n', ":1: unix_socket_mode: expected an octal mode 000..777, e.g. 0660, quoted ('0660') or as 0o660; got 'rw'"],
  ['user: -root\n', ":1: user: expected a user name or numeric id, got '-root'"],
  ['workers: 1\nworkers: 2\n', ':2: workers: given twice'],
  ['workers: !!str 4\n', ":1: workers: expected an integer 1..256, got '4'"],
  ['workers: !!js/function "function () {}"\n', ':1: workers: tag !!js/function not allowed (the file holds plain values only)'],
  ['masters: !!binary aGk=\n', ':1: masters: tag !!binary not allowed (the file holds plain values only)'],
  ['masters: !custom [a]\n', ':1: masters: tag !custom not allowed (the file holds plain values only)'],
  ['masters: [a:1\n', ':2: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]'],
  ['workers: 1\n  masters: [a]\n', ':1: YAML syntax error: Nested mappings are not allowed in compact mappings'],
  ['- a:1\n', ':1: (top level): expected a mapping of settings (key: value lines), got a list'],
  ['just text\n', ":1: (top level): expected a mapping of settings (key: value lines), got 'just text'"],
  ['1: 2\n', ':1: 1: expected a key name'],
  ['a: 1\n---\nb: 2\n', ':2: YAML syntax error: Source contains multiple documents; please use YAML.parseAllDocuments()'],
];

test('a bad file: one line naming the file, the line, the key and the problem', () => {
  FILE_ERRORS.forEach(([text, message], i) => {
    const file = write(`bad-${i}.yml`, text);
    const r = parseArgv(['-s', 'x', '--config', file], ENV);
    assert.equal(r, { kind: 'error', message: `mcrelay: ${file}${message}` }, JSON.stringify(text));
    assert.not.match((r as { message: string }).message, /\n/);
  });
});

test('an unreadable file', () => {
  const missing = path.join(dir, 'missing.yml');
  assert.equal(parseArgv(['--config', missing], ENV), { kind: 'error', message: `mcrelay: ${missing}: cannot read the config file: no such file` });
  assert.equal(loadConfigFile(dir), { error: `${dir}: cannot read the config file: is a directory` });
  assert.equal(parseArgv(['--config='], ENV), { kind: 'error', message: "mcrelay: invalid value '' for --config: expected a file path" });
});

test('new flags: exact errors', () => {
  const ERRORS: [string[], string][] = [
    [['--admin', 'on'], "mcrelay: invalid value 'on' for --admin: expected host:port or off"],
    [['--admin', '127.0.0.1'], "mcrelay: invalid value '127.0.0.1' for --admin: expected host:port or off"],
    [['--admin', '127.0.0.1:0'], "mcrelay: invalid value '127.0.0.1:0' for --admin: expected host:port or off"],
    [['--drain-seconds', '-1'], "mcrelay: invalid value '-1' for --drain-seconds: expected an integer 0..2147483"],
    [['--warmup-seconds', '1h'], "mcrelay: invalid value '1h' for --warmup-seconds: expected an integer 0..2147483"],
    [['--warmup-done-ratio', '1.5'], "mcrelay: invalid value '1.5' for --warmup-done-ratio: expected a number 0..1 (e.g. 0.01)"],
    [['--warmup-done-ratio', '1e-2'], "mcrelay: invalid value '1e-2' for --warmup-done-ratio: expected a number 0..1 (e.g. 0.01)"],
    [['--journal-max-keys', '0'], "mcrelay: invalid value '0' for --journal-max-keys: expected an integer 1..2147483647"],
    [['--admin-token-file='], "mcrelay: invalid value '' for --admin-token-file: expected a file path"],
    [['--admin-tls-client-auth', 'yes'], "mcrelay: invalid value 'yes' for --admin-tls-client-auth: expected none, optional or require"],
    [['--admin-tls-min-version', '1.3'], "mcrelay: invalid value '1.3' for --admin-tls-min-version: expected TLSv1.2 or TLSv1.3"],
    [['--admin-tls-cert', 'a.pem'], 'mcrelay: admin_tls needs both cert and key (--admin-tls-cert, --admin-tls-key)'],
    [['--admin-tls-ca', 'ca.pem'], 'mcrelay: admin_tls settings without cert and key (--admin-tls-cert, --admin-tls-key)'],
    [['--admin-tls-cert', 'a.pem', '--admin-tls-key', 'a.key', '--admin-tls-client-auth', 'optional'],
      'mcrelay: admin_tls client_auth optional needs ca (--admin-tls-ca): the CA client certificates are checked against'],
  ];
  for (const [argv, message] of ERRORS) assert.equal(parseArgv(['-s', 'a', ...argv], ENV), { kind: 'error', message }, argv.join(' '));
});

test('an admin listener off loopback needs a token, or admin_insecure written out', () => {
  const refused = (at: string): string => `mcrelay: the admin listener ${at} is not on a loopback address and has no token: set admin_token_file (--admin-token-file), or write admin_insecure: true (--admin-insecure) to serve it to anyone who can reach it`;
  assert.equal(parseArgv(['-s', 'a', '--admin', '0.0.0.0:9121'], ENV), { kind: 'error', message: refused('0.0.0.0:9121') });
  assert.equal(parseArgv(['-s', 'a', '--admin', '[::]:9121'], ENV), { kind: 'error', message: refused('[::]:9121') });
  assert.equal(parseArgv(['-s', 'a', '--admin', '10.1.2.3:9121'], ENV), { kind: 'error', message: refused('10.1.2.3:9121') });
  assert.equal(parseArgv(['-s', 'a', '--admin', 'admin.example.com:9121'], ENV), { kind: 'error', message: refused('admin.example.com:9121') });
  const insecure = write('insecure.yml', 'masters: [a:1]\nadmin: 0.0.0.0:9121\nadmin_insecure: true\n');
  assert.is(configOf(['--config', insecure]).adminInsecure, true);
  assert.is(configOf(['-s', 'a', '--admin', '0.0.0.0:9121', '--admin-insecure']).adminInsecure, true);
  const token = configOf(['-s', 'a', '--admin', '0.0.0.0:9121', '--admin-token-file', 'admin.token']);
  assert.is(token.adminTokenFile, path.resolve('admin.token'), 'a relative path is taken from the working directory');
  for (const at of ['127.0.0.1:9121', '127.9.8.7:9121', '[::1]:9121', 'localhost:9121', 'off']) {
    assert.is(parseArgv(['-s', 'a', '--admin', at], ENV).kind, 'run', at);
  }
  assert.is(configOf(['-s', 'a']).adminTokenFile, null, 'the default admin listener needs no token');
});

test('loadConfig (SIGHUP): reads the file again under the same flags', () => {
  const file = write('reload.yml', 'masters: [a:1]\ntimeout_ms: 100\n');
  const argv = ['--config', file, '--workers', '2'];
  const first = loadConfig(argv, ENV);
  assert.ok('config' in first);
  assert.is((first as { config: Config }).config.timeoutMs, 100);
  writeFileSync(file, 'masters: [a:1, b:2]\ntimeout_ms: 200\nworkers: 8\n');
  const second = loadConfig(argv, ENV) as { config: Config };
  assert.equal(second.config.masters.map((s) => s.name), ['a:1', 'b:2']);
  assert.is(second.config.timeoutMs, 200);
  assert.is(second.config.workers, 2, 'the flag still overrides the file');
  writeFileSync(file, 'masters: []\n');
  assert.equal(loadConfig(argv, ENV), { error: `mcrelay: ${file}:1: masters: expected at least one master server` });
});

test('the example file parses, documents every key, and gives the defaults it claims', () => {
  const text = readFileSync(EXAMPLE, 'utf8');
  const r = parseConfigText(text, 'mcrelay.example.yml');
  assert.ok('config' in r, JSON.stringify(r));
  for (const key of FILE_KEYS) assert.match(text, new RegExp(`^(# )?${key}:`, 'm'), `example lacks ${key}`);
  const c = configOf(['--config', EXAMPLE]);
  assert.equal(plain(c.listen), { host: '127.0.0.1', port: 12000, path: null });
  assert.equal(c.masters.map((s) => s.name), ['127.0.0.1:11211', '127.0.0.1:11212']);
  assert.equal(c.backups.map((s) => s.name), ['127.0.0.1:12002']);
  assert.is(c.workers, 4);
  // Every other value it shows is the default.
  const defaults = configOf(['-s', 'a']);
  for (const k of ['distribution', 'timeoutMs', 'retryIntervalMs', 'failureLimit', 'maxConnections', 'connectionsPerServer',
    'maxItemSize', 'maxPendingBytes', 'warmupSeconds', 'warmupDoneRatio', 'journalMaxKeys', 'drainSeconds', 'switchDelaySeconds', 'verbose', 'user', 'group', 'backupCoverageWarn'] as const) {
    assert.equal(c[k], defaults[k], k);
  }
  assert.equal(plain(c.admin), plain(defaults.admin));
});

test('the CLI refuses a bad file with exit status 2 and starts nothing', () => {
  const file = write('cli-bad.yml', 'masters: [a:1]\nworkers: many\n');
  const r = spawnSync(process.execPath, [CLI, '--config', file], { encoding: 'utf8', timeout: 10_000 });
  assert.is(r.status, 2);
  assert.is(r.stderr, `mcrelay: ${file}:2: workers: expected an integer 1..256, got 'many'\n`);
  assert.is(r.stdout, '');
});

test('a backup given as a flag over the file\'s masters is refused when it is one of them', () => {
  const file = write('twin.yml', 'masters: [127.0.0.1:11211]\n');
  const r = parseArgv(['--config', file, '-b', '127.0.0.1'], ENV);
  assert.equal(r, { kind: 'error', message: "mcrelay: backup server '127.0.0.1:11211' is also master server '127.0.0.1:11211': a backup must be another server" });
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
