// Backend health table: the one piece of routing state every thread shares.
//
// Layout (Int32Array over a SharedArrayBuffer):
//   [0]                      generation: bumped on every state change, so a reader can
//                            tell cheaply that something changed since it last looked
//   [HEADER + i*STRIDE + 0]  STATE of server i (UP, DOWN, ...)
//   [HEADER + i*STRIDE + 1]  TIMEOUTS: consecutive timeouts, reset by any good reply
//   [HEADER + i*STRIDE + 2]  CHANGES: how many state changes server i has had
// Server i counts masters first (0..M-1), then backups (M..M+B-1).
//
// Workers only ever move a server to DOWN; the main thread's prober moves it back.
// Everything is a single Atomics load or store: no locks, no waiting.

export const UP = 0;
export const DOWN = 1;
// Later states (RECOVERING, WARMING) are added here; readers treat any state other
// than UP as "do not read from it" unless the policy says otherwise.

export const STATE_NAMES = ['up', 'down'] as const;

const HEADER = 1;
const STRIDE = 4;
const STATE = 0;
const TIMEOUTS = 1;
const CHANGES = 2;

export class HealthTable {
  readonly buffer: SharedArrayBuffer;
  readonly size: number;
  private readonly cells: Int32Array;

  constructor(sizeOrBuffer: number | SharedArrayBuffer) {
    this.buffer = typeof sizeOrBuffer === 'number'
      ? new SharedArrayBuffer((HEADER + sizeOrBuffer * STRIDE) * 4)
      : sizeOrBuffer;
    this.cells = new Int32Array(this.buffer);
    this.size = (this.cells.length - HEADER) / STRIDE;
  }

  state(server: number): number {
    return Atomics.load(this.cells, HEADER + server * STRIDE + STATE);
  }

  isUp(server: number): boolean {
    return Atomics.load(this.cells, HEADER + server * STRIDE + STATE) === UP;
  }

  generation(): number {
    return Atomics.load(this.cells, 0);
  }

  changes(server: number): number {
    return Atomics.load(this.cells, HEADER + server * STRIDE + CHANGES);
  }

  /** Moves server to `state`; returns true if this call made the change. */
  setState(server: number, state: number): boolean {
    const at = HEADER + server * STRIDE + STATE;
    const prev = Atomics.exchange(this.cells, at, state);
    if (prev === state) return false;
    if (state === UP) Atomics.store(this.cells, HEADER + server * STRIDE + TIMEOUTS, 0);
    Atomics.add(this.cells, HEADER + server * STRIDE + CHANGES, 1);
    Atomics.add(this.cells, 0, 1);
    return true;
  }

  /** Only moves UP -> DOWN, so a worker cannot undo a recovery it did not see. */
  markDown(server: number): boolean {
    const at = HEADER + server * STRIDE + STATE;
    if (Atomics.compareExchange(this.cells, at, UP, DOWN) !== UP) return false;
    Atomics.add(this.cells, HEADER + server * STRIDE + CHANGES, 1);
    Atomics.add(this.cells, 0, 1);
    return true;
  }

  /** Counts one more consecutive timeout; returns the new count. */
  addTimeout(server: number): number {
    return Atomics.add(this.cells, HEADER + server * STRIDE + TIMEOUTS, 1) + 1;
  }

  resetTimeouts(server: number): void {
    // A plain load first: the common case (already 0) then costs no write to a shared line.
    const at = HEADER + server * STRIDE + TIMEOUTS;
    if (Atomics.load(this.cells, at) !== 0) Atomics.store(this.cells, at, 0);
  }
}
