// The two answers of a replicated write, which writes.ts sent: which one is the
// client's, and what the other one then does.
//
//   each side (Request.masterState / backupState): 0 --writes.ts--> SENT --here--> ANSWERED | FAILED
//   both answered: compared; a disagreement deletes the key on the backup (repair)
//   a held cas stored on the master (STORED, HD): the backup gets the item as a set
//   a delete sent to the backup first: the master gets it once the backup answered
//   master warming: the client's reply waits for both, the backup's is taken
//                   when only the master lacked the key (then copied into it)
//   master recovering: the backup's answer is the client's
//   master down, or its request failed: the backup's answer is the client's

import { performance } from 'node:perf_hooks';
import { Cmd } from '../protocol/commands.js';
import { META_QUIET } from '../protocol/meta-request.js';
import { bytesEqual } from '../io/buffers.js';
import { isCount, isErrorReply, isHD, isMissReply, isVA, sameMeaning } from '../protocol/reply-meaning.js';
import * as wire from '../protocol/wire.js';
import { NONE, recovering, shadowTarget, warming, writable } from '../routing/policy.js';
import { C } from '../shared/counters.js';
import { S } from '../shared/server-stats.js';
import type { WorkerContext } from './context.js';
import { ANSWERED, FAILED, Request, Role, SENT } from './request.js';
import type { Writes } from './writes.js';

export class WritePair {
  constructor(private readonly ctx: WorkerContext, private readonly writes: Writes) {}

  /** A server answered a write whose reply is the client's (its master's, or its backup's when the master is down). */
  answered(req: Request, fromMaster: boolean, buf: Buffer, start: number, end: number): void {
    const line = replyLine(buf, start, end);
    req.waiting--;
    // Quiet meta writes answer nothing when all went well (HD).
    const reply = quieted(req, line) ? wire.NOTHING : line;
    if (fromMaster) {
      req.masterState = ANSWERED;
      req.masterReply = line;
      req.reply = reply;
      if (req.ackAfterBackup && req.backupState === SENT) return;
      if (req.ackAfterBackup && req.backupState === ANSWERED) { this.settleWarmWrite(req); return; }
      this.ctx.complete(req);
      if (req.casHeld) {
        this.casAnswered(req, line.equals(wire.STORED) || isMetaSuccess(req, line));
      } else if (req.backupState === ANSWERED) {
        this.compare(req);
      }
    } else {
      // Master down, backup served as primary.
      req.backupState = ANSWERED;
      req.reply = reply;
      this.ctx.complete(req);
    }
  }

  /** The backup's answer to a replicated write. */
  shadowAnswered(req: Request, buf: Buffer, start: number, end: number): void {
    const line = replyLine(buf, start, end);
    req.backupState = ANSWERED;
    req.backupReply = line;
    if (req.deferMaster) { this.sendDeferredMaster(req); return; }
    if (req.masterState === ANSWERED) {
      if (req.ackAfterBackup) this.settleWarmWrite(req);
      else this.compare(req);
    } else if (req.masterState === FAILED && !req.done) {
      req.reply = quieted(req, line) ? wire.NOTHING : line;
      this.ctx.complete(req);
    }
  }

  /** A write whose reply is the client's failed on `server` (journaled there by the caller). */
  failed(req: Request, server: number): void {
    req.waiting--;
    if (server < this.ctx.masterCount && req.masterState === SENT) {
      req.masterState = FAILED;
      if (req.casHeld) this.casAnswered(req, false);
      // The backup's reply, when it has or will come, answers the client.
      if (req.backupState === ANSWERED) { req.reply = req.backupReply; this.ctx.complete(req); }
      else if (req.backupState !== SENT) { req.reply = wire.SERVER_ERROR_UNAVAILABLE; this.ctx.complete(req); }
    } else {
      req.backupState = FAILED;
      req.reply = wire.SERVER_ERROR_UNAVAILABLE;
      this.ctx.complete(req);
    }
  }

  /** The backup copy of a write was lost; if the master's was too, the client learns it. */
  shadowFailed(req: Request): void {
    req.backupState = FAILED;
    if (req.deferMaster) { this.sendDeferredMaster(req); return; }
    if (req.ackAfterBackup && req.masterState === ANSWERED) this.ctx.complete(req);
    if (req.masterState === FAILED && !req.done) {
      req.reply = wire.SERVER_ERROR_UNAVAILABLE;
      this.ctx.complete(req);
    }
  }

  /** The master answered a held cas: if it stored the item, the backup gets it as a set. */
  private casAnswered(req: Request, stored: boolean): void {
    req.casHeld = false;
    if (!stored) return;
    const ctx = this.ctx;
    const now = performance.now();
    const conn = shadowTarget(ctx.health, req.backup) !== NONE ? ctx.connection(req.backup, req.affinity, now) : null;
    if (conn !== null) {
      // Compared like any write: an ma's new value tells whether the backup's counter had diverged.
      this.writes.sendWrite(req, conn, Role.SHADOW, now, true);
      req.backupState = SENT;
      return;
    }
    ctx.journalKey(req.backup, req);
  }

  /**
   * Both answered a write to a warming master. If the master lacked the key and
   * the backup had it (incr, append, replace... of a key not yet warmed), the
   * backup's answer is the true one: it goes to the client, and the backup's item
   * is copied into the master. Otherwise the master's answer stands.
   */
  private settleWarmWrite(req: Request): void {
    const m = req.masterReply!;
    const b = req.backupReply!;
    if (req.backupIsTruth) {
      // Recovering: the master is about to be flushed; the backup serves the reads.
      req.reply = quieted(req, b) ? wire.NOTHING : b;
      this.ctx.complete(req);
      return;
    }
    // The backup's answer when the master lacked the key: its value, or its
    // CLIENT_ERROR about that value (an incr of a non-number); not a failure of its own.
    if (isMissReply(m) && !isMissReply(b) && (!isErrorReply(b, 0) || b[0] === 0x43 /* CLIENT_ERROR */)) {
      req.reply = quieted(req, b) ? wire.NOTHING : b;
      this.ctx.complete(req);
      if (!isDelete(req)) this.ctx.warm.lookup(req, 0);
      return;
    }
    // Two counts that differ: the master counted on from an old copy, a warm-up
    // fill that read the backup before an earlier write of the key and landed
    // after it (before its check could delete it). The backup took every write:
    // its count answers, and the master's copy goes, to be filled again.
    if ((req.cmd === Cmd.INCR || req.cmd === Cmd.DECR) && isCount(m) && isCount(b) && !m.equals(b)) {
      req.reply = b;
      this.ctx.complete(req);
      const k = this.ctx.keyOf(req);
      this.ctx.deleteKey(req, req.master, k.buf, k.start, k.end, performance.now());
      return;
    }
    this.ctx.complete(req);
    this.compare(req);
  }

  /** The backup has answered a delete held back for a warming master: now the master. */
  private sendDeferredMaster(req: Request): void {
    const ctx = this.ctx;
    req.deferMaster = false;
    const conn = writable(ctx.health, req.master) ? ctx.connection(req.master, req.affinity, performance.now()) : null;
    if (conn === null) {
      ctx.journalKey(req.master, req);
      req.masterState = FAILED;
      req.reply = req.backupState === ANSWERED ? req.backupReply : wire.SERVER_ERROR_UNAVAILABLE;
      ctx.complete(req);
      return;
    }
    this.writes.sendWrite(req, conn, Role.CLIENT, performance.now(), false);
    req.masterState = SENT;
    ctx.letGo(req);
    // As for other writes (Writes.writeLocked): a recovering master's reply is not the
    // truth, and a warming one may lack the key the backup just deleted.
    req.backupIsTruth = recovering(ctx.health, req.master);
    req.ackAfterBackup = req.backupIsTruth || warming(ctx.health, req.master);
  }

  /** Master and backup both answered a write: a disagreement removes the key from the backup. */
  private compare(req: Request): void {
    // Whichever of them had the key, a delete left it on neither; each server has
    // its own cas counter: "HD c7" and "HD c9" agree.
    if (isDelete(req) || sameMeaning(req.masterReply!, req.backupReply!, req.cmd >= Cmd.MG)) return;
    const ctx = this.ctx;
    ctx.counters[C.BACKUP_REPAIRS]!++;
    // SERVER_ERROR (out of memory, -M): the backup refused what the master stored.
    const b = req.backupReply!;
    if (b[0] === 0x53 && b[6] === 0x5f) ctx.stats[req.backup]![S.WRITE_REFUSALS]!++;
    const k = ctx.keyOf(req);
    ctx.deleteKey(req, req.backup, k.buf, k.start, k.end, performance.now());
  }
}

/**
 * A quiet meta write's reply that memcached would not send: HD (ms, md, ma) and,
 * for ma, the value of a successful incr/decr (VA).
 */
function quieted(req: Request, line: Buffer): boolean {
  if ((req.metaFlags & META_QUIET) === 0) return false;
  return isHD(line) || (req.cmd === Cmd.MA && isVA(line));
}

function isDelete(r: Request): boolean {
  return r.cmd === Cmd.DELETE || r.cmd === Cmd.MD;
}

/** HD, or the VA of an ma that returned its value */
function isMetaSuccess(req: Request, line: Buffer): boolean {
  if (req.cmd < Cmd.MS) return false;
  return isHD(line) || (req.cmd === Cmd.MA && isVA(line));
}

/** A write's reply line: the shared constant for the usual STORED, else the bytes where they are. */
function replyLine(buf: Buffer, start: number, end: number): Buffer {
  if (end - start === wire.STORED.length && bytesEqual(buf, start, wire.STORED, 0, wire.STORED.length)) return wire.STORED;
  return buf.subarray(start, end);
}
