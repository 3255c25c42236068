// Two entries of the server lists that reach one server under different names
// (127.0.0.1:P and localhost:P, [::1]:P and [0:0::1]:P, a socket path through a
// symlink). argv.ts refuses entries that are equal as written; this finds the
// rest by resolving names, which needs DNS and so runs before start and before a
// reload takes effect, not while parsing.
//
// Why it matters: a backup that is a master gets every write twice and its
// repairs delete the master's own value; one server under two master names takes
// two slots of the hash, so two proxies given differently written lists route
// keys differently.

import { lookup } from 'node:dns/promises';
import { realpath } from 'node:fs/promises';
import { isIPv6 } from 'node:net';
import { normalize } from 'node:path';

import type { ServerAddress } from './config.js';

/** A host's addresses; [] when it does not resolve (it may later: not an error here). */
export type Resolver = (host: string) => Promise<string[]>;

/** How long one name's lookup may take before it is left out of the check. */
const LOOKUP_MS = 2000;

/**
 * The message naming two entries that are one server, or null. Masters are
 * checked among themselves, then each backup against every entry before it.
 */
export async function findSameServer(
  masters: readonly ServerAddress[],
  backups: readonly ServerAddress[],
  resolve: Resolver = resolveHost,
): Promise<string | null> {
  const all = [...masters, ...backups];
  const reach = await Promise.all(all.map((s) => endpoints(s, resolve)));
  for (let j = 1; j < all.length; j++) {
    for (let i = 0; i < j; i++) {
      const shared = reach[j]!.find((e) => reach[i]!.includes(e));
      if (shared === undefined) continue;
      const a = all[i]!.name;
      const b = all[j]!.name;
      if (j < masters.length) return `master servers '${a}' and '${b}' are one server (both reach ${shared})`;
      if (i < masters.length) return `backup server '${b}' is also master server '${a}' (both reach ${shared}): a backup must be another server`;
      return `backup servers '${a}' and '${b}' are one server (both reach ${shared})`;
    }
  }
  return null;
}

async function endpoints(s: ServerAddress, resolve: Resolver): Promise<string[]> {
  if (s.path !== null) {
    try { return [await realpath(s.path)]; } catch { return [normalize(s.path)]; }
  }
  const addrs = await resolve(s.host);
  return addrs.map((a) => {
    const ip = canonicalIp(a);
    return isIPv6(ip) ? `[${ip}]:${s.port}` : `${ip}:${s.port}`;
  });
}

/** One spelling per address: ::ffff:a.b.c.d as a.b.c.d, IPv6 compressed, the wildcard as loopback. */
function canonicalIp(a: string): string {
  if (!isIPv6(a)) return a === '0.0.0.0' ? '127.0.0.1' : a;
  const v6 = new URL(`http://[${a}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
  if (mapped !== null) {
    const hi = parseInt(mapped[1]!, 16);
    const lo = parseInt(mapped[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return v6 === '::' ? '::1' : v6;
}

async function resolveHost(host: string): Promise<string[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string[]>((r) => { timer = setTimeout(r, LOOKUP_MS, []); });
  try {
    return await Promise.race([
      lookup(host, { all: true }).then((list) => list.map((x) => x.address), () => []),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
