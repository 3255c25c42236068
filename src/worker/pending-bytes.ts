// Bytes a worker holds for requests whose data block is still arriving, over all
// of its clients: bounded by max_pending_bytes (each worker holds an even share).
// A client reserves a request's whole size when its line has been read and the
// value has not all come, and gives it back once the request is parsed (or the
// client is gone). A reservation that does not fit is refused, and the client
// refuses the set as memcached refuses one it has no memory for.

export class PendingBytes {
  /** bytes reserved now */
  held = 0;

  constructor(public limit: number) {}

  /** Whether n bytes may be held; one request at a time always may, so a value is never refused for its size alone. */
  take(n: number): boolean {
    if (this.held > 0 && this.held + n > this.limit) return false;
    this.held += n;
    return true;
  }

  give(n: number): void {
    this.held -= n;
  }
}

/** A worker's share of the process-wide bound. */
export function pendingShare(config: { readonly maxPendingBytes: number; readonly workers: number }): number {
  return Math.ceil(config.maxPendingBytes / config.workers);
}
