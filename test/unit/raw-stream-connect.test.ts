// RawStream.connect tries every address a host name resolves to, in order, until
// one connects: whether an address fails later (refused), at once (libuv's
// connect returns the error, as for an IPv6 address on a host without IPv6), or
// not at all (its packets are dropped: the next address after 250 ms).
//
// No name on the build machine resolves to several addresses and tests may not
// edit /etc/hosts, so dns.lookup answers for one made-up name here (every other
// name goes to the real one). The server is a real one on 127.0.0.1. The
// address that fails at once is 224.0.0.1: the kernel refuses a TCP connect to
// a multicast address before any packet is sent (ENETUNREACH). The address that
// never answers is a listener on 127.0.0.2 in a stopped child process whose
// accept queue is full: the kernel drops further SYNs.
import { spawn, type ChildProcess } from 'node:child_process';
import dns, { type LookupAddress } from 'node:dns';
import { syncBuiltinESMExports } from 'node:module';
import net, { type AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readArena } from '../../src/io/buffers.js';
import { RawStream } from '../../src/io/raw-stream.js';
import { streamError, type ConnectingOwner } from '../../src/io/stream.js';

const NAME = 'several.addresses.test';
let answer: LookupAddress[] = [];
const realLookup = dns.lookup;
let server: net.Server;
let port = 0;

test.before(async () => {
  (dns as { lookup: unknown }).lookup = (host: string, options: unknown, callback: (err: Error | null, addresses: LookupAddress[]) => void): void => {
    if (host !== NAME) return (realLookup as (...a: unknown[]) => void)(host, options, callback);
    process.nextTick(callback, null, answer);
  };
  syncBuiltinESMExports();
  server = net.createServer((s) => s.on('data', (d) => s.write(`echo:${d.toString('latin1')}`)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

test.after(async () => {
  (dns as { lookup: unknown }).lookup = realLookup;
  syncBuiltinESMExports();
  await new Promise((resolve) => server.close(resolve));
});

/** Connects to NAME:port, sends "hi", and tells what came back or why the stream closed. */
function exchange(addresses: LookupAddress[]): Promise<string> {
  answer = addresses;
  return new Promise((resolve) => {
    let reply = '';
    const owner: ConnectingOwner = {
      connected() { stream.write(Buffer.from('hi')); },
      receive(n) { reply += readArena.scratch.toString('latin1', 0, n); if (reply === 'echo:hi') stream.destroy(); },
      drained() {},
      ended() {},
      closed(status) { resolve(status === 0 ? reply : streamError('connect', status, `${NAME}:${port}`).message); },
    };
    const stream = RawStream.connect({ host: NAME, port, path: null }, owner);
  });
}

test('an address whose connect fails at once is skipped for the next one', async () => {
  assert.is(await exchange([{ address: '224.0.0.1', family: 4 }, { address: '127.0.0.1', family: 4 }]), 'echo:hi');
});

test('an address that refuses is skipped for the next one', async () => {
  // nothing listens on 127.0.0.2 at the server's port (the server is bound to 127.0.0.1)
  assert.is(await exchange([{ address: '127.0.0.2', family: 4 }, { address: '127.0.0.1', family: 4 }]), 'echo:hi');
});

test('an address whose packets are dropped is given up after a while for the next one', async () => {
  // A listener at 127.0.0.2 on the server's port that never accepts: its process is stopped.
  const child: ChildProcess = spawn(process.execPath, ['-e', `
    require('net').createServer().listen({ port: ${port}, host: '127.0.0.2', backlog: 1 }, () => process.stdout.write('up'));
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  const fillers: net.Socket[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`listener exited with ${code}`)));
    });
    child.kill('SIGSTOP');
    // Fill its accept queue: from now on a SYN to it gets no answer.
    for (let i = 0; i < 4; i++) fillers.push(net.connect(port, '127.0.0.2').on('error', () => {}));
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    assert.is(await exchange([{ address: '127.0.0.2', family: 4 }, { address: '127.0.0.1', family: 4 }]), 'echo:hi');
    const took = Date.now() - t0;
    assert.ok(took >= 200 && took < 2000, `connected after ${took} ms`);
  } finally {
    for (const f of fillers) f.destroy();
    child.kill('SIGKILL');
  }
});

test('when every address fails, the stream closes with the last one\'s error', async () => {
  assert.is(await exchange([{ address: '127.0.0.2', family: 4 }, { address: '224.0.0.1', family: 4 }]), `connect ENETUNREACH ${NAME}:${port}`);
});

test.run();
