// A mixed load (set, get, multi-get, delete, incr) from a bounded number of
// connections, checked online by a verifier that knows every write it sent and
// the last one acknowledged for every key.
//
//   LoadClient x N --(one request in flight each)--> mcrelay
//        |  every reply
//        v
//   Verifier: per key, the writes in order; a read must return the value of
//   the last write acknowledged before the read was sent, or of a write sent
//   after that and before the reply came; a hit with anything else is WRONG
//   (stale or never written). A miss where a value is due is counted as a MISS
//   (a restarted, empty master), not as wrong.
//
// Keys are owned: only one connection writes a key (its writes are ordered);
// any connection reads any key. Counters (incr) are keys whose value only grows;
// a counter found missing is started again at a higher base, so that values stay
// ordered. Every request has a deadline; one that passes it is UNANSWERED (and
// the connection, now out of step, is replaced).
import { parseReplies, type Reply } from './mc.js';
import { WireClient } from './wire.js';

export interface LoadOptions {
  port: number;
  /** several entry proxies: connection i goes to ports[i % ports.length] (port unused) */
  ports?: readonly number[];
  connections: number;
  /** keys per connection (plain values) */
  keysPerConnection: number;
  /** counters per connection */
  countersPerConnection: number;
  /** a request not answered within this is unanswered */
  deadlineMs: number;
  /** pause between a connection's requests (bounds the load), ms */
  pauseMs: number;
  /** key prefix, so that runs do not share keys */
  prefix: string;
  valueBytes?: number;
}

interface Write { seq: number; value: string; sentAt: number; ackedAt: number | null; deleted: boolean }

interface KeyState {
  /** every write sent, in order */
  writes: Write[];
  /** index in writes of the last acknowledged one, -1 if none */
  acked: number;
  counter: boolean;
}

export interface Problem { at: number; kind: 'wrong' | 'unanswered' | 'error' | 'miss'; detail: string }

export class Verifier {
  readonly keys = new Map<string, KeyState>();
  readonly problems: Problem[] = [];
  counts = { reads: 0, hits: 0, misses: 0, writes: 0, acked: 0, wrong: 0, unanswered: 0, errors: 0, requests: 0, counterResets: 0 };
  /** t0: a performance.now() */
  constructor(private readonly t0: number) {}

  /** ms since the start, sub-millisecond (an acknowledgement and a read in the same ms must still be ordered) */
  now(): number { return Math.round((performance.now() - this.t0) * 1000) / 1000; }

  key(k: string, counter = false): KeyState {
    let s = this.keys.get(k);
    if (s === undefined) { s = { writes: [], acked: -1, counter }; this.keys.set(k, s); }
    return s;
  }

  sent(k: string, value: string, deleted = false): Write {
    const s = this.key(k);
    const w: Write = { seq: s.writes.length, value, sentAt: this.now(), ackedAt: null, deleted };
    s.writes.push(w);
    this.counts.writes++;
    return w;
  }

  acknowledged(k: string, w: Write): void {
    const s = this.key(k);
    w.ackedAt = this.now();
    if (w.seq > s.acked) s.acked = w.seq;
    this.counts.acked++;
  }

  /** A read of k sent at sentAt (ms since start) answered now with value (null: a miss). */
  read(k: string, sentAt: number, value: string | null): void {
    this.counts.reads++;
    const s = this.keys.get(k);
    const answered = this.now();
    if (s === undefined) {
      if (value !== null) this.problem('wrong', `${k}: read ${JSON.stringify(value)}, a value never written`);
      else this.counts.misses++;
      return;
    }
    // the last write acknowledged before the read was sent
    let floor = -1;
    for (let i = s.writes.length - 1; i >= 0; i--) {
      const w = s.writes[i]!;
      if (w.ackedAt !== null && w.ackedAt < sentAt) { floor = i; break; }
    }
    if (value === null) {
      if (floor === -1 || s.writes[floor]!.deleted) { this.counts.misses++; return; }
      // a delete sent after the floor may have happened
      if (s.writes.slice(floor + 1).some((w) => w.deleted && w.sentAt <= answered)) { this.counts.misses++; return; }
      this.counts.misses++;
      this.problems.push({ at: answered, kind: 'miss', detail: `${k}: miss, ${JSON.stringify(s.writes[floor]!.value)} acknowledged at ${s.writes[floor]!.ackedAt} ms` });
      return;
    }
    this.counts.hits++;
    for (let i = Math.max(0, floor); i < s.writes.length; i++) {
      const w = s.writes[i]!;
      if (w.sentAt > answered) break;
      if (!w.deleted && w.value === value && i >= floor) return;
    }
    if (s.counter && this.counterOk(s, floor, value, answered)) return;
    const known = s.writes.findIndex((w) => w.value === value);
    this.problem('wrong', `${k}: read ${JSON.stringify(value)} (sent at ${sentAt} ms, answered at ${answered} ms); ` +
      `${known === -1 ? 'never written' : `written #${known} at ${s.writes[known]!.sentAt} ms, older than`} ` +
      `the last acknowledged #${floor} ${floor >= 0 ? `${JSON.stringify(s.writes[floor]!.value)} (acked at ${s.writes[floor]!.ackedAt} ms)` : ''}`);
  }

  /** A counter's value lies between the floor's and the highest sent by the answer. */
  private counterOk(s: KeyState, floor: number, value: string, answered: number): boolean {
    const v = Number(value);
    if (!Number.isSafeInteger(v)) return false;
    const low = floor >= 0 ? Number(s.writes[floor]!.value) : 0;
    let high = -Infinity;
    for (const w of s.writes) if (w.sentAt <= answered) high = Math.max(high, Number(w.value));
    return v >= low && v <= high;
  }

  problem(kind: Problem['kind'], detail: string): void {
    if (kind === 'wrong') this.counts.wrong++;
    if (kind === 'unanswered') this.counts.unanswered++;
    if (kind === 'error') this.counts.errors++;
    this.problems.push({ at: this.now(), kind, detail });
  }

  summary(): string {
    const c = this.counts;
    return `${c.requests} requests: ${c.reads} key reads (${c.hits} hits, ${c.misses} misses), ${c.writes} writes (${c.acked} acknowledged), ` +
      `${c.wrong} wrong values, ${c.unanswered} unanswered, ${c.errors} errors, ` +
      `${c.counterResets} incr answered NOT_FOUND for a counter with an acknowledged value`;
  }
}

const pick = <T>(a: readonly T[]): T => a[Math.floor(Math.random() * a.length)]!;

export class LoadClient {
  private c: WireClient | null = null;
  private running = false;
  private loop: Promise<void> | null = null;
  private seq = 0;
  private readonly own: string[];
  private readonly counters: string[];

  constructor(readonly id: number, private readonly opts: LoadOptions, private readonly v: Verifier, private readonly allKeys: () => string[]) {
    this.own = Array.from({ length: opts.keysPerConnection }, (_, i) => `${opts.prefix}:k${id}:${i}`);
    this.counters = Array.from({ length: opts.countersPerConnection }, (_, i) => `${opts.prefix}:n${id}:${i}`);
    for (const k of this.own) v.key(k);
    for (const k of this.counters) v.key(k, true);
  }

  keys(): string[] { return [...this.own, ...this.counters]; }

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    this.c?.close();
  }

  private value(k: string): string {
    const pad = this.opts.valueBytes ?? 16;
    return `${k}=${++this.seq}:${'x'.repeat(Math.max(0, pad - 10))}`;
  }

  /** Sends and waits for n replies; null if the deadline passed (the connection is then dropped). */
  private async exchange(data: string, n: number): Promise<Reply[] | null> {
    if (this.c === null || this.c.closed) {
      const ports = this.opts.ports ?? [this.opts.port];
      this.c = await WireClient.connect(ports[this.id % ports.length]!).catch(() => null);
      if (this.c === null) return null;
    }
    const c = this.c;
    this.v.counts.requests++;
    c.write(data);
    const b = await c.readUntil((x) => parseReplies(x).replies.length >= n, this.opts.deadlineMs);
    const { replies, consumed } = parseReplies(b);
    if (replies.length < n || consumed !== b.length) {
      c.close();
      this.c = null;
      return null;
    }
    return replies;
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        await this.step();
      } catch (err) {
        this.v.problem('error', `client ${this.id}: ${(err as Error).message}`);
        this.c?.close();
        this.c = null;
      }
      if (this.opts.pauseMs > 0) await new Promise((r) => setTimeout(r, this.opts.pauseMs));
    }
  }

  private async step(): Promise<void> {
    const r = Math.random();
    if (r < 0.35) return this.get([pick(this.allKeys())], 'get');
    if (r < 0.5) return this.get(Array.from({ length: 2 + Math.floor(Math.random() * 8) }, () => pick(this.allKeys())), 'multi-get');
    if (r < 0.8) return this.set(pick(this.own));
    if (r < 0.85) return this.del(pick(this.own));
    if (this.counters.length > 0) return this.incr(pick(this.counters));
    return this.set(pick(this.own));
  }

  private async get(keys: string[], what: string): Promise<void> {
    const sentAt = this.v.now();
    const replies = await this.exchange(`get ${keys.join(' ')}\r\n`, 1);
    if (replies === null) { this.v.problem('unanswered', `client ${this.id}: ${what} of ${keys.length} keys sent at ${sentAt} ms`); return; }
    const rep = replies[0]!;
    if (rep.line !== 'END') { this.v.problem('error', `client ${this.id}: ${what}: ${rep.line}`); return; }
    const found = new Map(rep.values.map((x) => [x.key, x.data.toString('latin1')]));
    for (const k of new Set(keys)) this.v.read(k, sentAt, found.get(k) ?? null);
  }

  private async set(k: string): Promise<void> {
    const value = this.value(k);
    const w = this.v.sent(k, value);
    const replies = await this.exchange(`set ${k} 0 0 ${value.length}\r\n${value}\r\n`, 1);
    if (replies === null) { this.v.problem('unanswered', `client ${this.id}: set ${k} sent at ${w.sentAt} ms`); return; }
    if (replies[0]!.line === 'STORED') this.v.acknowledged(k, w);
    else this.v.problem('error', `client ${this.id}: set ${k}: ${replies[0]!.line}`);
  }

  private async del(k: string): Promise<void> {
    const w = this.v.sent(k, '', true);
    const replies = await this.exchange(`delete ${k}\r\n`, 1);
    if (replies === null) { this.v.problem('unanswered', `client ${this.id}: delete ${k} sent at ${w.sentAt} ms`); return; }
    const line = replies[0]!.line;
    if (line === 'DELETED' || line === 'NOT_FOUND') this.v.acknowledged(k, w);
    else this.v.problem('error', `client ${this.id}: delete ${k}: ${line}`);
  }

  private async incr(k: string): Promise<void> {
    const s = this.v.key(k, true);
    const last = s.acked >= 0 ? Number(s.writes[s.acked]!.value) : 0;
    // the value it should become; recorded as sent so that a read may see it
    const w = this.v.sent(k, String(last + 1));
    const replies = await this.exchange(`incr ${k} 1\r\n`, 1);
    if (replies === null) { this.v.problem('unanswered', `client ${this.id}: incr ${k} sent at ${w.sentAt} ms`); return; }
    const line = replies[0]!.line;
    if (/^\d+$/.test(line)) {
      const got = Number(line);
      w.value = line;
      if (got < last + 1) this.v.problem('wrong', `${k}: incr answered ${got}, after ${last} was acknowledged (an increment lost)`);
      this.v.acknowledged(k, w);
      return;
    }
    if (line === 'NOT_FOUND') {
      // gone (restarted master, first use): start it again above anything it held
      if (s.acked >= 0 && !s.writes[s.acked]!.deleted) this.v.counts.counterResets++;
      const base = String((Math.floor(last / 1_000_000) + 1) * 1_000_000);
      w.value = base; // the incr did nothing; the set below writes base
      const set = await this.exchange(`set ${k} 0 0 ${base.length}\r\n${base}\r\n`, 1);
      if (set === null) { this.v.problem('unanswered', `client ${this.id}: set ${k} (counter restart)`); return; }
      if (set[0]!.line === 'STORED') this.v.acknowledged(k, w);
      else this.v.problem('error', `client ${this.id}: set ${k}: ${set[0]!.line}`);
      return;
    }
    this.v.problem('error', `client ${this.id}: incr ${k}: ${line}`);
  }
}

export class Load {
  readonly verifier: Verifier;
  readonly clients: LoadClient[];
  private all: string[] = [];

  constructor(readonly opts: LoadOptions, t0 = performance.now()) {
    this.verifier = new Verifier(t0);
    this.clients = Array.from({ length: opts.connections }, (_, i) => new LoadClient(i, opts, this.verifier, () => this.all));
    this.all = this.clients.flatMap((c) => c.keys());
  }

  start(): void { for (const c of this.clients) c.start(); }
  async stop(): Promise<void> { await Promise.all(this.clients.map((c) => c.stop())); }

  /** Reads every key once more (after the load): each must be its last acknowledged value, or a miss. */
  async finalCheck(port: number): Promise<void> {
    const c = await WireClient.connect(port);
    try {
      const keys = [...this.verifier.keys.keys()];
      for (let i = 0; i < keys.length; i += 50) {
        const batch = keys.slice(i, i + 50);
        const sentAt = this.verifier.now();
        c.write(`get ${batch.join(' ')}\r\n`);
        const b = await c.readUntil((x) => parseReplies(x).replies.length >= 1, this.opts.deadlineMs);
        const { replies } = parseReplies(b);
        if (replies.length < 1) { this.verifier.problem('unanswered', `final read of ${batch.length} keys`); continue; }
        const found = new Map(replies[0]!.values.map((x) => [x.key, x.data.toString('latin1')]));
        for (const k of batch) this.verifier.read(k, sentAt, found.get(k) ?? null);
      }
    } finally {
      c.close();
    }
  }
}
