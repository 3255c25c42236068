// -u / -g as memcached applies them: supplementary groups cleared, then the gid,
// then the uid, on every thread (read from /proc/<pid>/task/*/status), also on a
// worker started after the drop; an unknown user or group stops the start
// before anything is bound.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { CLI, freePort, HARNESS, Proc, startMemcached, startProxy, PORTABLE_RUN } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { roundTrip } from '../helpers/mc.js';

// A suite of its own, not uvu's shared `test`: in portable mode it is never
// run, and a run of several files in one process must not run it either.
const test = suite();

const procs: Proc[] = [];
test.after.each(async () => { for (const p of procs.splice(0)) await p.stop(); });

const asRoot = process.getuid?.() === 0;

/** Per thread of pid: its Uid, Gid and Groups lines, tabs as spaces. */
function threadIds(pid: number): Array<{ tid: string; uid: string; gid: string; groups: string }> {
  return fs.readdirSync(`/proc/${pid}/task`).map((tid) => {
    const status = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    const field = (name: string): string => (new RegExp(`^${name}:(.*)$`, 'm').exec(status)?.[1] ?? '').trim().replace(/\s+/g, ' ');
    return { tid, uid: field('Uid'), gid: field('Gid'), groups: field('Groups') };
  });
}

/** Starts the harness as root with these supplementary groups (inherited from this process). */
async function proxyWithGroups(flags: string[], groups: number[]): Promise<Proc> {
  const mine = process.getgroups!();
  process.setgroups!(groups);
  try {
    const p = await startProxy(flags, { entry: HARNESS });
    procs.push(p);
    assert.ok(await p.waitForOutput('ready\n'), p.output);
    return p;
  } finally {
    process.setgroups!(mine);
  }
}

async function served(port: number, key: string): Promise<void> {
  const c = await WireClient.connect(port);
  assert.is((await roundTrip(c, `set ${key} 0 0 2\r\nok\r\n`)).line, 'STORED');
  assert.is((await roundTrip(c, `get ${key}\r\n`)).values[0]?.data.toString(), 'ok');
  c.close();
}

test('-u nobody -g nogroup, started with groups 0 4 42: every thread uid/gid 65534, no groups; so is a replacement worker', async () => {
  if (!asRoot) { console.log('    skipped: needs root'); return; }
  const mc = await startMemcached();
  procs.push(mc);
  const proxy = await proxyWithGroups(['-s', mc.addr, '--workers', '2', '-u', 'nobody', '-g', 'nogroup'], [0, 4, 42]);
  await served(proxy.port, 'p1');
  const before = threadIds(proxy.pid);
  // main, 2 workers, and Node's own threads
  assert.ok(before.length >= 3, `threads: ${before.length}`);
  for (const t of before) assert.equal(t, { tid: t.tid, uid: '65534 65534 65534 65534', gid: '65534 65534 65534 65534', groups: '' });
  proxy.signal('SIGUSR2');
  assert.ok(await proxy.waitForOutput('replaced\n'), proxy.output);
  assert.not.match(proxy.output, /not replaced/);
  const after = threadIds(proxy.pid);
  assert.ok(after.some((t) => !before.some((b) => b.tid === t.tid)), 'a new thread: the replacement');
  for (const t of after) assert.equal(t, { tid: t.tid, uid: '65534 65534 65534 65534', gid: '65534 65534 65534 65534', groups: '' });
  await served(proxy.port, 'p2');
  await served(proxy.port, 'p3');
  assert.match(proxy.output, /"msg":"dropped privileges"/);
});

test('-u nobody alone takes nobody\'s primary group; -g daemon takes that one', async () => {
  if (!asRoot) { console.log('    skipped: needs root'); return; }
  const mc = await startMemcached();
  procs.push(mc);
  const nobodyGid = spawnSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).stdout.trim();
  const daemonGid = spawnSync('getent', ['group', 'daemon'], { encoding: 'utf8' }).stdout.split(':')[2]!;
  for (const [flags, gid] of [[['-u', 'nobody'], nobodyGid], [['-u', 'nobody', '-g', 'daemon'], daemonGid]] as const) {
    const proxy = await proxyWithGroups(['-s', mc.addr, '--workers', '1', ...flags], [0, 4]);
    await served(proxy.port, 'g');
    for (const t of threadIds(proxy.pid)) {
      assert.is(t.gid, `${gid} ${gid} ${gid} ${gid}`, flags.join(' '));
      assert.is(t.groups, '', flags.join(' '));
    }
    await proxy.stop();
  }
});

test('an unknown user or group: exit 2 naming it, before anything is bound', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcrelay-priv-'));
  try {
    for (const [flag, name, message] of [
      ['-u', 'nosuchuser24', "mcrelay: unknown user 'nosuchuser24' (-u / user:)\n"],
      ['-g', 'nosuchgroup24', "mcrelay: unknown group 'nosuchgroup24' (-g / group:)\n"],
    ] as const) {
      const port = await freePort();
      const sock = path.join(dir, 'm.sock');
      const r = spawnSync(process.execPath, [CLI, '-s', '127.0.0.1:1', '-l', '127.0.0.1', '-p', String(port), '-f', sock, '--admin', 'off', flag, name],
        { encoding: 'utf8', timeout: 10_000 });
      assert.is(r.status, 2, r.stderr);
      assert.is(r.stderr, message);
      assert.not.ok(fs.existsSync(sock), 'no socket was made');
      const refused = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        s.on('connect', () => { s.destroy(); resolve(false); });
        s.on('error', () => resolve(true));
      });
      assert.ok(refused, 'nothing listened on the port');
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// Only the fast path has what this file tests (portable mode refuses it: io.test).
if (!PORTABLE_RUN) test.run();
