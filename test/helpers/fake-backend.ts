// A scripted memcached stand-in, for faults a real server cannot produce: a reply
// that is garbage, a reply torn in half, a server that accepts and never answers.
// It answers `version` normally (so the prober sees it up) and hands every other
// request line to `behaviour`.
import net from 'node:net';

export type Behaviour = (line: string, socket: net.Socket) => void;

export class FakeBackend {
  readonly server: net.Server;
  readonly sockets = new Set<net.Socket>();
  port = 0;
  /** request lines received, in order */
  readonly lines: string[] = [];

  constructor(public behaviour: Behaviour) {
    this.server = net.createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {});
      let buf = '';
      let skip = 0;
      socket.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        for (;;) {
          if (skip > 0) {
            const n = Math.min(skip, buf.length);
            buf = buf.slice(n);
            skip -= n;
            if (skip > 0) return;
          }
          const nl = buf.indexOf('\r\n');
          if (nl === -1) return;
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 2);
          const m = /^(?:set|add|replace|append|prepend|cas) \S+ \d+ -?\d+ (\d+)/.exec(line);
          if (m) skip = Number(m[1]) + 2;
          this.lines.push(line);
          if (line === 'version') socket.write('VERSION fake\r\n');
          else this.behaviour(line, socket);
        }
      });
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  get addr(): string { return `127.0.0.1:${this.port}`; }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}
