// A pipelined connection of the main thread's to one memcached server, for
// the restore's copies (main/restore.ts): meta requests out, replies matched by
// order, each a whole meta reply (a line; VA with its data block). Not the
// data path: a Promise per request is fine at the restore's rate.

import type net from 'node:net';
import { connectServer } from '../io/server-socket.js';
import type { ServerAddress } from '../config/config.js';
import { authAnswer, authRefusal, backendAuth } from '../backend/auth.js';
import { log } from '../log.js';
import { Code } from '../errors.js';

interface Pending { resolve: (reply: MetaReply | null) => void; at: number }

export interface MetaReply {
  /** the reply line without CRLF (latin1) */
  line: string;
  /** VA's data block */
  data: Buffer | null;
}

export class MetaClient {
  private readonly socket: net.Socket;
  private readonly pending: Pending[] = [];
  private input: Buffer = Buffer.alloc(0);
  private closed = false;
  private readonly timer: NodeJS.Timeout;
  /** the auth set went first (backend_auth_file) and its STORED has not come yet */
  private authing: boolean;

  constructor(private readonly address: ServerAddress, private readonly timeoutMs: number) {
    this.socket = connectServer(address).socket;
    const auth = backendAuth(address);
    this.authing = auth !== null;
    if (auth !== null) this.socket.write(auth);
    this.socket.setNoDelay(true);
    this.socket.on('data', (d: Buffer) => this.receive(d));
    this.socket.on('error', () => this.close());
    this.socket.on('close', () => this.close());
    // A reply that never comes fails everything pending: the caller decides what that means.
    this.timer = setInterval(() => {
      const head = this.pending[0];
      if (head !== undefined && Date.now() - head.at > this.timeoutMs) this.close();
    }, Math.max(10, timeoutMs >> 2));
    this.timer.unref();
  }

  get inflight(): number { return this.pending.length; }

  /** Sends one request; resolves with its reply, or null if the connection failed first. */
  request(bytes: Buffer | string): Promise<MetaReply | null> {
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.pending.push({ resolve, at: Date.now() });
      this.socket.write(bytes);
    });
  }

  private receive(d: Buffer): void {
    this.input = this.input.length === 0 ? d : Buffer.concat([this.input, d]);
    let pos = 0;
    if (this.authing) {
      const head = this.input.toString('latin1', 0, Math.min(this.input.length, 200));
      const a = authAnswer(head);
      if (a === 0) return;
      if (a < 0) {
        log.warn('server refused a connection of restore or sweep', { server: this.address.name, code: Code.BACKEND_AUTH, reason: authRefusal(head) });
        this.close();
        return;
      }
      this.authing = false;
      pos = a;
    }
    for (;;) {
      const nl = this.input.indexOf('\r\n', pos);
      if (nl < 0) break;
      const line = this.input.toString('latin1', pos, nl);
      let next = nl + 2;
      let data: Buffer | null = null;
      if (line.startsWith('VA ')) {
        const size = Number(line.split(' ')[1]);
        if (this.input.length < next + size + 2) break;
        data = Buffer.from(this.input.subarray(next, next + size));
        next += size + 2;
      }
      pos = next;
      this.pending.shift()?.resolve({ line, data });
    }
    this.input = pos === this.input.length ? Buffer.alloc(0) : this.input.subarray(pos);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.socket.destroy();
    for (const p of this.pending.splice(0)) p.resolve(null);
  }
}
