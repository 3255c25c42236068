// One flush per socket per event-loop turn, for the whole worker: a client whose
// replies became ready, or a backend connection that was given ops, asks to be
// flushed; all of them write at the end of the turn (setImmediate), so that the
// replies and requests of one turn go out as one write per socket.

export interface Flushable { flush(): void }

export class FlushScheduler {
  /** dirty[0, count) flush at the end of this turn (a count, not the array's length: no reallocation) */
  private readonly dirty: Array<Flushable | null> = [];
  private count = 0;
  private scheduled = false;

  schedule(target: Flushable): void {
    this.dirty[this.count++] = target;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(runFlushes, this);
    }
  }

  /** @internal */ run(): void {
    this.scheduled = false;
    const d = this.dirty;
    // flush() may schedule more (a client reply completing); those go next turn.
    const n = this.count;
    for (let i = 0; i < n; i++) d[i]!.flush();
    const total = this.count;
    for (let i = n; i < total; i++) d[i - n] = d[i]!;
    for (let i = total - n; i < total; i++) d[i] = null;
    this.count = total - n;
  }
}

function runFlushes(s: FlushScheduler): void {
  s.run();
}
