// Ketama consistent-hash ring, built the way twemproxy builds it
// (twitter/twemproxy src/hashkit/nc_ketama.c, ketama_update / ketama_dispatch),
// which is libketama's construction:
//
// - each server contributes points_per_server / 4 md5 digests of the string
//   "<name>-<i>", i = 0, 1, ... (snprintf "%.*s-%u" into an 86-byte buffer, so at
//   most 85 bytes are hashed), and each digest gives 4 points: its four 32-bit
//   little-endian words (ketama_hash(host, hostlen, alignment 0..3));
// - points_per_server is 160 for equal weights, computed in float as twemproxy does:
//   floorf(pct * 160 / 4 * nlive + 1e-10) * 4 with pct = 1/n. The float rounding
//   makes it 156 for some pool sizes (25, 47, 50, ... servers); we keep that so the
//   ring matches twemproxy's for every size;
// - <name> is the server's name, except that twemproxy drops the port when it is
//   11211 ("to maintain backward compatibility with libmemcached", nc_conf.c
//   conf_add_server), so "10.0.0.1:11211" hashes as "10.0.0.1";
// - points are sorted ascending; a key goes to the first point >= its hash,
//   wrapping to the first point.
//
// Key hash: libketama's ketama_hashi, the first 4 bytes of md5(key) little-endian.
// (twemproxy itself hashes keys with the pool's `hash:` setting, fnv1a_64 by
// default; magent -k and libketama use md5.)

type CryptoHash = typeof import('node:crypto').hash;

const POINTS_PER_DIGEST = 4;
const MAX_POINT_KEY_BYTES = 85;
const LIBMEMCACHED_DEFAULT_PORT_SUFFIX = ':11211';

// node:crypto is loaded on first use: about 1.4 MB of RSS per thread, which only
// a ketama distribution needs (jump hashing is the default).
let cryptoHash: CryptoHash | null = null;

function md5(data: Uint8Array): Buffer {
  cryptoHash ??= process.getBuiltinModule('node:crypto').hash;
  return cryptoHash('md5', data, 'buffer');
}

/** libketama's ketama_hashi over buf[start, end): unsigned 32-bit. */
export function ketamaHash(buf: Uint8Array, start: number, end: number): number {
  return md5(buf.subarray(start, end)).readUInt32LE(0);
}

/** Digests per server for n equal-weight servers, with twemproxy's float arithmetic. */
export function ketamaDigestsPerServer(n: number): number {
  const f = Math.fround;
  const pct = f(f(1) / f(n));
  const perDigestGroup = f(f(f(pct * 160) / 4) * f(n));
  return Math.floor(f(perDigestGroup + 0.0000000001));
}

function pointKeyName(serverName: string): string {
  return serverName.endsWith(LIBMEMCACHED_DEFAULT_PORT_SUFFIX)
    ? serverName.slice(0, -LIBMEMCACHED_DEFAULT_PORT_SUFFIX.length)
    : serverName;
}

export class KetamaRing {
  /** point values, ascending */
  readonly points: Uint32Array;
  /** servers[i] owns points[i] */
  readonly servers: Uint16Array;

  constructor(serverNames: readonly string[]) {
    const n = serverNames.length;
    if (n === 0) throw new RangeError('a ketama ring needs at least one server');
    if (n > 0xffff) throw new RangeError('a ketama ring holds at most 65535 servers');

    const digests = ketamaDigestsPerServer(n);
    // value * 2^16 + server stays below 2^48, exact in a double: one numeric sort
    // orders by value and, for equal values, by server index (deterministic where
    // qsort is not).
    const packed = new Float64Array(n * digests * POINTS_PER_DIGEST);
    let p = 0;
    for (let s = 0; s < n; s++) {
      const name = pointKeyName(serverNames[s]!);
      for (let i = 0; i < digests; i++) {
        const key = Buffer.from(`${name}-${i}`, 'utf8').subarray(0, MAX_POINT_KEY_BYTES);
        const digest = md5(key);
        for (let w = 0; w < POINTS_PER_DIGEST; w++) {
          packed[p++] = digest.readUInt32LE(w * 4) * 0x10000 + s;
        }
      }
    }
    packed.sort();

    this.points = new Uint32Array(packed.length);
    this.servers = new Uint16Array(packed.length);
    for (let i = 0; i < packed.length; i++) {
      const v = packed[i]!;
      this.points[i] = Math.floor(v / 0x10000);
      this.servers[i] = v % 0x10000;
    }
  }

  /** The server owning the first point >= hash, wrapping to the first point. */
  /** hash: unsigned 32-bit, as ketamaHash returns */
  bucket(hash: number): number {
    const points = this.points;
    let left = 0;
    let right = points.length;
    while (left < right) {
      const middle = (left + right) >>> 1;
      if (points[middle]! < hash) left = middle + 1;
      else right = middle;
    }
    return this.servers[left === points.length ? 0 : left]!;
  }
}
