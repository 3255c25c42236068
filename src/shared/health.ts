// Backend health table: the one piece of routing state every thread shares.
//
// Layout (Int32Array over a SharedArrayBuffer):
//   [i*STRIDE + 0]  STATE of server i (UP, DOWN, ...)
//   [i*STRIDE + 1]  TIMEOUTS: consecutive timeouts, reset by any good reply
//   [i*STRIDE + 2]  META: 1 once server i answered `mn` with MN on a
//                   connection of the main thread's (main/prober.ts):
//                   workers send it one-key gets as mg
//   [i*STRIDE + 3]  VERSION: the memcached version server i last gave the
//                   prober, packed by packVersion (0: not known yet);
//                   workers answer `version` with the lowest one
// Server i counts masters first (0..M-1), then backups (M..M+B-1).
//
// A server's life: UP -> DOWN -> RECOVERING -> WARMING -> UP (backups skip WARMING);
// drained by an operator: UP -> DRAINING -> DRAINED, and undrained: -> DOWN -> ... -> UP.
// Workers only ever move a server to DOWN; the main thread moves it back, one step
// at a time (main/recovery.ts). Every access is a single Atomics operation: no
// locks, no waiting. What each state allows is decided in routing/policy.ts.

/** serving reads and writes */
export const UP = 0;
/** unreachable: neither reads nor writes; writes of its keys are journaled */
export const DOWN = 1;
/** answering again: takes writes, not reads, while journaled keys are deleted on it */
export const RECOVERING = 2;
/** a returning master: serves reads, and its misses are looked up on the backup */
export const WARMING = 3;
/** an operator drains it (main/drain.ts): serves no reads, still takes writes while every proxy hears of it */
export const DRAINING = 4;
/** drained: neither reads nor writes (journaled), and not probed back: only an undrain returns it */
export const DRAINED = 5;

export const STATE_NAMES = ['up', 'down', 'recovering', 'warming', 'draining', 'drained'] as const;

const STRIDE = 4;
const STATE = 0;
const TIMEOUTS = 1;
const META = 2;
const VERSION = 3;

export class HealthTable {
  readonly buffer: SharedArrayBuffer;
  readonly size: number;
  private readonly cells: Int32Array;

  constructor(sizeOrBuffer: number | SharedArrayBuffer) {
    this.buffer = typeof sizeOrBuffer === 'number'
      ? new SharedArrayBuffer(sizeOrBuffer * STRIDE * 4)
      : sizeOrBuffer;
    this.cells = new Int32Array(this.buffer);
    this.size = this.cells.length / STRIDE;
  }

  state(server: number): number {
    return Atomics.load(this.cells, server * STRIDE + STATE);
  }

  isUp(server: number): boolean {
    return Atomics.load(this.cells, server * STRIDE + STATE) === UP;
  }

  /** Moves server to `state`; returns true if this call made the change. */
  setState(server: number, state: number): boolean {
    const at = server * STRIDE + STATE;
    const prev = Atomics.exchange(this.cells, at, state);
    if (prev === state) return false;
    if (state === UP) Atomics.store(this.cells, server * STRIDE + TIMEOUTS, 0);
    return true;
  }

  /** Moves any state but DOWN (and DRAINED: out already, by choice) to DOWN; returns true if this call made the change. */
  markDown(server: number): boolean {
    const at = server * STRIDE + STATE;
    for (;;) {
      const cur = Atomics.load(this.cells, at);
      if (cur === DOWN || cur === DRAINED) return false;
      if (Atomics.compareExchange(this.cells, at, cur, DOWN) === cur) return true;
    }
  }

  /** Moves server from `from` to `to` only if it is still in `from` (the main thread's steps). */
  advance(server: number, from: number, to: number): boolean {
    const at = server * STRIDE + STATE;
    if (Atomics.compareExchange(this.cells, at, from, to) !== from) return false;
    if (to === UP) Atomics.store(this.cells, server * STRIDE + TIMEOUTS, 0);
    return true;
  }

  /** Whether the server is known to answer meta commands (mg). */
  answersMeta(server: number): boolean {
    return Atomics.load(this.cells, server * STRIDE + META) === 1;
  }

  setAnswersMeta(server: number, yes: boolean): void {
    Atomics.store(this.cells, server * STRIDE + META, yes ? 1 : 0);
  }

  /** The server's packed version (packVersion), 0 if it has not given one. */
  version(server: number): number {
    return Atomics.load(this.cells, server * STRIDE + VERSION);
  }

  setVersion(server: number, packed: number): void {
    Atomics.store(this.cells, server * STRIDE + VERSION, packed);
  }

  /** Counts one more consecutive timeout; returns the new count. */
  addTimeout(server: number): number {
    return Atomics.add(this.cells, server * STRIDE + TIMEOUTS, 1) + 1;
  }

  resetTimeouts(server: number): void {
    // A plain load first: the common case (already 0) then costs no write to a shared line.
    const at = server * STRIDE + TIMEOUTS;
    if (Atomics.load(this.cells, at) !== 0) Atomics.store(this.cells, at, 0);
  }
}

/**
 * "1.6.18" (or "1.6.18-beta", "1.4.5") packed into one int32 that orders as the
 * versions do: 10 bits per part, the major part kept under 2^10. 0 if the text
 * does not start with a dotted number.
 */
export function packVersion(text: string): number {
  const m = /^(\d{1,3})\.(\d{1,4})(?:\.(\d{1,4}))?/.exec(text);
  if (m === null) return 0;
  const part = (s: string | undefined): number => Math.min(Number(s ?? 0), 1023);
  return ((part(m[1]) << 20) | (part(m[2]) << 10) | part(m[3])) || 0;
}

export function unpackVersion(packed: number): string {
  return `${packed >>> 20}.${(packed >>> 10) & 1023}.${packed & 1023}`;
}
