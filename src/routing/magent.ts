// magent's default key distribution (no -k), bit-exact, so a deployment that
// switches from magent to mcrelay keeps every key on the server that holds it.
//
// Read from magent's source (magent.c of memagent 0.5/0.6, QUE Hongyu):
//
//   static int hashme(char *str) {        /* "the famous DJB hash ... from stat_cache.c" */
//     unsigned int hash = 5381;
//     for (s = str; *s; s++) hash = ((hash << 5) + hash) + *s;
//     hash &= 0x7FFFFFFF;
//     return hash;
//   }
//   ... in do_transcation(), start_backup_transcation(), try_backup_server():
//   idx = hashme(key) % matrixcnt;       /* masters */
//   idx = hashme(key) % backupcnt;       /* backups, same hash */
//
// Two details matter for exactness:
// - `*s` is a plain `char`, signed on x86 Linux where magent runs, so bytes >= 0x80
//   are added as c - 256 (sign-extended into the unsigned accumulator).
// - the loop walks a C string, so hashing stops at the first NUL byte.

/** magent's hashme() over buf[start, end): a non-negative 31-bit number. */
export function magentHash(buf: Uint8Array, start: number, end: number): number {
  let h = 5381;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c === 0) break;
    h = (Math.imul(h, 33) + ((c << 24) >> 24)) | 0;
  }
  return h & 0x7fffffff;
}

/** magent's server choice: hash % count, the hash being non-negative. */
export function moduloBucket(hash: number, buckets: number): number {
  return hash % buckets;
}
