// Byte buffers on both sides of every socket.
//
// Sockets read into one fixed buffer per thread (ReadArena.scratch, given to
// each libuv handle by io/raw-stream.ts): no allocation per read. Each read
// is copied out at once, to the arena's current slab when small, into a buffer
// of its own when large.
//
// InputBuffer joins the bytes a parser has not consumed yet with the next read.
// A read is used where the arena put it when nothing is left over (the common
// case); those bytes are never written to afterwards, so parsers can hand out
// subarrays of them.
//
// Outbox gathers what one socket has to send during one event-loop turn: small
// pieces are copied into a region (a copy of 30 bytes is cheaper than a write call
// for it), large ones are kept by reference, and flush() writes it all with one
// write (or one writev). A backend connection has a region of its own; the
// clients of a thread copy into one shared slab (ReplyArena), so a client holds no
// output memory between turns.

const EMPTY = Buffer.alloc(0);

/**
 * The size of the buffers taken again and again (read slabs, reply slabs, a
 * backend connection's region, the binary translation slab): under the mmap
 * threshold main/malloc.ts sets (68 KiB), so that they come from the thread's
 * malloc arena and go back to it. At 64 KiB each was a mapping of its own:
 * an mmap, 16 page faults to fill it and, once collected, a munmap whose TLB
 * shootdown interrupts every CPU (docs/decisions/slab-size.md).
 */
export const SLAB_BYTES = 24 * 1024;

/** The most one read returns. */
const READ_SIZE = 64 * 1024;
/** Reads are copied to a shared slab of this size... */
const SLAB_SIZE = SLAB_BYTES;
/** ...up to this size; a larger read gets a buffer of its own (a slab lives as long as any read in it). */
const SLAB_MAX_READ = 8 * 1024;

export class ReadArena {
  /** what every socket of this thread reads into; valid only until the next read */
  readonly scratch = Buffer.allocUnsafeSlow(READ_SIZE);
  private slab = EMPTY;
  private used = 0;

  /** the buffer holding the last copy keep() made */
  kept: Buffer = EMPTY;

  /**
   * Copies scratch[start, end) where it will not be overwritten: into `kept`, at
   * the offset returned. The caller uses (kept, offset) as it is rather than a
   * subarray, which would be an object per read.
   */
  keep(start: number, end: number): number {
    const n = end - start;
    if (n > SLAB_MAX_READ) {
      const own = Buffer.allocUnsafeSlow(n);
      this.scratch.copy(own, 0, start, end);
      this.kept = own;
      return 0;
    }
    if (this.slab.length - this.used < n) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
      this.used = 0;
    }
    const at = this.used;
    this.scratch.copy(this.slab, at, start, end);
    this.used = at + n;
    this.kept = this.slab;
    return at;
  }
}

/** This thread's arena (each worker thread has its own module instance). */
export const readArena = new ReadArena();

/**
 * a[as, as + n) equals b[bs, bs + n). A loop: what is compared here (keys, reply
 * words) is short, and Buffer#compare's call costs more than the bytes.
 */
export function bytesEqual(a: Uint8Array, as: number, b: Uint8Array, bs: number, n: number): boolean {
  for (let k = 0; k < n; k++) if (a[as + k] !== b[bs + k]) return false;
  return true;
}

/** A request or reply line is usually this short: findLF loops over this many bytes before it calls indexOf. */
const SHORT_LINE = 64;

/**
 * The first LF in buf[pos, end), or -1. A loop over the first SHORT_LINE bytes
 * (a 20-byte line is found in about 40 ns, against 65 for Buffer#indexOf's
 * call), indexOf beyond them (long lines, or a partial line waiting for its end).
 */
export function findLF(buf: Buffer, pos: number, end: number): number {
  const stop = end - pos > SHORT_LINE ? pos + SHORT_LINE : end;
  for (let i = pos; i < stop; i++) if (buf[i] === 0x0a) return i;
  if (stop === end) return -1;
  const nl = buf.indexOf(0x0a, stop);
  return nl >= end ? -1 : nl;
}

export class InputBuffer {
  buf: Buffer = EMPTY;
  pos = 0;
  end = 0;

  get pending(): number { return this.end - this.pos; }

  /**
   * Appends a chunk. `need` (0 if unknown) is how many bytes from pos the parser
   * wants before it can make progress, so a large value is collected into one
   * allocation of that size instead of being re-joined per chunk.
   */
  push(chunk: Buffer, need: number): void {
    const have = this.end - this.pos;
    if (have === 0) {
      this.buf = chunk;
      this.pos = 0;
      this.end = chunk.length;
      return;
    }
    // Room after end in a buffer this class allocated: append in place. Bytes
    // before end may be referenced by subarrays; bytes after it never are.
    if (this.buf.length - this.end >= chunk.length && this.owned) {
      chunk.copy(this.buf, this.end);
      this.end += chunk.length;
      return;
    }
    this.moveToOwn(Math.max(have + chunk.length, need, 2 * have));
    chunk.copy(this.buf, have);
    this.end = have + chunk.length;
  }

  /** Moves the unconsumed bytes to the start of a new buffer of `size` bytes. */
  private moveToOwn(size: number): void {
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, this.pos, this.end);
    this.buf = next;
    this.owned = true;
    this.end -= this.pos;
    this.pos = 0;
  }

  /**
   * Appends arena.scratch[start, end), which the next read overwrites: taken
   * where the arena keeps it when nothing is pending, else copied in by push().
   */
  pushRead(arena: ReadArena, start: number, end: number, need: number): void {
    if (this.end === this.pos) {
      const at = arena.keep(start, end);
      this.buf = arena.kept;
      this.pos = at;
      this.end = at + end - start;
      this.owned = false;
      return;
    }
    this.push(arena.scratch.subarray(start, end), need);
  }

  /**
   * Moves the unconsumed bytes into a buffer of their own, with room for `need`:
   * a connection that stays idle with a partial command must not keep an arena
   * slab (and every read in it) alive.
   */
  detach(need: number): void {
    const have = this.end - this.pos;
    if (have === 0 || this.owned) return;
    this.moveToOwn(Math.max(have, need));
  }

  /** Marks everything before `pos` as consumed. */
  consume(pos: number): void {
    this.pos = pos;
    if (pos >= this.end) {
      this.buf = EMPTY;
      this.pos = this.end = 0;
      this.owned = false;
    }
  }

  private owned = false;
}

/** Pieces up to this size are copied into the outbox's region. */
const COPY_LIMIT = 4096;
/** The region of a busy socket (a backend connection). */
const OWN_REGION = SLAB_BYTES;
/** The size of a shared reply slab. */
const REPLY_SLAB = SLAB_BYTES;
const EMPTY_REGION = Buffer.alloc(0);

/**
 * One slab per thread that every client's replies are copied into, each client
 * taking the bytes after the last ones taken. The cursor only moves forward, so
 * bytes handed to a socket are never overwritten; a full slab is left to the
 * writes (and outboxes) that still hold parts of it, and a fresh one is taken.
 */
export class ReplyArena {
  slab: Buffer = EMPTY_REGION;
  used = 0;

  /** Starts a fresh slab with room for at least n bytes. */
  renew(n: number): void {
    this.slab = Buffer.allocUnsafeSlow(Math.max(REPLY_SLAB, n));
    this.used = 0;
  }
}

/** This thread's reply arena (each worker thread has its own module instance). */
export const replyArena = new ReplyArena();

export interface Writable {
  write(b: Buffer): void;
  /** the chunks in order, as one write */
  writev(chunks: Buffer[]): void;
}

export class Outbox {
  /** shared: copy small pieces into this thread's reply arena instead of a region of its own */
  constructor(private readonly shared: ReplyArena | null = null) {}

  private region: Buffer = EMPTY_REGION;
  /** start of the bytes not yet handed to a socket */
  private regionStart = 0;
  private regionEnd = 0;
  /**
   * The chunks waiting to be written: `first`, then rest[0, count - 1). Most
   * flushes are one chunk, so an outbox that never has two keeps no array (10,000
   * idle clients). `rest` never shrinks (no reallocation per turn).
   */
  private first: Buffer | null = null;
  private rest: Array<Buffer | null> | null = null;
  private count = 0;
  length = 0;

  add(b: Buffer, start: number, end: number): void {
    const n = end - start;
    if (n === 0) return;
    this.length += n;
    if (n > COPY_LIMIT) {
      this.seal();
      this.push(b.subarray(start, end));
      return;
    }
    const shared = this.shared;
    if (shared !== null) {
      // Go on where this outbox's bytes end if no other client took bytes since.
      if (this.region !== shared.slab || this.regionEnd !== shared.used || shared.slab.length - shared.used < n) {
        this.seal();
        if (shared.slab.length - shared.used < n) shared.renew(n);
        this.region = shared.slab;
        this.regionStart = this.regionEnd = shared.used;
      }
      shared.used += n;
    } else if (this.region.length - this.regionEnd < n) {
      this.seal();
      this.region = Buffer.allocUnsafe(Math.max(OWN_REGION, n));
      this.regionStart = this.regionEnd = 0;
    }
    if (n < 32) {
      // A byte loop beats Buffer#copy's call overhead for the tiny pieces
      // (keys, spaces, CRLF) requests are built from.
      const r = this.region;
      let o = this.regionEnd;
      for (let i = start; i < end; i++) r[o++] = b[i]!;
    } else {
      b.copy(this.region, this.regionEnd, start, end);
    }
    this.regionEnd += n;
  }

  addAll(b: Buffer): void {
    this.add(b, 0, b.length);
  }

  /** Moves the region's unsent bytes into the chunk list. */
  private seal(): void {
    if (this.regionEnd > this.regionStart) {
      this.push(this.region.subarray(this.regionStart, this.regionEnd));
      this.regionStart = this.regionEnd;
    }
  }

  /** Writes everything gathered. */
  flush(socket: Writable): void {
    if (this.length === 0) return;
    this.seal();
    this.write(socket);
    this.forget();
    this.length = 0;
    // The socket may still hold the sent part of the region: never overwrite what
    // was handed out. A shared slab is let go at once (an idle client holds none);
    // an own region is replaced once it is mostly used.
    if (this.shared !== null || this.region.length - this.regionEnd < COPY_LIMIT >> 2) this.dropRegion();
  }

  private dropRegion(): void {
    this.region = EMPTY_REGION;
    this.regionStart = this.regionEnd = 0;
  }

  private push(chunk: Buffer): void {
    if (this.count === 0) this.first = chunk;
    else (this.rest ??= [])[this.count - 1] = chunk;
    this.count++;
  }

  /** Writes the chunks as one batch (one writev when there are several). */
  private write(socket: Writable): void {
    if (this.count === 1) return socket.write(this.first!);
    const rest = this.rest!;
    const chunks = new Array<Buffer>(this.count);
    chunks[0] = this.first!;
    for (let i = 1; i < this.count; i++) chunks[i] = rest[i - 1]!;
    socket.writev(chunks);
  }

  /** Drops the references to written chunks (an idle client keeps no memory alive). */
  private forget(): void {
    this.first = null;
    const rest = this.rest;
    for (let i = 0; i < this.count - 1; i++) rest![i] = null;
    this.count = 0;
  }

  clear(): void {
    this.forget();
    this.length = 0;
    this.dropRegion();
  }
}
