// A running mcrelay's admin listener (main/admin.ts), as the commands that
// talk to it see it: mcrelay ctl (drain, undrain, status) and mcrelay plan
// (GET /config, the pool running now).

import http from 'node:http';
import { DEFAULTS } from './config/config.js';

/** The admin listener mcrelay ctl and mcrelay plan talk to unless told (--admin). */
export const DEFAULT_ADMIN = `${DEFAULTS.admin.host}:${DEFAULTS.admin.port}`;

/** --admin's HOST:PORT ([addr]:port for IPv6), or null. */
export function parseAdmin(text: string): { host: string; port: number } | null {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text);
  return m === null ? null : { host: m[1]!, port: Number(m[2]) };
}

/** One request to an admin listener: its status and body; rejects when it cannot be reached or is silent 10 s. */
export function adminRequest(at: { host: string; port: number }, method: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: at.host, port: at.port, method, path, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end();
  });
}
