// The client listener on a unix socket (-f): what mcrelay does with what it
// finds at the path, the socket's mode and owner, what it leaves at exit, and
// that --auth-file holds there as on a TCP port.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { CLI, Proc, startMemcached, startProxy, waitForPort, PORTABLE_RUN } from '../helpers/procs.js';
import { WireClient } from '../helpers/wire.js';
import { loudHooks } from '../helpers/hooks.js';

// A suite of its own, not uvu's shared `test`: in portable mode it is never
// run, and a run of several files in one process must not run it either.
const test = suite();
loudHooks(test);

const procs: Proc[] = [];
test.after.each(async () => { for (const p of procs.splice(0)) await p.stop(); });

let mc: Proc | undefined;
test.before(async () => { mc = await startMemcached(); });
test.after(async () => { await mc?.stop(); fs.rmSync(dir, { recursive: true, force: true }); });

const asRoot = process.getuid?.() === 0;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcrelay-unix-'));
let n = 0;
const fresh = (): string => path.join(dir, `s${n++}.sock`);

async function proxyOn(sock: string, extra: string[] = []): Promise<Proc> {
  const p = await startProxy(['-s', mc!.addr, '--workers', '1', '-f', sock, ...extra]);
  procs.push(p);
  await waitForPort(sock);
  // SIGTERM before the handlers are set would kill it outright.
  assert.ok(await p.waitForOutput('"msg":"mcrelay started"'), p.output);
  return p;
}

/** mcrelay on the path, expected to refuse to start: its exit status and stderr. */
function refusedOn(sock: string): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, '-s', mc!.addr, '-p', '0', '-f', sock, '--admin', 'off'], { encoding: 'utf8', timeout: 10_000 });
  return { status: r.status, stderr: r.stderr };
}

async function version(sock: string): Promise<string> {
  const c = await WireClient.connectPath(sock);
  const r = await c.request('version\r\n');
  c.close();
  return r;
}

test('default mode 0660, serves, removed at SIGTERM', async () => {
  const sock = fresh();
  const p = await proxyOn(sock);
  const st = fs.lstatSync(sock);
  assert.ok(st.isSocket());
  assert.is(st.mode & 0o777, 0o660);
  assert.match(await version(sock), /^VERSION /);
  assert.match(p.output, new RegExp(`"listen":\\[[^\\]]*"${sock}"`), 'the start line names the path');
  assert.is(await p.stop('SIGTERM'), 0);
  assert.not.ok(fs.existsSync(sock));
  assert.equal(fs.readdirSync(dir).filter((f) => f.startsWith('.mcrelay-')), [], 'no temporary name left');
});

test('with --auth-file, a client on the socket authenticates first, as on a TCP port', async () => {
  const users = path.join(dir, `users${n++}.txt`);
  fs.writeFileSync(users, 'carol:unix-pw\n');
  const sock = fresh();
  await proxyOn(sock, ['--auth-file', users]);
  const refused = await WireClient.connectPath(sock);
  refused.write('get k\r\n');
  assert.is((await refused.readQuiet(300, 3000)).toString(), 'CLIENT_ERROR unauthenticated\r\n');
  assert.ok(refused.closed, 'closed after the refusal');
  const c = await WireClient.connectPath(sock);
  assert.is(await c.request('set auth 0 0 13\r\ncarol unix-pw\r\n'), 'STORED\r\n');
  assert.is(await c.request('set u 0 0 1\r\nu\r\nget u\r\n', 'END\r\n'), 'STORED\r\nVALUE u 0 1\r\nu\r\nEND\r\n');
  c.close();
});

test('--unix-socket-mode 0600', async () => {
  const sock = fresh();
  await proxyOn(sock, ['--unix-socket-mode', '0600']);
  assert.is(fs.lstatSync(sock).mode & 0o777, 0o600);
});

test('a regular file or a symlink at the path: refused, left as it was', () => {
  const file = fresh();
  fs.writeFileSync(file, 'precious');
  let r = refusedOn(file);
  assert.is(r.status, 1);
  assert.is(r.stderr, `mcrelay: unix socket ${file}: the path exists and is not a socket; not removed\n`);
  assert.is(fs.readFileSync(file, 'utf8'), 'precious');
  const link = fresh();
  fs.symlinkSync(file, link);
  r = refusedOn(link);
  assert.is(r.status, 1);
  assert.ok(fs.lstatSync(link).isSymbolicLink());
});

test('a socket another mcrelay answers on: refused; the first keeps it, and removes it at exit', async () => {
  const sock = fresh();
  const first = await proxyOn(sock);
  const r = refusedOn(sock);
  assert.is(r.status, 1);
  assert.is(r.stderr, `mcrelay: unix socket ${sock}: another process is listening on it\n`);
  assert.match(await version(sock), /^VERSION /, 'the first still answers');
  assert.is(await first.stop('SIGTERM'), 0);
  assert.not.ok(fs.existsSync(sock));
});

test('a stale socket (its process killed) is replaced', async () => {
  const sock = fresh();
  const holder = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)})`], { stdio: 'ignore' });
  const h = new Proc(holder, 0);
  procs.push(h);
  await waitForPort(sock);
  await h.stop('SIGKILL');
  assert.ok(fs.lstatSync(sock).isSocket(), 'a stale socket is left');
  const p = await proxyOn(sock);
  assert.match(await version(sock), /^VERSION /);
  assert.match(p.output, /replacing a stale unix socket/);
});

test('a missing directory says so', () => {
  const sock = path.join(dir, 'nodir', 'm.sock');
  const r = refusedOn(sock);
  assert.is(r.status, 1);
  assert.is(r.stderr, `mcrelay: unix socket ${sock}: directory ${path.dirname(sock)} does not exist\n`);
});

test('at exit the path is left alone if it is no longer mcrelay\'s socket', async () => {
  const sock = fresh();
  const p = await proxyOn(sock);
  fs.unlinkSync(sock);
  fs.writeFileSync(sock, 'someone else\'s');
  assert.is(await p.stop('SIGTERM'), 0);
  assert.is(fs.readFileSync(sock, 'utf8'), 'someone else\'s');
});

/** Whether a process of uid/gid can connect to the socket: 'ok' or the error code. */
function connectAs(sock: string, uid: number, gid: number): string {
  const script = `const s=require('net').connect(${JSON.stringify(sock)});s.on('connect',()=>{console.log('ok');s.destroy()});s.on('error',(e)=>console.log(e.code))`;
  return spawnSync(process.execPath, ['-e', script], { uid, gid, encoding: 'utf8', timeout: 10_000 }).stdout.trim();
}

test('with -u nobody: the socket is nobody\'s, its group connects, another uid does not, removed at exit', async () => {
  if (!asRoot) { console.log('    skipped: needs root'); return; }
  // A directory nobody may write to, so that it can remove its socket at exit.
  fs.chmodSync(dir, 0o755);
  const own = fs.mkdtempSync(path.join(dir, 'nobody-'));
  fs.chmodSync(own, 0o755);
  fs.chownSync(own, 65534, 65534);
  const sock = path.join(own, 'm.sock');
  const p = await proxyOn(sock, ['-u', 'nobody']);
  const st = fs.lstatSync(sock);
  assert.equal([st.uid, st.gid, st.mode & 0o777], [65534, 65534, 0o660]);
  assert.is(connectAs(sock, 65534, 65534), 'ok');
  assert.is(connectAs(sock, 4242, 65534), 'ok', 'a member of the socket\'s group');
  assert.is(connectAs(sock, 4242, 4242), 'EACCES');
  assert.is(await p.stop('SIGTERM'), 0);
  assert.not.ok(fs.existsSync(sock));
});

// Only the fast path has what this file tests (portable mode refuses it: io.test).
if (!PORTABLE_RUN) test.run();
