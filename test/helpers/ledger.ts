// What every key should read as, over time, for tests that look for stale reads.
//
//   ledger.begin(key, next)  a write of the key is about to be sent (next: value,
//                            or null for a delete); returns its version number
//   ledger.ack(key, v, at)   the client got the reply of version v at `at` (performance.now())
//   ledger.judge(key, got, sentAt)
//        got === null                                         -> miss (never stale)
//        got is a version no older than the newest version
//        acknowledged before the read was sent                -> hit
//        an older version, or a value never written           -> stale
//
// So a read racing a write may see either side of it, but once a write is
// acknowledged no later read may see what it replaced. Values must be unique per
// key and version. Readers send pipelined reads of many keys (get, gets or mg)
// through one connection and judge every key of the reply.
import { performance } from 'node:perf_hooks';
import { WireClient } from './wire.js';
import { readReplies } from './mc.js';
import { isMiss, parseMeta } from './cluster.js';

interface Version { value: string | null; ackedAt: number }

export type Verdict = 'hit' | 'miss' | 'stale';

export interface Stale { key: string; got: string; want: string | null; prev: string | null; sentAt: number; ackedAt: number; via: string }

export class Ledger {
  private readonly history = new Map<string, Version[]>();
  readonly stale: Stale[] = [];
  hits = 0;
  misses = 0;

  /**
   * lagMs: a write counts as acknowledged before a read only if it was at least
   * this long before. 0 (the default) is strict; see the one test that allows a
   * backup round trip, and why, in warm-recovery.test.ts.
   */
  constructor(private readonly lagMs = 0) {}

  initial(key: string, value: string): void {
    this.history.set(key, [{ value, ackedAt: 0 }]);
  }

  begin(key: string, next: string | null): number {
    let h = this.history.get(key);
    if (h === undefined) this.history.set(key, h = []);
    h.push({ value: next, ackedAt: Infinity });
    return h.length - 1;
  }

  /** Acknowledges version v of the key (by default its newest). */
  ack(key: string, at: number, v?: number): void {
    const h = this.history.get(key)!;
    h[v ?? h.length - 1]!.ackedAt = at;
  }

  /** The newest value written (acknowledged or not). */
  current(key: string): string | null {
    const h = this.history.get(key);
    return h === undefined || h.length === 0 ? null : h[h.length - 1]!.value;
  }

  judge(key: string, got: string | null, sentAt: number, via: string): Verdict {
    if (got === null) { this.misses++; return 'miss'; }
    const h = this.history.get(key) ?? [];
    // the newest version acknowledged before the read was sent
    let floor = -1;
    for (let i = h.length - 1; i >= 0; i--) if (h[i]!.ackedAt < sentAt - this.lagMs) { floor = i; break; }
    let idx = -1;
    for (let i = h.length - 1; i >= 0; i--) if (h[i]!.value === got) { idx = i; break; }
    if (idx >= 0 && idx >= floor) { this.hits++; return 'hit'; }
    this.stale.push({
      key, got, want: floor >= 0 ? h[floor]!.value : null, prev: idx >= 0 ? `version ${idx} of ${h.length}` : 'never written',
      sentAt, ackedAt: floor >= 0 ? h[floor]!.ackedAt : NaN, via,
    });
    return 'stale';
  }
}

export type ReadKind = 'get' | 'gets' | 'mg';

/** One pipelined read of `keys` through c; every key judged. Returns the verdicts by key. */
export async function readAndJudge(c: WireClient, keys: readonly string[], kind: ReadKind, ledger: Ledger, via: string): Promise<Map<string, Verdict>> {
  const sentAt = performance.now();
  const found = new Map<string, string>();
  if (kind === 'mg') {
    c.write(Buffer.from(keys.map((k) => `mg ${k} k v\r\n`).join(''), 'latin1'));
    const b = await c.readUntil((x) => parseMeta(x).replies.length >= keys.length, 10_000);
    const { replies, consumed } = parseMeta(b);
    if (replies.length !== keys.length || consumed !== b.length) {
      throw new Error(`${via}: mg batch got ${replies.length} of ${keys.length} replies: ${JSON.stringify(b.toString('latin1', 0, 200))}`);
    }
    replies.forEach((r, j) => {
      if (r.item === null && !isMiss(r.line)) throw new Error(`${via}: mg ${keys[j]}: ${r.line}`);
      if (r.item !== null) {
        if (r.key !== keys[j]) throw new Error(`${via}: mg ${keys[j]} answered for ${r.key}`);
        found.set(keys[j]!, r.item.value);
      }
    });
  } else {
    c.write(Buffer.from(`${kind} ${keys.join(' ')}\r\n`, 'latin1'));
    const [r] = await readReplies(c, 1, 10_000);
    if (r!.line !== 'END') throw new Error(`${via}: ${kind} answered ${r!.line}`);
    for (const v of r!.values) found.set(v.key, v.data.toString('latin1'));
  }
  const out = new Map<string, Verdict>();
  for (const k of keys) out.set(k, ledger.judge(k, found.get(k) ?? null, sentAt, via));
  return out;
}

export interface WriteOp { key: string; value: string | null; flags?: number; exptime?: number }

/**
 * Pipelined writes (set, or delete for a null value) through c, `window` at a
 * time, each entered in the ledger before it is sent and acknowledged when its
 * reply is read. Returns the replies that were not STORED / DELETED.
 */
export async function writeAndRecord(c: WireClient, ops: readonly WriteOp[], ledger: Ledger, window = 50): Promise<string[]> {
  const bad: string[] = [];
  for (let i = 0; i < ops.length; i += window) {
    const batch = ops.slice(i, i + window);
    const versions = batch.map((op) => ledger.begin(op.key, op.value));
    c.write(Buffer.from(batch.map((op) => (op.value === null
      ? `delete ${op.key}\r\n`
      : `set ${op.key} ${op.flags ?? 0} ${op.exptime ?? 0} ${Buffer.byteLength(op.value, 'latin1')}\r\n${op.value}\r\n`)).join(''), 'latin1'));
    const replies = await readReplies(c, batch.length, 10_000);
    const at = performance.now();
    replies.forEach((r, j) => {
      const op = batch[j]!;
      ledger.ack(op.key, at, versions[j]);
      const want = op.value === null ? 'DELETED' : 'STORED';
      if (r.line !== want) bad.push(`${op.key}: ${r.line}`);
    });
  }
  return bad;
}
