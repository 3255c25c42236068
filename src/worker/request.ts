// The records that carry one client request through a worker, reused from free
// lists so the data path allocates no objects per request in steady state.
//
//   Request: one client command, from parse to the reply written to the client.
//            Lives until its reply is written AND every backend op it started is
//            answered (a backup's reply can arrive after the client got its own).
//   Op:      one request to one backend server, queued on that server's connection.

import type { BackendConnection } from '../backend/connection.js';

/** What an op is for, which decides what its reply does. */
export const Role = {
  /** its reply is (part of) the client's reply */
  CLIENT: 0,
  /** a replicated write to the backup; its reply is compared with the master's */
  SHADOW: 1,
  /** fire and forget (repairs, gat's touch of the backup, warm-up fills) */
  FORGET: 2,
  /** warm-up: a key the warming master missed, looked up on the backup */
  WARM_LOOKUP: 3,
  /** recovery: a delete of a journaled key (or a flush) on a returning server */
  INVALIDATE: 4,
  /** warm-up: the backup's cas read again after a fill, to catch a write that passed it */
  WARM_VERIFY: 5,
  /** warm-up: the copy of a backup's item into the warming master */
  WARM_FILL: 6,
  /** a written key read on its master and on its backup, to find a divergence (worker/checks.ts) */
  CHECK: 7,
  /** warm-up: the backup's item looked up before a write that depends on it (add, cas, ma N...) */
  WARM_PREFILL: 8,
} as const;

/** The reply queue a request's reply waits in (worker/reply-queue.ts). */
export interface ReplyTarget {
  /** some request of it is done: every done one at the head of the queue is written */
  replyReady(): void;
}

/** The client connection a request came from, as a hold sees it (worker/client.ts). */
export interface RequestOrigin {
  readonly id: number;
  /** one of its requests waits before its master: the requests after it wait too */
  holdNext(): void;
  /** that request has gone to its master */
  readOn(): void;
}

/** What resumes a parked write once it holds its stripe (the dispatcher that parked it; worker/sequencer.ts). */
export interface StripeHolder {
  resumeWrite(req: Request): void;
}

// The states of each side of a replicated write (Request.masterState /
// backupState; 0: not sent): worker/writes.ts sends, worker/write-pair.ts takes the answers.
export const SENT = 1;
export const ANSWERED = 2;
export const FAILED = 3;

export class Request {
  client: ReplyTarget | null = null;
  /** the client's number, which picks its backend connection when there are several */
  affinity = 0;
  cmd = 0;
  noreply = false;
  /** the client input holding the request's bytes; kept alive while the request is */
  buf: Buffer = Buffer.alloc(0);
  keyCount = 0;
  /** start/end pairs of the keys in buf */
  keys: Int32Array = new Int32Array(2);
  argStart = 0;
  argEnd = 0;
  lineStart = 0;
  forwardEnd = 0;
  dataStart = 0;
  bytes = 0;
  casStart = 0;
  /** meta: the flags the proxy acts on (META_* of protocol/meta-request.ts) */
  metaFlags = 0;
  /** meta with the b flag: the decoded key, which routing and journals use */
  decodedKey: Buffer | null = null;
  master = -1;
  backup = -1;
  /** a binary-protocol request: its opcode (the reply is encoded for it), else -1 */
  binOp = -1;
  /** a binary-protocol request: its opaque, echoed in the reply */
  binOpaque = 0;

  /** the reply is complete and may be written when this request reaches the head */
  done = false;
  /** single-line reply (a constant or a subarray of a backend's input) */
  reply: Buffer | null = null;
  /**
   * retrieval: for key i < valueCount, the value block found for it is
   * values[i][valueSpans[2i], valueSpans[2i + 1]), or values[i] is null (a miss).
   * A block is "VALUE ..." as a server sent it, or a meta reply "VA ..." (an mg
   * for the key), which the client's reply queue (reply-queue.ts) turns into text.
   * The block is left where the backend's read put it (no subarray per value).
   * Arrays here are reused with a count of their own: V8 drops an array's
   * backing store at `length = 0`, and the next push allocates a new one.
   */
  values: Array<Buffer | null> = [];
  valueSpans: Int32Array = new Int32Array(2);
  valueCount = 0;

  /** ops whose replies the client reply still waits for */
  waiting = 0;
  /** queue membership + every op not yet answered */
  refs = 0;

  // replication bookkeeping for single-key writes
  masterReply: Buffer | null = null;
  backupReply: Buffer | null = null;
  /** 0 none, SENT, ANSWERED, FAILED */
  masterState = 0;
  backupState = 0;
  /** the client's reply waits for the backup's too (reads of the key go to the backup) */
  ackAfterBackup = false;
  /** the master is recovering: the client gets the backup's reply */
  backupIsTruth = false;
  /** a delete for a warming master, sent there once the backup has answered */
  deferMaster = false;
  /**
   * it waits before going to its master (a stripe held by another write, a
   * delete sent to the backup first, a warm-up prefill), and its client's later
   * requests wait behind it (ClientConnection.holdNext)
   */
  holding = false;
  /** the connection it came from, noreply or not: the one whose later requests a hold stops */
  origin: RequestOrigin | null = null;
  /** a read sent again after its connection closed under it (it is not sent a third time) */
  retried = false;
  /** a cas whose backup copy waits for the master's answer (worker/write-pair.ts casAnswered) */
  casHeld = false;
  /** the write stripe this write holds (worker/sequencer.ts), or -1 */
  stripe = -1;
  /** parked for its stripe: what resumes it */
  holder: StripeHolder | null = null;
  /** a dropKey delete (no client line to forward) */
  dropping = false;
  /** a check of a written key on master and backup, not a client's request */
  checking = false;
  /** check: how many times master and backup were found to differ in a row */
  strikes = 0;
  /** check: when it is to be sent (performance.now() ms) */
  dueAt = 0;
  /** check: how many times its reads failed */
  checkFailures = 0;
  /** backend ops started and not yet answered or failed */
  pendingOps = 0;
  /** the key was looked up on the backup (and copied into the warming master) before this request went */
  prefilled = false;

  keyStart(i: number): number { return this.keys[2 * i]!; }
  keyEnd(i: number): number { return this.keys[2 * i + 1]!; }

  setKeys(offsets: Int32Array, count: number): void {
    if (this.keys.length < 2 * count) this.keys = new Int32Array(Math.max(2 * count, 2 * this.keys.length));
    const keys = this.keys;
    for (let i = 0; i < 2 * count; i++) keys[i] = offsets[i]!;
    this.keyCount = count;
  }

  /** Starts a retrieval of n keys: every value a miss until found. */
  expectValues(n: number): void {
    const values = this.values;
    for (let i = 0; i < n; i++) values[i] = null;
    if (this.valueSpans.length < 2 * n) this.valueSpans = new Int32Array(Math.max(2 * n, 2 * this.valueSpans.length));
    this.valueCount = n;
  }

  setValue(i: number, buf: Buffer, start: number, end: number): void {
    this.values[i] = buf;
    this.valueSpans[2 * i] = start;
    this.valueSpans[2 * i + 1] = end;
  }

  reset(): void {
    this.client = null;
    this.buf = EMPTY;
    this.done = false;
    this.reply = null;
    const values = this.values;
    for (let i = 0; i < this.valueCount; i++) values[i] = null;
    this.valueCount = 0;
    // A pooled request keeps its tables for the next one, but not a giant get's.
    if (this.keys.length > MAX_KEPT_KEYS * 2) this.keys = new Int32Array(2);
    if (this.valueSpans.length > MAX_KEPT_KEYS * 2) {
      this.valueSpans = new Int32Array(2);
      this.values = [];
    }
    this.waiting = 0;
    this.refs = 0;
    this.masterReply = null;
    this.backupReply = null;
    this.masterState = 0;
    this.backupState = 0;
    this.casHeld = false;
    this.stripe = -1;
    this.holder = null;
    this.dropping = false;
    this.checking = false;
    this.strikes = 0;
    this.checkFailures = 0;
    this.pendingOps = 0;
    this.retried = false;
    this.prefilled = false;
    this.ackAfterBackup = false;
    this.deferMaster = false;
    this.holding = false;
    this.origin = null;
    this.backupIsTruth = false;
    this.metaFlags = 0;
    this.decodedKey = null;
    this.master = -1;
    this.backup = -1;
    this.binOp = -1;
  }
}

const EMPTY = Buffer.alloc(0);
/** Key and value tables up to this many keys stay with a pooled request or op. */
const MAX_KEPT_KEYS = 4096;

/** One request to one backend server; what its connection reads of it is backend/connection.ts's PendingOp. */
export class Op {
  req: Request | null = null;
  role = 0;
  server = -1;
  /** the connection the op is queued on */
  conn: BackendConnection | null = null;
  /** what reply it expects: Expect.LINE / RETRIEVAL / META / META_GET (protocol/response-parser.ts) */
  kind = 0;
  /** a read sent to a warming master: its misses are looked up on the backup */
  warm = false;
  /** retrieval: keyIdx[0, keyCount) are the indexes of the request's keys asked of this server, in order */
  keyIdx: number[] = [];
  keyCount = 0;
  /** retrieval: how far value matching has advanced in keyIdx */
  cursor = 0;
  sentAt = 0;
  /** the key it concerns, for ops that carry one key: journaled if the op fails */
  keyBuf: Buffer | null = null;
  keyStart = 0;
  keyEnd = 0;
  /** WARM_LOOKUP / WARM_VERIFY: the index of the request's key it concerns */
  keyIndex = 0;
  /** WARM_VERIFY: the backup's cas at the lookup, and the master that was filled */
  token = '';
  peer = -1;

  reset(): void {
    this.req = null;
    this.keyBuf = null;
    this.warm = false;
    if (this.keyCount > MAX_KEPT_KEYS) this.keyIdx = [];
    this.keyCount = 0;
    this.cursor = 0;
    this.server = -1;
    this.conn = null;
  }
}

/** Free lists; bounded so that a burst does not pin its peak forever. */
export class Pools {
  private readonly requests: Request[] = [];
  private readonly ops: Op[] = [];
  private static readonly MAX_FREE = 4096;

  request(): Request {
    return this.requests.pop() ?? new Request();
  }

  freeRequest(r: Request): void {
    r.reset();
    if (this.requests.length < Pools.MAX_FREE) this.requests.push(r);
  }

  op(): Op {
    return this.ops.pop() ?? new Op();
  }

  freeOp(o: Op): void {
    o.reset();
    if (this.ops.length < Pools.MAX_FREE) this.ops.push(o);
  }
}
