// The divergence check of written keys.
//
// Two entry proxies do not share stripes: their writes of one key, in flight at
// the same time, can still reach master and backup in opposite orders. So each
// replicated write's key is read on both (mg v f) CHECK_MS after the write is
// over, holding the stripe; a backup value that differs from the master's twice,
// CHECK_MS apart, is deleted from the backup and counted (backup_divergences).
// A backup that lacks the key is no divergence: that is what a repair leaves.
//
//   write settled --queue--> due in CHECK_MS --stripe--> mg on master and backup
//     same, or the backup lacks it --> done
//     different --> again in CHECK_MS --> still different --> delete on the backup
//   a key marked stale (md I, ms I) is not read: any mg would take its recache token

import { performance } from 'node:perf_hooks';
import type { BackendConnection } from '../backend/connection.js';
import { Cmd } from '../protocol/commands.js';
import { MG, MG_GET_FLAGS } from '../protocol/gets-as-mg.js';
import { bytesEqual } from '../io/buffers.js';
import { Expect } from '../protocol/response-parser.js';
import { isMissReply } from '../protocol/reply-meaning.js';
import * as wire from '../protocol/wire.js';
import { NONE } from '../routing/policy.js';
import { S } from '../shared/server-stats.js';
import { STRIPES } from '../shared/stripes.js';
import type { ChecksRoom, WorkerContext } from './context.js';
import { Request, Role, type StripeHolder } from './request.js';

/** How long after a write its key is checked on master and backup, and again after a difference. */
const CHECK_MS = 100;
/**
 * How often due checks are sent: a burst of CHECK_TICK_MS of writes' checks at
 * a time rather than CHECK_MS of them, which held up other requests (p99).
 */
const CHECK_TICK_MS = 10;
/** A check whose reads fail is tried again this many times (a server that stays away is recovered instead). */
const CHECK_RETRIES = 3;

export class Checks implements ChecksRoom {
  /** checks of written keys, oldest first from head, each due at its dueAt */
  private due: Request[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | null = null;
  /** replaced by a reload: finishes what is in flight, starts no check */
  private retired = false;
  /** per stripe: a check queued and not yet sent, so that a hot key is checked once per CHECK_MS */
  private readonly queued: Array<Request | null> = new Array<Request | null>(STRIPES).fill(null);

  constructor(private readonly ctx: WorkerContext, private readonly holder: StripeHolder) {}

  /** Copies the written key into a check request, sent CHECK_MS from now (unless one for it is queued). */
  queue(req: Request, stripe: number): void {
    if (this.isQueued(req, stripe)) return;
    const ks = req.keyStart(0);
    const ke = req.keyEnd(0);
    const c = this.ctx.pools.request();
    c.refs = 1;
    c.cmd = Cmd.MG;
    c.checking = true;
    c.affinity = req.affinity;
    // The key's bytes as the client sent them (a base64 token for b); its input buffer is reused.
    const copy = Buffer.allocUnsafe(ke - ks);
    req.buf.copy(copy, 0, ks, ke);
    c.buf = copy;
    c.keys[0] = 0;
    c.keys[1] = copy.length;
    c.keyCount = 1;
    c.decodedKey = req.decodedKey;
    this.queued[stripe] = c;
    this.schedule(c);
  }

  /**
   * The key was just marked stale (md I, ms I): no check reads it. Any mg of a
   * stale item takes its recache token (W), and the client that reads it
   * next must get it, or every reader is told another recaches (Z) until the
   * item expires. A check queued by an earlier write of the key is dropped.
   */
  cancel(req: Request, stripe: number): void {
    if (!this.isQueued(req, stripe)) return;
    // run() drops it when it is due.
    this.queued[stripe]!.checking = false;
    this.queued[stripe] = null;
  }

  private isQueued(req: Request, stripe: number): boolean {
    const queued = this.queued[stripe]!;
    const ks = req.keyStart(0);
    const ke = req.keyEnd(0);
    return queued !== null && queued.buf.length === ke - ks && bytesEqual(queued.buf, 0, req.buf, ks, ke - ks);
  }

  /** A check looked at again later: queued under its stripe (if free), so that an invalidation can still drop it. */
  private again(c: Request): void {
    this.ctx.routeSingle(c);
    const stripe = this.ctx.router.hashed & (STRIPES - 1);
    if (this.queued[stripe] === null) this.queued[stripe] = c;
    this.schedule(c);
  }

  private schedule(c: Request): void {
    if (this.retired) { this.ctx.release(c); return; }
    c.dueAt = performance.now() + CHECK_MS;
    this.due.push(c);
    if (this.timer === null) {
      this.timer = setTimeout(runChecks, CHECK_TICK_MS, this);
      this.timer.unref();
    }
  }

  /** @internal */ run(): void {
    const ctx = this.ctx;
    this.timer = null;
    const due = this.due;
    const now = performance.now();
    let head = this.head;
    while (head < due.length && due[head]!.dueAt <= now) {
      const c = due[head]!;
      due[head++] = null!;
      if (!c.checking) { ctx.release(c); continue; } // cancelled
      ctx.routeSingle(c);
      const stripe = ctx.router.hashed & (STRIPES - 1);
      if (this.queued[stripe] === c) this.queued[stripe] = null;
      if (!ctx.sequencer.acquire(c, stripe, this.holder)) continue;
      if (!this.send(c)) this.end(c);
    }
    if (head === due.length) {
      due.length = 0;
      head = 0;
    } else if (head > 1024 && head * 2 > due.length) {
      due.copyWithin(0, head);
      due.length -= head;
      head = 0;
    }
    this.head = head;
    if (head < due.length) {
      this.timer = setTimeout(runChecks, CHECK_TICK_MS, this);
      this.timer.unref();
    }
  }

  /** A parked check now holds its stripe (Sequencer): it is sent, or ends if it cannot be. */
  resume(c: Request): void {
    this.ctx.routeSingle(c);
    if (!this.send(c)) this.end(c);
  }

  /** mg <key> v f to master and backup, both up; false if either cannot be asked now. */
  private send(c: Request): boolean {
    const ctx = this.ctx;
    const health = ctx.health;
    if (c.backup === NONE || !health.isUp(c.master) || !health.isUp(c.backup)) return false;
    const now = performance.now();
    const mc = ctx.connection(c.master, c.affinity, now);
    const bc = ctx.connection(c.backup, c.affinity, now);
    if (mc === null || bc === null) return false;
    c.masterReply = null;
    c.backupReply = null;
    c.reply = null;
    c.waiting = 2;
    this.read(c, mc, now);
    this.read(c, bc, now);
    return true;
  }

  private read(c: Request, conn: BackendConnection, now: number): void {
    const op = this.ctx.newOp(c, Role.CHECK, Expect.META);
    conn.outbox.addAll(MG);
    this.ctx.warm.keyToken(conn.outbox, c, 0);
    conn.outbox.addAll(MG_GET_FLAGS);
    conn.enqueue(op, now);
  }

  private end(c: Request): void {
    this.ctx.writes.settleStripe(c);
    this.ctx.release(c);
  }

  /** One side of a check answered (or failed: failed). */
  answered(c: Request, server: number, buf: Buffer, start: number, end: number, failed: boolean): void {
    const ctx = this.ctx;
    if (failed) c.reply = wire.NOTHING;
    else if (server < ctx.masterCount) c.masterReply = buf.subarray(start, end);
    else c.backupReply = buf.subarray(start, end);
    if (--c.waiting > 0) return;
    const m = c.masterReply;
    const b = c.backupReply;
    if (c.reply !== null && c.checkFailures++ < CHECK_RETRIES) {
      // A read failed (a timeout, a connection lost): no verdict yet.
      this.again(c);
      return;
    }
    // The stripe goes when this op is done (onLine/onFailed); the request with the last reference.
    if (c.reply !== null || m === null || b === null || isMissReply(b) || m.equals(b)) { ctx.release(c); return; }
    if (c.strikes++ === 0) {
      // Maybe a write through another proxy is between the two servers: look again.
      this.again(c);
      return;
    }
    ctx.stats[c.backup]![S.BACKUP_DIVERGENCES]!++;
    const k = ctx.keyOf(c);
    ctx.deleteKey(c, c.backup, k.buf, k.start, k.end, performance.now());
    ctx.release(c);
  }

  /** After a reload: no more checks here (the new dispatcher checks the writes it sends). */
  retire(): void {
    this.retired = true;
    if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
    const due = this.due;
    for (let i = this.head; i < due.length; i++) this.ctx.release(due[i]!);
    due.length = 0;
    this.head = 0;
    this.queued.fill(null);
  }
}

function runChecks(c: Checks): void {
  c.run();
}
