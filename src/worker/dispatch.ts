// The worker's data path between client requests and backend connections: a
// thin dispatcher that hands requests to the rooms that serve them and backend
// replies back to the room that takes them (by the op's role).
//
//   client --submit(req)--> Reads (get.., mg, me) | Writes (set.., flush_all)
//   backend reply --onValue/onLine--> by op role --> Reads | Writes (flush_all) | WritePair | Checks | WarmUp | Invalidation
//                 --onFailed-------> the same, as a failure (reads fail over to the backup)
//
// The rooms share one WorkerContext (context.ts): servers, routing, health,
// journal, stripes and counters. What each room does is told at its top.

import { serverNames, type Config } from '../config/config.js';
import { BackendConnection, Failure, type ReplyHandler } from '../backend/connection.js';
import { Cmd } from '../protocol/commands.js';
import { META_BASE64 } from '../protocol/meta-request.js';
import { bytesEqual } from '../io/buffers.js';
import { Expect } from '../protocol/response-parser.js';
import { isErrorReply } from '../protocol/reply-meaning.js';
import * as wire from '../protocol/wire.js';
import { C } from '../shared/counters.js';
import { BackendUnexpectedReplyError, codeOf } from '../errors.js';
import { log } from '../log.js';
import { Checks } from './checks.js';
import { WorkerContext, type ContextOptions } from './context.js';
import { Invalidation } from './invalidation.js';
import type { Journal } from './journal.js';
import { Reads } from './reads.js';
import { Op, Pools, Request, Role, type StripeHolder } from './request.js';
import { WarmUp } from './warm-up.js';
import { WritePair } from './write-pair.js';
import type { WriteSampler } from './write-sampler.js';
import { Writes } from './writes.js';

export interface DispatcherOptions extends ContextOptions {
  /** told when an invalidation asked by the main thread is over: whether it worked, and how many keys it deleted */
  readonly onInvalidated: (server: number, ok: boolean, deleted: number) => void;
}

export class Dispatcher implements ReplyHandler<Op>, StripeHolder {
  /** shared by every dispatcher of the worker, so a request may be released by any */
  readonly pools: Pools;
  readonly config: Config;
  /** this worker's row of the counters */
  readonly counters: Float64Array;
  private readonly ctx: WorkerContext;
  private readonly reads: Reads;
  private readonly writes: Writes;
  private readonly pair: WritePair;
  private readonly checks: Checks;
  private readonly warm: WarmUp;
  private readonly invalidation: Invalidation;

  constructor(options: DispatcherOptions) {
    this.pools = options.pools;
    this.config = options.config;
    this.counters = options.counters;
    const ctx = new WorkerContext(options, this);
    this.ctx = ctx;
    this.reads = ctx.reads = new Reads(ctx);
    this.writes = ctx.writes = new Writes(ctx, this);
    this.pair = new WritePair(ctx, this.writes);
    this.checks = ctx.checks = new Checks(ctx, this);
    this.warm = ctx.warm = new WarmUp(ctx);
    this.invalidation = new Invalidation(ctx, options.onInvalidated);
  }

  get journal(): Journal { return this.ctx.journal; }
  get sampler(): WriteSampler { return this.writes.sampler; }

  /** A backend connection has bytes to write: flushed at the end of this turn. */
  schedule(conn: BackendConnection<Op>): void {
    this.ctx.scheduler.schedule(conn);
  }

  // ---- requests in ----

  /** Starts a parsed request; its reply arrives later through the client's queue. */
  submit(req: Request): void {
    const cmd = req.cmd;
    if (cmd <= Cmd.GATS) return this.reads.retrieval(req);
    if (cmd === Cmd.FLUSH_ALL) return this.writes.flushAllServers(req);
    if (cmd >= Cmd.MG && (req.metaFlags & META_BASE64) !== 0) {
      // Route (and journal) by the key's bytes, as a text command for the same key would.
      req.decodedKey = Buffer.from(req.buf.toString('latin1', req.keyStart(0), req.keyEnd(0)), 'base64');
    }
    if (cmd === Cmd.MG || cmd === Cmd.ME) return this.reads.metaRead(req);
    this.writes.write(req);
  }

  /**
   * Deletes a key on its master and backup, answering nobody: a set or ms too
   * large to store, whose old value memcached would unlink (Writes.dropKey).
   */
  dropKey(buf: Buffer, ks: number, ke: number, client: NonNullable<Request['origin']>, base64: boolean): void {
    this.writes.dropKey(buf, ks, ke, client, base64);
  }

  /** A parked write (or check, or drop) now holds its stripe: it goes out (and drops the reference parking took). */
  resumeWrite(req: Request): void {
    if (req.dropping) {
      this.writes.dropLocked(req);
    } else if (req.checking) {
      this.checks.resume(req);
    } else {
      this.ctx.routeSingle(req);
      this.writes.writeLocked(req);
    }
    this.writes.settleStripe(req);
    this.ctx.release(req);
  }

  /** Deletes on a returning server the keys journaled for it (Invalidation.start). */
  invalidate(server: number, flush: boolean, extra: readonly string[] = []): void {
    this.invalidation.start(server, flush, extra);
  }

  /** Drops one reference; the last one returns the request to its pool. */
  release(req: Request): void {
    this.ctx.release(req);
  }

  // ---- replies in ----

  onValue(op: Op, buf: Buffer, start: number, end: number, keyStart: number, keyEnd: number): void {
    const req = op.req!;
    if (op.role !== Role.CLIENT) return;
    // Values come back in the order the keys were asked, misses skipped.
    const idx = op.keyIdx;
    const rbuf = req.buf;
    const klen = keyEnd - keyStart;
    for (let c = op.cursor; c < op.keyCount; c++) {
      const i = idx[c]!;
      const ks = req.keyStart(i);
      if (req.keyEnd(i) - ks === klen && bytesEqual(rbuf, ks, buf, keyStart, klen)) {
        req.setValue(i, buf, start, end);
        op.cursor = c + 1;
        return;
      }
    }
    // A value for a key not asked: the stream is not what we think it is.
    op.conn?.fail(Failure.PROTOCOL, new BackendUnexpectedReplyError('value for a key that was not requested'));
  }

  onLine(op: Op, buf: Buffer, start: number, end: number): void {
    const req = op.req!;
    const server = op.server;
    this.ctx.health.resetTimeouts(server);
    switch (op.role) {
      case Role.FORGET: break;
      case Role.INVALIDATE: this.invalidation.answered(server, isErrorReply(buf, start)); break;
      case Role.WARM_LOOKUP: this.warm.lookupAnswered(req, op.keyIndex, buf, start, end); break;
      case Role.WARM_VERIFY: this.warm.verifyAnswered(req, op, buf, start, end); break;
      case Role.CHECK: this.checks.answered(req, server, buf, start, end, false); break;
      case Role.WARM_FILL: this.warm.filled(req, op, buf, start); break;
      case Role.WARM_PREFILL: this.warm.prefillAnswered(req, buf, start, end); break;
      case Role.CLIENT:
        if (req.cmd <= Cmd.GATS) this.reads.retrievalAnswered(req, op, buf, start, end);
        else if (req.cmd === Cmd.FLUSH_ALL) this.writes.flushAnswered(req, buf, start, end);
        else if (req.cmd === Cmd.MG || req.cmd === Cmd.ME) this.reads.metaReadAnswered(req, op, buf, start, end);
        else this.pair.answered(req, server < this.ctx.masterCount, buf, start, end);
        break;
      default: this.pair.shadowAnswered(req, buf, start, end);
    }
    this.pools.freeOp(op);
    req.pendingOps--;
    this.writes.settleStripe(req);
    this.ctx.release(req);
  }

  onFailed(op: Op, failure: number): void {
    const ctx = this.ctx;
    const req = op.req!;
    const role = op.role;
    const server = op.server;
    const kind = op.kind;
    const retrieval = kind === Expect.RETRIEVAL || kind === Expect.META_GET;
    if (op.keyBuf !== null) ctx.journal.add(server, op.keyBuf, op.keyStart, op.keyEnd);
    // A write whose fate on the server is unknown (it timed out: its bytes may still
    // land) leaves the server possibly stale for that key: it must not serve reads
    // until recovery has cleared it, whatever the failure limit says for reads.
    if (failure === Failure.TIMEOUT && !retrieval && role !== Role.WARM_LOOKUP &&
        role !== Role.WARM_VERIFY && role !== Role.WARM_PREFILL && req.cmd !== Cmd.MG && req.cmd !== Cmd.ME && ctx.health.markDown(server)) {
      log.warn('server marked down', { server: ctx.servers[server]![0]!.address.name, reason: 'a write to it timed out' });
    }
    // The op goes back to its pool at the end; a retrieval's keys move to the failover.
    const keys = retrieval ? op.keyIdx.slice(0, op.keyCount) : null;
    const warm = op.warm;
    this.pools.freeOp(op);
    if (failure === Failure.CLOSED && role === Role.CLIENT) {
      // The connection closed under this read (an idle close racing it): once
      // more on a new connection to the same server before anything counts.
      this.reads.again(req, server, keys, warm);
      req.pendingOps--;
      ctx.release(req);
      return;
    }
    switch (role) {
      case Role.FORGET: break;
      case Role.INVALIDATE: this.invalidation.answered(server, true); break;
      case Role.WARM_VERIFY: case Role.WARM_FILL: break;
      case Role.CHECK: this.checks.answered(req, server, wire.NOTHING, 0, 0, true); break;
      // The backup failed: the request goes on without the copy.
      case Role.WARM_PREFILL: this.warm.resume(req); break;
      // The backup failed too: the key is a miss.
      case Role.WARM_LOOKUP: this.warm.lookupFailed(req); break;
      case Role.CLIENT:
        if (retrieval || req.cmd === Cmd.MG || req.cmd === Cmd.ME) {
          this.reads.failed(req, server, keys);
        } else if (req.cmd === Cmd.FLUSH_ALL) {
          this.writes.flushFailed(req);
        } else {
          ctx.journalKey(server, req);
          this.pair.failed(req, server);
        }
        break;
      default:
        ctx.journalKey(server, req);
        this.pair.shadowFailed(req);
    }
    req.pendingOps--;
    this.writes.settleStripe(req);
    ctx.release(req);
  }

  /**
   * A client's read (text retrieval, mg, me) may go again on a new connection,
   * once; so may a warm-up lookup on the backup (its failure is only a miss).
   * A write may not: whether it landed is unknown.
   */
  retryable(op: Op): boolean {
    // A check of a written key reads: it is sent again (Checks.answered) as a failure.
    if (op.role === Role.WARM_LOOKUP || op.role === Role.CHECK) return true;
    if (op.role !== Role.CLIENT) return false;
    const req = op.req!;
    return !req.retried && (op.kind === Expect.RETRIEVAL || op.kind === Expect.META_GET || req.cmd === Cmd.MG || req.cmd === Cmd.ME);
  }

  onConnectionFailed(conn: BackendConnection<Op>, failure: number, error: Error | null): void {
    const ctx = this.ctx;
    const server = conn.server;
    const name = conn.address.name;
    if (failure === Failure.CLOSED) {
      log.debug('backend connection closed under reads; sending them again', { server: name, reason: error?.message ?? 'closed', code: codeOf(error) });
      return;
    }
    if (failure === Failure.TIMEOUT) {
      ctx.counters[C.BACKEND_TIMEOUTS]!++;
      const n = ctx.health.addTimeout(server);
      if (n >= this.config.failureLimit && ctx.health.markDown(server)) {
        log.warn('server marked down', { server: name, reason: `${n} consecutive timeouts`, code: codeOf(error) });
      }
      return;
    }
    ctx.counters[C.BACKEND_ERRORS]!++;
    // A refused or reset connection, or a stream out of step: either way the
    // server's answers cannot be trusted until the prober has seen it well again.
    if (ctx.health.markDown(server)) log.warn('server marked down', { server: name, reason: error?.message ?? 'connection lost', code: codeOf(error) });
  }

  // ---- lifetime ----

  closeAll(): void {
    for (const conns of this.ctx.servers) for (const c of conns) c.close();
  }

  /** After a reload: the requests still in flight finish here, then the connections close. */
  retire(): void {
    // Queued checks would open these connections again once they are closed;
    // the new dispatcher checks the writes it sends.
    this.checks.retire();
    const servers = this.ctx.servers;
    const check = (): void => {
      for (const conns of servers) for (const c of conns) if (c.inflight > 0) return;
      clearInterval(timer);
      this.closeAll();
    };
    const timer = setInterval(check, 100);
    check();
  }

  /** After a reload: takes over what `old` journaled for the servers both know, by name. */
  adoptJournals(old: Dispatcher): void {
    const names = serverNames(old.config);
    const mine = serverNames(this.config);
    for (let i = 0; i < names.length; i++) {
      const j = mine.indexOf(names[i]!);
      if (j < 0) continue;
      const { keys, overflowed } = old.journal.take(i);
      this.journal.restore(j, keys, overflowed);
    }
  }
}
