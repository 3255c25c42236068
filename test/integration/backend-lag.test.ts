// A turn of the event loop longer than the timeout is not a dead server.
//
// libuv runs due timers before it polls the sockets. When one turn runs long
// (a giant reply handed to its client, a GC pause, a machine that did not run
// the process), a backend connection's timeout check ran first after it and
// failed a request whose reply was already waiting, unread, in the socket: on
// a busy CI machine, giant-request.test saw its master "marked down: a write to
// it timed out". Driven here on one BackendConnection to a real memcached, with
// the turn made long on purpose, in both I/O paths.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BackendConnection, type PendingOp, type ReplyHandler } from '../../src/backend/connection.js';
import { parseServerAddress, type ServerAddress } from '../../src/config/config.js';
import { useIo } from '../../src/io/open-stream.js';
import { Expect } from '../../src/protocol/response-parser.js';
import { sleep, startMemcached, type Proc } from '../helpers/procs.js';

const TIMEOUT_MS = 300;
let mc: Proc;

test.before(async () => { mc = await startMemcached(); });
test.after(async () => { await mc.stop(); useIo('fast'); });

function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* the long turn */ }
}

for (const io of ['fast', 'portable'] as const) {
  test(`${io}: a reply that arrives during a ${TIMEOUT_MS * 2} ms turn is read, not timed out; a server that does not answer still times out`, async () => {
    useIo(io);
    const events: string[] = [];
    const handler: ReplyHandler = {
      onValue() { /* no retrievals here */ },
      onLine(_op, buf, start, end) { events.push(buf.toString('latin1', start, end).trimEnd()); },
      onFailed(_op, failure) { events.push(`failed (${failure})`); },
      retryable: () => false,
      onConnectionFailed() { /* onFailed tells it per op */ },
      schedule(c) { queueMicrotask(() => c.flush()); },
    };
    const conn = new BackendConnection(0, parseServerAddress(mc.addr) as ServerAddress, handler, TIMEOUT_MS, 1000, new Float64Array(64));
    const op = (): PendingOp => ({ kind: Expect.LINE, server: 0, conn: null, sentAt: 0, keyCount: 0, req: null });
    const send = (text: string): void => {
      conn.outbox.addAll(Buffer.from(text));
      conn.enqueue(op(), performance.now());
    };
    const answered = async (n: number): Promise<void> => {
      for (let i = 0; i < 300 && events.length < n; i++) await sleep(10);
    };
    try {
      send('version\r\n');
      await answered(1);
      assert.match(events[0] ?? '', /^VERSION /, 'the connection is open');

      send('version\r\n');
      // The flush (a microtask) goes first; the long turn is a check-phase one,
      // so that the loop's next phase is the timers' (a timer callback's turn
      // would not do: Node judges the due timers by the time its run began).
      await new Promise((resolve) => setImmediate(resolve));
      busy(TIMEOUT_MS * 2);
      await answered(2);
      assert.match(events[1] ?? '', /^VERSION /, 'answered');

      // What makes this test able to fail the other way: a stopped server times out.
      await mc.pause();
      try {
        send('version\r\n');
        await answered(3);
        assert.is(events[2], 'failed (1)', 'a server that does not answer: Failure.TIMEOUT');
      } finally {
        mc.signal('SIGCONT');
      }
    } finally {
      conn.close();
    }
  });
}

test.run();
