// The client-library matrix (issue 14 item 4): each library people use runs the
// same operations against memcached and through mcrelay, and the application
// must see the same results; then a master is killed and each library must still
// read every key it wrote.
//
//   driver (php, python, perl, go, java, ruby, node; text and binary) --ops--> reference memcached
//   driver --ops, write, read--> mcrelay --workers 2 --> master 1, master 2, backup
//
// A driver (drivers/) prints one "name result" line per operation. One set of
// servers and one mcrelay serve every library, in phases: every library's ops
// (each starts with a flush), then every library's 20 writes, then master 1 is
// killed and every library reads its 20 keys back. A library whose package is
// missing is reported and left out here; with MCRELAY_CLIENTS_REQUIRED=1 (CI)
// that is a failure.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT, startMemcached, startProxy, type Proc } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';

const DRIVERS = path.join(ROOT, 'test/clients/drivers');
const BUILT_DRIVERS = path.join(ROOT, 'dist/test/clients/drivers');
const REQUIRED = process.env['MCRELAY_CLIENTS_REQUIRED'] === '1';
/** Debian's python3, whose dist-packages hold the packaged libraries (not a pyenv's) */
const PYTHON = '/usr/bin/python3';
const SPY_JAR = '/usr/share/java/spymemcached.jar';
const GOPATH = '/usr/share/gocode';
const RUN_TIMEOUT_MS = 60_000;

interface Lib {
  name: string;
  /** key prefix: every library has keys of its own */
  prefix: string;
  /** why it cannot run here (a package missing), or null */
  missing(): string | null;
  /** the command for one phase against addr */
  command(addr: string, phase: string): [string, string[]];
  /** CORE results this library gets otherwise, against memcached too */
  core?: Record<string, string>;
}

/** scratch directory for the Go and Java builds */
let work = '';

function succeeds(cmd: string, args: string[], env?: NodeJS.ProcessEnv): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 120_000, env: { ...process.env, ...env } });
  return r.status === 0;
}

function python(lib: string, module: string, pkg: string, binary = false): Lib {
  return {
    name: `${pkg}${binary ? ' (binary)' : ''}`,
    prefix: `${lib}${binary ? 'b' : ''}:`,
    missing: () => succeeds(PYTHON, ['-c', `import ${module}`]) ? null : `${pkg} is not installed (${PYTHON} cannot import ${module})`,
    command: (addr, phase) => [PYTHON, [path.join(DRIVERS, 'python.py'), lib, addr, `${lib}${binary ? 'b' : ''}:`, phase, ...(binary ? ['binary'] : [])]],
  };
}

function php(binary: boolean): Lib {
  const prefix = binary ? 'phpb:' : 'php:';
  return {
    name: `php-memcached${binary ? ' (binary)' : ''}`,
    prefix,
    missing: () => succeeds('php', ['-r', 'exit(class_exists("Memcached") ? 0 : 1);']) ? null : 'php-memcached is not installed',
    command: (addr, phase) => ['php', [path.join(DRIVERS, 'php-memcached.php'), addr, prefix, phase, ...(binary ? ['binary'] : [])]],
  };
}

function spy(binary: boolean): Lib {
  const prefix = binary ? 'spyb:' : 'spy:';
  return {
    name: `libspymemcached-java${binary ? ' (BinaryConnectionFactory)' : ''}`,
    prefix,
    missing: () => {
      if (!existsSync(SPY_JAR)) return 'libspymemcached-java is not installed';
      javaBuilt ??= succeeds('javac', ['-d', work, '-cp', SPY_JAR, path.join(DRIVERS, 'Spy.java')]);
      return javaBuilt ? null : 'the Java driver does not build (default-jdk-headless missing?)';
    },
    command: (addr, phase) => ['java', ['-cp', `${work}:${SPY_JAR}`, 'Spy', addr, prefix, phase, ...(binary ? ['binary'] : [])]],
  };
}

let goBuilt: boolean | null = null;
let javaBuilt: boolean | null = null;

const LIBS: Lib[] = [
  php(false),
  php(true),
  python('pylibmc', 'pylibmc', 'python3-pylibmc'),
  python('pylibmc', 'pylibmc', 'python3-pylibmc', true),
  python('memcache', 'memcache', 'python3-memcache'),
  python('pymemcache', 'pymemcache', 'python3-pymemcache'),
  {
    name: 'libcache-memcached-fast-perl',
    prefix: 'perl:',
    missing: () => succeeds('perl', ['-MCache::Memcached::Fast', '-e', '1']) ? null : 'libcache-memcached-fast-perl is not installed',
    command: (addr, phase) => ['perl', [path.join(DRIVERS, 'perl-fast.pl'), addr, 'perl:', phase]],
  },
  {
    name: 'golang-github-bradfitz-gomemcache-dev',
    prefix: 'go:',
    missing: () => {
      if (!existsSync(path.join(GOPATH, 'src/github.com/bradfitz/gomemcache'))) return 'golang-github-bradfitz-gomemcache-dev is not installed';
      // Debian's Go in GOPATH mode, the way the package is meant to be used.
      goBuilt ??= succeeds('go', ['build', '-o', path.join(work, 'gomemcache'), path.join(DRIVERS, 'gomemcache.go')],
        { GOPATH, GO111MODULE: 'off', GOCACHE: path.join(work, 'gocache'), GOFLAGS: '' });
      return goBuilt ? null : 'the Go driver does not build (golang-go missing?)';
    },
    command: (addr, phase) => [path.join(work, 'gomemcache'), [addr, 'go:', phase]],
  },
  spy(false),
  spy(true),
  {
    name: 'ruby-dalli (binary)',
    prefix: 'rb:',
    missing: () => succeeds('ruby', ['-e', 'require "dalli"']) ? null : 'ruby-dalli (or ruby) is not installed',
    command: (addr, phase) => ['ruby', [path.join(DRIVERS, 'dalli.rb'), addr, 'rb:', phase]],
  },
  {
    name: 'memcached (npm)',
    prefix: 'npm:',
    missing: () => null,
    command: (addr, phase) => [process.execPath, [path.join(BUILT_DRIVERS, 'node-memcached.js'), addr, 'npm:', phase]],
  },
  {
    name: 'memjs (npm, binary)',
    prefix: 'memjs:',
    missing: () => null,
    command: (addr, phase) => [process.execPath, [path.join(BUILT_DRIVERS, 'node-memjs.js'), addr, 'memjs:', phase]],
    // memjs 1.3's prepend puts the data after the value, against memcached too.
    core: { get_c: 'delta+-' },
  },
];

/** What every library must see, on memcached and through mcrelay alike. */
const CORE: Record<string, string> = {
  get_a: 'alpha', get_missing: 'miss', multi: 'a=alpha,b=beta', get_c: '-delta+', incr: '15', decr: '13',
  get_a2: 'alpha2', get_deleted: 'miss', get_flushed: 'miss',
};
const OPS = ['flush', 'set_a', 'get_a', 'get_missing', 'set_b', 'multi', 'add_existing', 'add_new', 'replace_missing',
  'replace', 'append', 'prepend', 'get_c', 'set_n', 'incr', 'decr', 'incr_missing', 'cas', 'cas_stale', 'get_a2',
  'delete', 'delete_missing', 'get_deleted', 'touch', 'touch_missing', 'version', 'stats', 'flush_all', 'get_flushed'];

function run(lib: Lib, addr: string, phase: string): Promise<Map<string, string>> {
  const [cmd, args] = lib.command(addr, phase);
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: RUN_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${lib.name} ${phase} against ${addr}: ${err.message}\n${stdout}${stderr}`));
        return;
      }
      const out = new Map<string, string>();
      for (const line of stdout.split('\n')) {
        if (line === '') continue;
        const sp = line.indexOf(' ');
        out.set(line.slice(0, sp), line.slice(sp + 1));
      }
      resolve(out);
    });
  });
}

let ref: Proc | undefined;
let m1: Proc | undefined;
let m2: Proc | undefined;
let backup: Proc | undefined;
let proxy: Proc | undefined;
/** libraries that can run here */
const ready: Lib[] = [];

test.before(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), 'mcrelay-clients-'));
  [ref, m1, m2, backup] = await Promise.all([startMemcached(), startMemcached(), startMemcached(), startMemcached()]);
  proxy = await startProxy(['-s', m1.addr, '-s', m2.addr, '-b', backup.addr, '--workers', '2', '--timeout', '1000', '--retry-interval', '200']);
});

test.after(async () => {
  await Promise.all([proxy?.stop(), ref?.stop(), m1?.stop(), m2?.stop(), backup?.stop()]);
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

for (const lib of LIBS) {
  test(`${lib.name}: the same results through mcrelay as from memcached`, async () => {
    const why = lib.missing();
    if (why !== null) {
      process.stdout.write(`\n  ${lib.name} not run: ${why}\n`);
      if (REQUIRED) assert.unreachable(`${lib.name}: ${why}`);
      return;
    }
    ready.push(lib);
    const direct = await run(lib, ref!.addr, 'ops');
    const relayed = await run(lib, proxy!.addr, 'ops');
    assert.equal([...direct.keys()], OPS, `${lib.name} ran every operation against memcached`);
    for (const [op, want] of Object.entries({ ...CORE, ...lib.core })) assert.is(direct.get(op), want, `${lib.name} ${op} against memcached`);
    for (const op of OPS) assert.is(relayed.get(op), direct.get(op), `${lib.name} ${op}: mcrelay vs memcached`);
  });
}

test('every library writes 20 keys through mcrelay, spread over both masters', async () => {
  assert.ok(ready.length > 0, 'some library ran');
  const onM1 = await WireClient.connect(m1!.port);
  try {
    for (const lib of ready) {
      assert.is((await run(lib, proxy!.addr, 'write')).get('write'), '20', lib.name);
      const keys = Array.from({ length: 20 }, (_, i) => `${lib.prefix}p${i}`);
      const got = await onM1.request(`get ${keys.join(' ')}\r\n`, 'END\r\n');
      // 20 keys over two masters: the chance that none is on master 1 is 2^-20.
      assert.ok(got.includes('VALUE '), `${lib.name} has keys on master 1 (the one killed next)`);
    }
  } finally {
    onM1.close();
  }
});

test('master 1 killed: every library still reads every key it wrote, one by one and in one multi-get', async () => {
  await m1!.stop();
  for (const lib of ready) {
    const got = await run(lib, proxy!.addr, 'read');
    assert.is(got.get('read'), '20', `${lib.name} get`);
    assert.is(got.get('read_multi'), '20', `${lib.name} multi-get`);
  }
});

test.run();
