// mcrelay ctl drain|undrain|status HOST:PORT [--admin ADDR]: planned
// maintenance through a running mcrelay's admin listener (main/drain.ts).
// Prints the JSON answer; exit 0 on success, 1 when refused, 2 on bad usage.

import http from 'node:http';
import { DEFAULTS } from './config/config.js';

const USAGE = 'usage: mcrelay ctl drain|undrain|status HOST:PORT [--admin HOST:PORT]';

export async function ctl(args: readonly string[]): Promise<number> {
  const [action, server, ...rest] = args;
  let admin = DEFAULTS.admin === null ? '127.0.0.1:9121' : `${DEFAULTS.admin.host}:${DEFAULTS.admin.port}`;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--admin' && i + 1 < rest.length) admin = rest[++i]!;
    else if (a.startsWith('--admin=')) admin = a.slice(8);
    else { process.stderr.write(`mcrelay ctl: unknown argument '${a}'\n${USAGE}\n`); return 2; }
  }
  if ((action !== 'drain' && action !== 'undrain' && action !== 'status') || server === undefined) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(admin);
  if (m === null) { process.stderr.write(`mcrelay ctl: --admin wants HOST:PORT, got '${admin}'\n`); return 2; }
  const path = `/servers/${encodeURIComponent(server)}${action === 'status' ? '' : `/${action}`}`;
  try {
    const { status, body } = await request(m[1]!, Number(m[2]), action === 'status' ? 'GET' : 'POST', path);
    process.stdout.write(body.endsWith('\n') ? body : `${body}\n`);
    return status >= 200 && status < 300 ? 0 : 1;
  } catch (err) {
    process.stderr.write(`mcrelay ctl: admin listener ${admin}: ${(err as Error).message}\n`);
    return 1;
  }
}

function request(host: string, port: number, method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method, path, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end();
  });
}
