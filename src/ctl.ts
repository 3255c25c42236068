// mcrelay ctl drain|undrain|status HOST:PORT [--admin ADDR]: planned
// maintenance through a running mcrelay's admin listener (main/drain.ts).
// Prints the JSON answer; exit 0 on success, 1 when refused, 2 on bad usage.

import { ADMIN_ACCESS_USAGE, adminRequest, DEFAULT_ADMIN, noAdminAccess, parseAdmin, takeAdminAccess } from './admin-client.js';

const USAGE = `usage: mcrelay ctl drain|undrain|status HOST:PORT [--admin HOST:PORT] ${ADMIN_ACCESS_USAGE}`;

export async function ctl(args: readonly string[]): Promise<number> {
  const [action, server, ...rest] = args;
  let admin = DEFAULT_ADMIN;
  const access = noAdminAccess();
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    const took = takeAdminAccess(rest, i, access);
    if (typeof took === 'string') { process.stderr.write(`mcrelay ctl: ${took}\n${USAGE}\n`); return 2; }
    if (took !== null) { i = took; continue; }
    if (a === '--admin' && i + 1 < rest.length) admin = rest[++i]!;
    else if (a.startsWith('--admin=')) admin = a.slice(8);
    else { process.stderr.write(`mcrelay ctl: unknown argument '${a}'\n${USAGE}\n`); return 2; }
  }
  if ((action !== 'drain' && action !== 'undrain' && action !== 'status') || server === undefined) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const at = parseAdmin(admin);
  if (at === null) { process.stderr.write(`mcrelay ctl: --admin wants HOST:PORT, got '${admin}'\n`); return 2; }
  const path = `/servers/${encodeURIComponent(server)}${action === 'status' ? '' : `/${action}`}`;
  try {
    const { status, body } = await adminRequest(at, action === 'status' ? 'GET' : 'POST', path, access);
    process.stdout.write(body.endsWith('\n') ? body : `${body}\n`);
    if (status === 401) process.stderr.write(`mcrelay ctl: admin listener ${admin} wants its token: --admin-token-file FILE\n`);
    return status >= 200 && status < 300 ? 0 : 1;
  } catch (err) {
    process.stderr.write(`mcrelay ctl: admin listener ${admin}: ${(err as Error).message}\n`);
    return 1;
  }
}
