import { readFileSync } from 'node:fs';

import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { parseArgv } from '../../src/config/argv.js';
import { LONG_OPTIONS } from '../../src/config/options.js';
import type { Config, ServerAddress } from '../../src/config/config.js';

const ENV = { cpus: 6 };

function tcp(host: string, port: number): ServerAddress {
  return { name: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`, host, port, path: null };
}

function configOf(argv: readonly string[], env = ENV): Config {
  const r = parseArgv(argv, env);
  if (r.kind !== 'run') assert.unreachable(`${argv.join(' ')} -> ${JSON.stringify(r)}`);
  return (r as { config: Config }).config;
}

// A plain copy: deepEqual compares own fields, and the parsed config is frozen.
function plain(c: Config): unknown {
  return JSON.parse(JSON.stringify(c));
}

const DEFAULT_CONFIG: Config = {
  listen: { host: '127.0.0.1', port: 11211, path: null },
  extraListen: [],
  masters: [tcp('127.0.0.1', 11211)],
  backups: [],
  distribution: 'jump',
  workers: 6,
  maxConnections: 4096,
  connectionsPerServer: 1,
  timeoutMs: 1000,
  retryIntervalMs: 1000,
  failureLimit: 3,
  maxItemSize: 1048576,
  maxPendingBytes: 64 * 1048576,
  user: null,
  group: null,
  unixSocketMode: 0o660,
  verbose: 0,
  admin: { host: '127.0.0.1', port: 9121 },
  drainSeconds: 10,
  switchDelaySeconds: 10,
  warmupSeconds: 300,
  warmupDoneRatio: 0.01,
  journalMaxKeys: 1000000,
  restoreKeysPerSecond: 5000,
  restoreMaxInflight: 32,
  backupCoverageWarn: 0.95,
  io: 'fast',
  tls: null,
  configPath: null,
  adminTokenFile: null,
  adminTls: null,
  adminInsecure: false,
  clientUsers: null,
  mastersAuth: null,
  backupsAuth: null,
};

test('magent example command line keeps magent meaning', () => {
  const argv = ['-u', 'root', '-n', '102400', '-l', '127.0.0.1', '-p', '12000',
    '-s', '127.0.0.1:11211', '-s', '127.0.0.1:11212', '-b', '127.0.0.1:12002'];
  assert.equal(plain(configOf(argv)), {
    ...DEFAULT_CONFIG,
    listen: { host: '127.0.0.1', port: 12000, path: null },
    masters: [tcp('127.0.0.1', 11211), tcp('127.0.0.1', 11212)],
    backups: [tcp('127.0.0.1', 12002)],
    maxConnections: 102400,
    user: 'root',
  });
});

test('magent README example: bare host means port 11211, -v', () => {
  const c = configOf(['-s', '10.1.2.1', '-s', '10.1.2.2:11211', '-b', '10.1.2.3:14000', '-v']);
  assert.equal(c.masters.map((s) => s.name), ['10.1.2.1:11211', '10.1.2.2:11211']);
  assert.equal(c.backups.map((s) => s.name), ['10.1.2.3:14000']);
  assert.is(c.verbose, 1);
});

test('defaults', () => {
  assert.equal(plain(configOf(['-s', '127.0.0.1:11211'])), DEFAULT_CONFIG);
});

test('workers default to env.cpus, kept within 1..256', () => {
  assert.is(configOf(['-s', 'a'], { cpus: 1 }).workers, 1);
  assert.is(configOf(['-s', 'a'], { cpus: 12 }).workers, 12);
  assert.is(configOf(['-s', 'a'], { cpus: 0 }).workers, 1);
  assert.is(configOf(['-s', 'a'], { cpus: 1000 }).workers, 256);
  const n = configOf(['-s', 'a']).workers;
  assert.ok(n >= 1 && n <= 256);
  assert.is(parseArgv(['-s', 'a']).kind, 'run');
});

test('config is frozen', () => {
  const c = configOf(['-s', 'a', '-b', 'b']);
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.listen));
  assert.ok(Object.isFrozen(c.masters));
  assert.ok(Object.isFrozen(c.masters[0]));
  assert.ok(Object.isFrozen(c.backups));
});

// [argv after "-s m", what to read from the config, expected value]
type Row = [readonly string[], (c: Config) => unknown, unknown];

const port = (c: Config): unknown => c.listen.port;
const listen = (c: Config): unknown => c.listen;
const masters = (c: Config): unknown => c.masters.map((s) => s.name);
const backups = (c: Config): unknown => c.backups;
const dist = (c: Config): unknown => c.distribution;

const FLAGS: Row[] = [
  [['-p', '12000'], port, 12000],
  [['-p12000'], port, 12000],
  [['--port', '12000'], port, 12000],
  [['--port=12000'], port, 12000],
  [['-p', '1'], port, 1],
  [['-p', '65535'], port, 65535],
  [['-p', '1', '-p', '2'], port, 2],
  [['-l', '0.0.0.0'], listen, { host: '0.0.0.0', port: 11211, path: null }],
  [['-l0.0.0.0'], listen, { host: '0.0.0.0', port: 11211, path: null }],
  [['--listen', '::1'], listen, { host: '::1', port: 11211, path: null }],
  [['--listen=[::]'], listen, { host: '::', port: 11211, path: null }],
  [['--listen', 'localhost'], listen, { host: 'localhost', port: 11211, path: null }],
  [['-f', '/tmp/mcrelay.sock'], listen, { host: '127.0.0.1', port: 11211, path: '/tmp/mcrelay.sock' }],
  [['-f/tmp/mcrelay.sock'], listen, { host: '127.0.0.1', port: 11211, path: '/tmp/mcrelay.sock' }],
  [['--unix-socket', 'rel.sock'], listen, { host: '127.0.0.1', port: 11211, path: 'rel.sock' }],
  [['--unix-socket=/tmp/s'], listen, { host: '127.0.0.1', port: 11211, path: '/tmp/s' }],
  // magent's -p 0: no TCP listener, unix socket only
  [['-p', '0', '-f', '/tmp/s'], listen, { host: '127.0.0.1', port: 0, path: '/tmp/s' }],
  [['-f', '/tmp/s', '--port=0'], listen, { host: '127.0.0.1', port: 0, path: '/tmp/s' }],
  [['-s', 'n2:11212'], masters, ['m:11211', 'n2:11212']],
  [['-sn2:11212'], masters, ['m:11211', 'n2:11212']],
  [['--server', 'n2:11212'], masters, ['m:11211', 'n2:11212']],
  [['--server=n2:11212'], masters, ['m:11211', 'n2:11212']],
  [['--master', 'n2:11212'], masters, ['m:11211', 'n2:11212']],
  [['--master=n2:11212'], masters, ['m:11211', 'n2:11212']],
  [['-s', 'c', '-s', 'b', '--master', 'a'], masters, ['m:11211', 'c:11211', 'b:11211', 'a:11211']],
  [['-b', '10.0.0.9:12002'], backups, [tcp('10.0.0.9', 12002)]],
  [['-b10.0.0.9:12002'], backups, [tcp('10.0.0.9', 12002)]],
  [['--backup', '10.0.0.9'], backups, [tcp('10.0.0.9', 11211)]],
  [['--backup=b2:1', '-b', 'b1:1'], backups, [tcp('b2', 1), tcp('b1', 1)]],
  [['-n', '100'], (c) => c.maxConnections, 100],
  [['-n100'], (c) => c.maxConnections, 100],
  [['--max-connections', '100'], (c) => c.maxConnections, 100],
  [['--max-connections=100'], (c) => c.maxConnections, 100],
  [['-i', '4'], (c) => c.connectionsPerServer, 4],
  [['-i4'], (c) => c.connectionsPerServer, 4],
  [['--connections-per-server', '4'], (c) => c.connectionsPerServer, 4],
  [['--connections-per-server=20'], (c) => c.connectionsPerServer, 20],
  [['-k'], dist, 'ketama'],
  [['--ketama'], dist, 'ketama'],
  [['--distribution', 'jump'], dist, 'jump'],
  [['--distribution=ketama'], dist, 'ketama'],
  [['--distribution', 'magent'], dist, 'magent'],
  [['-k', '--distribution', 'jump'], dist, 'jump'],
  [['--distribution=magent', '-k'], dist, 'ketama'],
  [['-u', 'nobody'], (c) => c.user, 'nobody'],
  [['-unobody'], (c) => c.user, 'nobody'],
  [['--user', '65534'], (c) => c.user, '65534'],
  [['--user=memcache'], (c) => c.user, 'memcache'],
  [['-g', 'nogroup'], (c) => c.group, 'nogroup'],
  [['-gnogroup'], (c) => c.group, 'nogroup'],
  [['--group', '65534'], (c) => c.group, '65534'],
  [['--group=memcache'], (c) => c.group, 'memcache'],
  // mcrelay never forks into the background: -D is accepted and changes nothing.
  [['-D'], plain, plain(configOf(['-s', 'm']))],
  [['--foreground'], plain, plain(configOf(['-s', 'm']))],
  [['-v'], (c) => c.verbose, 1],
  [['-vv'], (c) => c.verbose, 2],
  [['-v', '-v', '-v'], (c) => c.verbose, 3],
  [['--verbose'], (c) => c.verbose, 1],
  [['--verbose', '-v', '--verbose'], (c) => c.verbose, 3],
  [['--workers', '3'], (c) => c.workers, 3],
  [['--workers=256'], (c) => c.workers, 256],
  [['--workers', '1'], (c) => c.workers, 1],
  [['--timeout', '250'], (c) => c.timeoutMs, 250],
  [['--timeout=2147483647'], (c) => c.timeoutMs, 2147483647],
  [['--retry-interval', '5000'], (c) => c.retryIntervalMs, 5000],
  [['--retry-interval=1'], (c) => c.retryIntervalMs, 1],
  [['--failure-limit', '1'], (c) => c.failureLimit, 1],
  [['--failure-limit=10'], (c) => c.failureLimit, 10],
  [['--max-item-size', '2m'], (c) => c.maxItemSize, 2 * 1024 * 1024],
  [['--max-item-size=2M'], (c) => c.maxItemSize, 2 * 1024 * 1024],
  [['--max-item-size', '512k'], (c) => c.maxItemSize, 512 * 1024],
  [['--max-item-size', '1K'], (c) => c.maxItemSize, 1024],
  [['--max-item-size', '4096'], (c) => c.maxItemSize, 4096],
  [['--max-item-size', '1024m'], (c) => c.maxItemSize, 1024 * 1024 * 1024],
  [['--max-pending-bytes', '256m'], (c) => c.maxPendingBytes, 256 * 1024 * 1024],
  [['--max-pending-bytes=2048'], (c) => c.maxPendingBytes, 2048],
  // grouped one-letter flags; a value-taking letter takes the rest of the group
  [['-vD'], plain, { ...plain(configOf(['-s', 'm'])) as object, verbose: 1 }],
  [['-Dvv'], (c) => c.verbose, 2],
  [['-kvp12000'], (c) => [c.distribution, c.verbose, c.listen.port], ['ketama', 1, 12000]],
  [['-kvp', '12000'], (c) => [c.distribution, c.verbose, c.listen.port], ['ketama', 1, 12000]],
  [['-vs10.0.0.2:11212'], masters, ['m:11211', '10.0.0.2:11212']],
  // -- ends the options
  [['-p', '12000', '--'], port, 12000],
];

test('each flag, short and long, attached and separate', () => {
  for (const [args, pick, expected] of FLAGS) {
    const got = pick(configOf(['-s', 'm', ...args]));
    assert.equal(got, expected, `${args.join(' ')}: ${JSON.stringify(got)}`);
  }
});

// [value of -s, expected ServerAddress]
const ADDRESSES: [string, ServerAddress][] = [
  ['127.0.0.1:11211', tcp('127.0.0.1', 11211)],
  ['127.0.0.1', tcp('127.0.0.1', 11211)],
  ['Cache-1.example.com:11300', tcp('Cache-1.example.com', 11300)],
  ['mc_1', tcp('mc_1', 11211)],
  ['[::1]:11212', tcp('::1', 11212)],
  ['[::1]', tcp('::1', 11211)],
  ['[fe80::1%eth0]:11211', tcp('fe80::1%eth0', 11211)],
  ['10.0.0.1:011211', tcp('10.0.0.1', 11211)],
  ['/var/run/memcached.sock', { name: '/var/run/memcached.sock', host: '', port: 0, path: '/var/run/memcached.sock' }],
];

test('server address forms', () => {
  for (const [value, expected] of ADDRESSES) {
    assert.equal(plain(configOf(['-s', value])), { ...DEFAULT_CONFIG, masters: [expected] }, value);
    assert.equal(JSON.parse(JSON.stringify(configOf(['-s', 'x', '-b', value]).backups)), [expected], value);
  }
});

const PORT_HELP = 'expected a port number 1..65535, or 0 with -f';
const INT_HELP = 'expected an integer 1..2147483647';
const SIZE_HELP = 'expected bytes 1024..1073741824, or with a k or m suffix (e.g. 2m)';
const ADDR_HELP = 'expected host:port';
const ADDR_PORT_HELP = 'expected host:port with a port 1..65535';
const IPV6_HELP = 'expected host:port; write an IPv6 address in brackets, e.g. [::1]:11211';
const BRACKET_HELP = 'expected host:port, with an IPv6 address as [addr]:port';

// [argv, exact message]
const ERRORS: [readonly string[], string][] = [
  [['-x'], "mcrelay: unknown option '-x' (see --help)"],
  [['-s', 'a', '-vx'], "mcrelay: unknown option '-x' (see --help)"],
  [['-c', 'magent.conf'], "mcrelay: unknown option '-c' (see --help)"],
  [['-d'], "mcrelay: unknown option '-d' (see --help)"],
  [['--bogus'], "mcrelay: unknown option '--bogus' (see --help)"],
  [['--bogus=1'], "mcrelay: unknown option '--bogus' (see --help)"],
  [['--Port', '1'], "mcrelay: unknown option '--Port' (see --help)"],
  [['--'], 'mcrelay: at least one master server (-s host:port) is required'],
  [[], 'mcrelay: at least one master server (-s host:port) is required'],
  [['-p', '12000', '-b', 'b'], 'mcrelay: at least one master server (-s host:port) is required'],
  [['-s', 'a', '-p'], "mcrelay: option '-p' requires a value"],
  [['-s', 'a', '-vs'], "mcrelay: option '-s' requires a value"],
  [['-s', 'a', '--port'], "mcrelay: option '--port' requires a value"],
  [['-s', 'a', '--workers'], "mcrelay: option '--workers' requires a value"],
  [['-s', 'a', '--ketama=yes'], "mcrelay: option '--ketama' does not take a value"],
  [['-s', 'a', '--verbose=2'], "mcrelay: option '--verbose' does not take a value"],
  [['-s', 'a', '-p', '0'], 'mcrelay: -p 0 turns TCP off, so a unix socket to listen on (-f path) is required'],
  [['-s', 'a', '-p', '65536'], `mcrelay: invalid value '65536' for -p: ${PORT_HELP}`],
  [['-s', 'a', '--port=abc'], `mcrelay: invalid value 'abc' for --port: ${PORT_HELP}`],
  [['-s', 'a', '-p', '-1'], `mcrelay: invalid value '-1' for -p: ${PORT_HELP}`],
  [['-s', 'a', '-p', '1e3'], `mcrelay: invalid value '1e3' for -p: ${PORT_HELP}`],
  [['-s', 'a', '-p', ' 80'], `mcrelay: invalid value ' 80' for -p: ${PORT_HELP}`],
  [['-s', 'a', '--port='], `mcrelay: invalid value '' for --port: ${PORT_HELP}`],
  [['-s', ''], `mcrelay: invalid value '' for -s: ${ADDR_HELP}`],
  [['-s', 'a:0'], `mcrelay: invalid value 'a:0' for -s: ${ADDR_PORT_HELP}`],
  [['-s', 'a:65536'], `mcrelay: invalid value 'a:65536' for -s: ${ADDR_PORT_HELP}`],
  [['-s', 'a:b'], `mcrelay: invalid value 'a:b' for -s: ${ADDR_PORT_HELP}`],
  [['-s', 'a:'], `mcrelay: invalid value 'a:' for -s: ${ADDR_PORT_HELP}`],
  [['-s', ':11211'], `mcrelay: invalid value ':11211' for -s: ${ADDR_HELP}`],
  [['-s', 'a b:1'], `mcrelay: invalid value 'a b:1' for -s: ${ADDR_HELP}`],
  [['-s', '-b'], `mcrelay: invalid value '-b' for -s: ${ADDR_HELP}`],
  [['-s', '::1'], `mcrelay: invalid value '::1' for -s: ${IPV6_HELP}`],
  [['-s', '::1:11211'], `mcrelay: invalid value '::1:11211' for -s: ${IPV6_HELP}`],
  [['-s', '[::1'], `mcrelay: invalid value '[::1' for -s: ${BRACKET_HELP}`],
  [['-s', '[::1]11211'], `mcrelay: invalid value '[::1]11211' for -s: ${BRACKET_HELP}`],
  [['-s', '[host]:1'], `mcrelay: invalid value '[host]:1' for -s: ${BRACKET_HELP}`],
  [['-s', '[::1]:0'], `mcrelay: invalid value '[::1]:0' for -s: ${ADDR_PORT_HELP}`],
  [['--master=a:0'], `mcrelay: invalid value 'a:0' for --master: ${ADDR_PORT_HELP}`],
  [['--server', 'a:x'], `mcrelay: invalid value 'a:x' for --server: ${ADDR_PORT_HELP}`],
  [['-s', 'a', '-b', 'b:x'], `mcrelay: invalid value 'b:x' for -b: ${ADDR_PORT_HELP}`],
  [['-s', 'a', '--backup='], `mcrelay: invalid value '' for --backup: ${ADDR_HELP}`],
  [['-s', 'a\nb'], `mcrelay: invalid value 'a\\x0ab' for -s: ${ADDR_HELP}`],
  [['-s', 'a:1', '-s', 'a:1'], "mcrelay: duplicate master server 'a:1' (-s a:1)"],
  [['-s', 'a', '-s', 'a:11211'], "mcrelay: duplicate master server 'a:11211' (-s a:11211)"],
  [['-s', 'Host:2', '--master', 'host:2'], "mcrelay: duplicate master server 'host:2' (--master host:2)"],
  [['-s', '[::1]', '-s', '[::1]:11211'], "mcrelay: duplicate master server '[::1]:11211' (-s [::1]:11211)"],
  [['-s', '/tmp/m', '-s', '/tmp/m'], "mcrelay: duplicate master server '/tmp/m' (-s /tmp/m)"],
  [['-s', 'x', '-b', 'a', '-b', 'A:11211'], "mcrelay: duplicate backup server 'A:11211' (-b A:11211)"],
  // issue 23: a backup that is a master gets every write twice, and a repair deletes the master's value
  [['-s', 'a:1', '-b', 'a:1'], "mcrelay: backup server 'a:1' is also master server 'a:1': a backup must be another server"],
  [['-b', 'Host', '-s', 'x:2', '-s', 'host:11211'], "mcrelay: backup server 'Host:11211' is also master server 'host:11211': a backup must be another server"],
  [['-s', '[::1]', '-b', '[::1]:11211'], "mcrelay: backup server '[::1]:11211' is also master server '[::1]:11211': a backup must be another server"],
  [['-s', '/tmp/m', '-b', '/tmp/m'], "mcrelay: backup server '/tmp/m' is also master server '/tmp/m': a backup must be another server"],
  [['-s', 'a', '-n', '0'], `mcrelay: invalid value '0' for -n: ${INT_HELP}`],
  [['-s', 'a', '-n', '2147483648'], `mcrelay: invalid value '2147483648' for -n: ${INT_HELP}`],
  [['-s', 'a', '--max-connections=-5'], `mcrelay: invalid value '-5' for --max-connections: ${INT_HELP}`],
  [['-s', 'a', '-i', '0'], `mcrelay: invalid value '0' for -i: ${INT_HELP}`],
  [['-s', 'a', '--connections-per-server', '1.5'], `mcrelay: invalid value '1.5' for --connections-per-server: ${INT_HELP}`],
  [['-s', 'a', '--timeout', '0'], `mcrelay: invalid value '0' for --timeout: ${INT_HELP}`],
  [['-s', 'a', '--timeout', '2147483648'], `mcrelay: invalid value '2147483648' for --timeout: ${INT_HELP}`],
  [['-s', 'a', '--retry-interval', '1s'], `mcrelay: invalid value '1s' for --retry-interval: ${INT_HELP}`],
  [['-s', 'a', '--failure-limit=0'], `mcrelay: invalid value '0' for --failure-limit: ${INT_HELP}`],
  [['-s', 'a', '--workers', '0'], "mcrelay: invalid value '0' for --workers: expected an integer 1..256"],
  [['-s', 'a', '--workers=257'], "mcrelay: invalid value '257' for --workers: expected an integer 1..256"],
  [['-s', 'a', '--max-item-size', '1023'], `mcrelay: invalid value '1023' for --max-item-size: ${SIZE_HELP}`],
  [['-s', 'a', '--max-item-size', '1025m'], `mcrelay: invalid value '1025m' for --max-item-size: ${SIZE_HELP}`],
  [['-s', 'a', '--max-item-size', '2g'], `mcrelay: invalid value '2g' for --max-item-size: ${SIZE_HELP}`],
  [['-s', 'a', '--max-item-size', '2mb'], `mcrelay: invalid value '2mb' for --max-item-size: ${SIZE_HELP}`],
  [['-s', 'a', '--max-item-size', 'm'], `mcrelay: invalid value 'm' for --max-item-size: ${SIZE_HELP}`],
  [['-s', 'a', '--max-pending-bytes', '1000'], "mcrelay: invalid value '1000' for --max-pending-bytes: expected bytes 1024..1099511627776, or with a k or m suffix (e.g. 64m)"],
  [['-s', 'a', '--distribution', 'modulo'], "mcrelay: invalid value 'modulo' for --distribution: expected jump, ketama or magent"],
  [['-s', 'a', '--distribution=Jump'], "mcrelay: invalid value 'Jump' for --distribution: expected jump, ketama or magent"],
  [['-s', 'a', '-l', ''], "mcrelay: invalid value '' for -l: expected an IP address or host name"],
  [['-s', 'a', '-l', '127.0.0.1:12000'], "mcrelay: invalid value '127.0.0.1:12000' for -l: expected an IP address or host name"],
  [['-s', 'a', '--listen', '[127.0.0.1]'], "mcrelay: invalid value '[127.0.0.1]' for --listen: expected an IP address or host name"],
  [['-s', 'a', '-f', ''], "mcrelay: invalid value '' for -f: expected a socket path"],
  [['-s', 'a', '-u', ''], "mcrelay: invalid value '' for -u: expected a user name or numeric id"],
  [['-s', 'a', '-u', '-n', '10'], "mcrelay: invalid value '-n' for -u: expected a user name or numeric id"],
  [['-s', 'a', '--group', '-x'], "mcrelay: invalid value '-x' for --group: expected a group name or numeric id"],
  [['-s', 'a', 'foo'], "mcrelay: unexpected argument 'foo' (see --help)"],
  [['-s', '10.0.0.1', '10.0.0.2'], "mcrelay: unexpected argument '10.0.0.2' (see --help)"],
  [['-s', 'a', '--', '-p', '1'], "mcrelay: unexpected argument '-p' (see --help)"],
  [['-s', 'a', '-'], "mcrelay: unexpected argument '-' (see --help)"],
];

test('errors: exact one-line messages', () => {
  for (const [argv, message] of ERRORS) {
    const r = parseArgv(argv, ENV);
    assert.equal(r, { kind: 'error', message }, argv.join(' '));
    assert.not.match(message, /\n/);
  }
});

const LONG_NAMES = [
  '--port', '--listen', '--server', '--master', '--backup', '--max-connections',
  '--connections-per-server', '--ketama', '--unix-socket', '--user', '--group',
  '--foreground', '--verbose', '--help', '--version', '--workers', '--timeout',
  '--retry-interval', '--failure-limit', '--max-item-size', '--distribution',
  '--config', '--admin', '--drain-seconds', '--switch-delay', '--warmup-seconds', '--warmup-done-ratio',
  '--journal-max-keys', '--unix-socket-mode', '--restore-keys-per-second', '--restore-max-inflight', '--max-pending-bytes', '--backup-coverage-warn',
  '--io', '--tls-cert', '--tls-key', '--tls-ca', '--tls-client-auth', '--tls-min-version', '--tls-listen',
  '--admin-token-file', '--admin-insecure', '--admin-tls-cert', '--admin-tls-key', '--admin-tls-ca',
  '--admin-tls-client-auth', '--admin-tls-min-version',
  '--auth-file', '--backend-auth-file', '--masters-auth-file', '--backups-auth-file',
];
// every flag magent 0.6 accepts (getopt "p:u:g:s:Dhvn:l:kb:f:i:"), with its long form
const MAGENT_FLAGS = [
  '-p, --port', '-l, --listen', '-s, --server', '-b, --backup', '-n, --max-connections',
  '-i, --connections-per-server', '-k, --ketama', '-f, --unix-socket', '-u, --user',
  '-g, --group', '-D, --foreground', '-v, --verbose', '-h, --help',
];

test('help: every option, defaults, the listen note, an example', () => {
  // the parser's table and this list agree, so a new option cannot skip the help
  assert.equal([...LONG_OPTIONS].sort(), [...LONG_NAMES].sort());
  for (const argv of [['-h'], ['--help'], ['-vh'], ['-s', 'a', '--help', '--bogus'], ['-p', '0', '-h']]) {
    const r = parseArgv(argv, ENV);
    assert.is(r.kind, 'help', argv.join(' '));
    const text = (r as { text: string }).text;
    for (const name of LONG_NAMES) assert.ok(text.includes(name), `help lacks ${name}`);
    for (const flags of MAGENT_FLAGS) assert.ok(text.includes(flags), `help lacks ${flags}`);
    assert.match(text, /^Usage: mcrelay /);
    assert.match(text, /default 127\.0\.0\.1/);
    assert.match(text, /Unlike magent, whose default was 0\.0\.0\.0/);
    assert.match(text, /default 11211/);
    assert.match(text, /default 4096/);
    assert.match(text, /6 here/);
    assert.match(text, /mcrelay -u root -n 102400 -l 127\.0\.0\.1 -p 12000/);
    assert.match(text, /^  mcrelay ctl drain\|undrain\|status HOST:PORT /m);
    assert.match(text, /^  mcrelay plan --config NEW\.yml \[--current OLD\.yml \| --admin HOST:PORT\]\n {15}\[--sample N\] \[--json\]$/m);
    for (const line of text.split('\n')) assert.ok(line.length <= 80, `help line over 80 columns: ${line}`);
  }
});

test('an error before -h wins, as getopt reads in order', () => {
  assert.equal(parseArgv(['--bogus', '-h'], ENV), { kind: 'error', message: "mcrelay: unknown option '--bogus' (see --help)" });
});

test('version: -V and --version print package.json version', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  for (const argv of [['-V'], ['--version'], ['-vV']]) {
    assert.equal(parseArgv(argv, ENV), { kind: 'version', text: `mcrelay ${pkg.version}\n` }, argv.join(' '));
  }
});

test.run();
