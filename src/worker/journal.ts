// The outage journal of one worker: for each server, the keys written through
// this worker that the server may hold an old value of, because it was DOWN when
// they were written or because a write to it failed or timed out (the bytes may
// still reach it later). Before a returning server serves reads, every journaled
// key is deleted on it (main/recovery.ts asks each worker for its share).
//
// Keys are kept as latin1 strings of their bytes (a string per journaled write,
// and only while a server is unhealthy). Past the bound the journal stops
// recording and says so: the server is then flushed on recovery instead.
//
// Keys journaled for a master are also handed to the main thread (takeShared),
// which publishes them in the backups for the other entry proxies' recoveries
// (main/outage-journal.ts); an overflow is published as such.

import { S } from '../shared/server-stats.js';
import { log } from '../log.js';

export class Journal {
  private readonly keys: Array<Set<string>>;
  private readonly overflowed: boolean[];
  /** per shared server: keys journaled since the last takeShared(), and whether it overflowed since */
  private readonly shared: Array<{ keys: string[]; overflowed: boolean }>;
  private sharedPending = false;

  constructor(
    private readonly names: readonly string[],
    private readonly maxKeys: number,
    private readonly stats: (server: number) => Float64Array,
    /** servers [0, sharedCount) have their journals published (the masters, when there are backups) */
    private readonly sharedCount = 0,
    /** called when the first key since the last takeShared() is journaled for a shared server */
    private readonly onShared: () => void = () => {},
  ) {
    this.keys = names.map(() => new Set<string>());
    this.overflowed = new Array<boolean>(names.length).fill(false);
    this.shared = Array.from({ length: sharedCount }, () => ({ keys: [], overflowed: false }));
  }

  add(server: number, key: Buffer, start: number, end: number): void {
    if (this.overflowed[server]) return;
    const set = this.keys[server]!;
    if (set.size >= this.maxKeys) {
      this.overflow(server);
      log.warn('outage journal full: the server will be flushed when it returns', { server: this.names[server], maxKeys: this.maxKeys });
      return;
    }
    const k = key.toString('latin1', start, end);
    set.add(k);
    this.stats(server)[S.JOURNAL] = set.size;
    if (server < this.sharedCount) {
      const sh = this.shared[server]!;
      if (!sh.overflowed) sh.keys.push(k);
      this.sharedChanged();
    }
  }

  /** The server missed something no key list can describe (a flush): flush it on recovery. */
  overflow(server: number): void {
    this.overflowed[server] = true;
    this.keys[server]!.clear();
    this.stats(server)[S.JOURNAL] = 0;
    if (server < this.sharedCount) {
      const sh = this.shared[server]!;
      sh.overflowed = true;
      sh.keys = [];
      this.sharedChanged();
    }
  }

  private sharedChanged(): void {
    if (this.sharedPending) return;
    this.sharedPending = true;
    this.onShared();
  }

  /** What was journaled for shared servers since the last call: [server, keys, overflowed] for each that changed. */
  takeShared(): Array<{ server: number; keys: string[]; overflowed: boolean }> {
    this.sharedPending = false;
    const out: Array<{ server: number; keys: string[]; overflowed: boolean }> = [];
    for (let i = 0; i < this.shared.length; i++) {
      const sh = this.shared[i]!;
      if (sh.keys.length === 0 && !sh.overflowed) continue;
      out.push({ server: i, keys: sh.keys, overflowed: sh.overflowed });
      this.shared[i] = { keys: [], overflowed: false };
    }
    return out;
  }

  /** Hands over what is journaled for the server and starts it afresh. */
  take(server: number): { keys: Set<string>; overflowed: boolean } {
    const taken = { keys: this.keys[server]!, overflowed: this.overflowed[server]! };
    this.keys[server] = new Set();
    this.overflowed[server] = false;
    this.stats(server)[S.JOURNAL] = 0;
    return taken;
  }

  /** Puts back what an invalidation that failed could not clear. */
  restore(server: number, keys: Set<string>, overflowed: boolean): void {
    if (overflowed || this.overflowed[server]) {
      this.overflowed[server] = true;
      this.keys[server]!.clear();
    } else {
      const set = this.keys[server]!;
      for (const k of keys) {
        if (set.size >= this.maxKeys) { this.overflowed[server] = true; set.clear(); break; }
        set.add(k);
      }
    }
    this.stats(server)[S.JOURNAL] = this.keys[server]!.size;
  }
}
