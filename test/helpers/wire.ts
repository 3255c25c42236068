// A raw text-protocol client for tests: sends literal bytes, collects the reply.
import net from 'node:net';
import tls from 'node:tls';

export class WireClient {
  readonly socket: net.Socket;
  /**
   * What has arrived and not been taken: `store`'s first `len` bytes. The store
   * grows by doubling, so a 30 MB reply read in 64 KiB pieces is copied about
   * twice, not once per piece (a Buffer.concat per 'data' event copied ~7 GB
   * for the giant get of limits.test, and ran out its 30 s on a busy machine).
   */
  private store: Buffer = Buffer.alloc(0);
  private len = 0;
  private get buf(): Buffer { return this.store.subarray(0, this.len); }
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      if (this.len === 0) {
        this.store = d;
      } else {
        if (this.len + d.length > this.store.length) {
          const grown = Buffer.allocUnsafe(Math.max(2 * this.store.length, this.len + d.length));
          this.store.copy(grown, 0, 0, this.len);
          this.store = grown;
        }
        d.copy(this.store, this.len);
      }
      this.len += d.length;
      this.wake();
    });
    socket.on('close', () => { this.closed = true; this.wake(); });
    socket.on('error', () => { /* surfaced as close */ });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<WireClient> {
    return WireClient.open(() => net.connect(port, host));
  }

  /** A client of a server listening on a unix socket. */
  static connectPath(path: string): Promise<WireClient> {
    return WireClient.open(() => net.connect(path));
  }

  /** A TLS client: resolves once the handshake completed, rejects with its error (tls.connect's options: ca, cert, key...). */
  static connectTls(port: number, options: tls.ConnectionOptions = {}): Promise<WireClient> {
    return WireClient.open(() => tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...options }), 'secureConnect');
  }

  private static open(connect: () => net.Socket, ready: 'connect' | 'secureConnect' = 'connect'): Promise<WireClient> {
    return new Promise((resolve, reject) => {
      const s = connect();
      s.setNoDelay(true);
      s.once(ready, () => resolve(new WireClient(s)));
      s.once('error', reject);
      // A TLS peer that closes without an alert ends the handshake with no error.
      s.once('close', () => reject(new Error('closed before the connection was ready')));
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  write(data: string | Buffer): void { this.socket.write(data); }

  /** Sends the input in pieces, each a separate write with a pause between. */
  async writeSplit(data: Buffer, at: number[]): Promise<void> {
    let prev = 0;
    for (const cut of [...at, data.length]) {
      if (cut > prev) {
        this.socket.write(data.subarray(prev, cut));
        await new Promise((r) => setTimeout(r, 1));
      }
      prev = cut;
    }
  }

  /** Waits until `done(bytes so far)` is true, the socket closes, or the timeout passes. */
  async readUntil(done: (b: Buffer) => boolean, timeoutMs = 3000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this.buf) && !this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
    return this.take();
  }

  /** Collects everything that arrives until no byte has come for quietMs. */
  async readQuiet(quietMs = 150, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    let seen = -1;
    while (Date.now() < deadline && !this.closed) {
      if (this.buf.length === seen) break;
      seen = this.buf.length;
      await new Promise((r) => setTimeout(r, quietMs));
    }
    return this.take();
  }

  /** Everything that has arrived, handed over: later bytes go to a new store. */
  private take(): Buffer {
    const out = this.buf;
    this.store = Buffer.alloc(0);
    this.len = 0;
    return out;
  }

  /** Sends a request and reads until the reply ends with `terminator` (default: a line). */
  async request(data: string | Buffer, terminator = '\r\n', timeoutMs = 3000): Promise<string> {
    this.write(data);
    const t = Buffer.from(terminator);
    const b = await this.readUntil((x) => x.length >= t.length && x.subarray(x.length - t.length).equals(t), timeoutMs);
    return b.toString('latin1');
  }

  close(): void { this.socket.destroy(); }
}
