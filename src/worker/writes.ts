// Writes: set add replace append prepend cas delete incr decr touch, ms md ma,
// flush_all, and the deletes the proxy makes itself after a too-large set; here,
// how each is sent.
//
// A write goes to the key's master (whose reply is the client's) and to its
// backup (a shadow whose reply is compared with the master's; a disagreement
// deletes the key on the backup so that it never holds a value the master does
// not: write-pair.ts takes both answers). A write that cannot reach a server,
// or whose request to it fails, is journaled for that server (journal.ts) so
// that the key is deleted there before it serves reads again.
//
// Every such write holds its key's stripe (sequencer.ts) from the moment it is
// sent until both servers have answered it (pendingOps back to 0), so no other
// write of the key, from any worker of this proxy, can pass it on the way to
// either server: master and backup apply the proxy's writes in one order.
//
// cas cannot be forwarded to the backup (its cas id is the master's): once the
// master answers STORED, the item goes to the backup as a set (a meta write
// with C<cas>: once the master answers HD, without its C; write-pair.ts
// casAnswered). Until then the cas holds its stripe, so later writes of the
// key wait and the backup applies them in the order the master did.
//
//   states of each side (Request.masterState / backupState): 0 -> SENT -> ANSWERED | FAILED

import { performance } from 'node:perf_hooks';
import { serverNames } from '../config/config.js';
import type { BackendConnection } from '../backend/connection.js';
import { Cmd } from '../protocol/commands.js';
import { META_CAS, META_DEPENDS, META_INVALIDATE } from '../protocol/meta-request.js';
import { Expect } from '../protocol/response-parser.js';
import { SET } from '../protocol/verbs.js';
import * as wire from '../protocol/wire.js';
import { NONE, recovering, shadowTarget, warming, writable } from '../routing/policy.js';
import { C } from '../shared/counters.js';
import { STRIPES } from '../shared/stripes.js';
import type { WorkerContext, WritesRoom } from './context.js';
import { ANSWERED, FAILED, Request, Role, SENT, type StripeHolder } from './request.js';
import { WriteSampler } from './write-sampler.js';

export class Writes implements WritesRoom {
  /** keys of replicated writes, sampled for main/coverage.ts */
  readonly sampler: WriteSampler;
  /** replicated writes left before the next one is sampled */
  private sampleIn = 1;

  constructor(private readonly ctx: WorkerContext, private readonly holder: StripeHolder) {
    this.sampler = new WriteSampler(serverNames(ctx.config));
  }

  write(req: Request): void {
    const ctx = this.ctx;
    const cmd = req.cmd;
    if (req.prefilled) { /* counted when it first came */ }
    else if (cmd === Cmd.TOUCH) ctx.counters[C.CMD_TOUCH]!++;
    else if (cmd <= Cmd.CAS || cmd === Cmd.MS) ctx.counters[C.CMD_SET]!++;
    ctx.routeSingle(req);
    // A write that depends on the key's value, to a warming master: the backup's copy first (prefill).
    if (dependsOnValue(req) && ctx.warm.prefill(req)) { ctx.hold(req); return; }
    if (req.backup === NONE) { this.writeLocked(req); return; }
    if (!ctx.sequencer.acquire(req, ctx.router.hashed & (STRIPES - 1), this.holder)) {
      ctx.hold(req);
    } else {
      // A write answered at once (no server to send it to) is written to the
      // client and released inside writeLocked: the reference keeps it to settle.
      req.refs++;
      this.writeLocked(req);
      this.settleStripe(req);
      ctx.release(req);
    }
  }

  /** Lets go of req's stripe once none of its ops is left (a held cas still waits for its master). */
  settleStripe(req: Request): void {
    if (req.stripe < 0 || req.pendingOps !== 0) return;
    const stripe = req.stripe;
    this.ctx.sequencer.release(req);
    if (req.checking || req.dropping || req.masterState !== ANSWERED || req.backupState === FAILED) return;
    if ((req.metaFlags & META_INVALIDATE) !== 0) this.ctx.checks.cancel(req, stripe);
    else this.ctx.checks.queue(req, stripe);
  }

  /** Sends a routed write (routeSingle just ran for it) to its master and backup. */
  writeLocked(req: Request): void {
    const ctx = this.ctx;
    const cmd = req.cmd;
    const master = req.master;
    const backup = req.backup;
    const now = performance.now();
    const health = ctx.health;
    const masterConn = writable(health, master) ? ctx.connection(master, req.affinity, now) : null;
    const shadow = shadowTarget(health, backup);
    const backupConn = shadow === NONE ? null : ctx.connection(shadow, req.affinity, now);
    // A server that misses this write must not serve the key's old value later.
    if (masterConn === null) ctx.journalKey(master, req);
    if (backupConn === null && backup !== NONE) ctx.journalKey(backup, req);
    if (masterConn !== null && backupConn !== null && (cmd === Cmd.DELETE || cmd === Cmd.MD)) {
      // A delete goes to the backup first, whatever state this proxy sees the
      // master in: another proxy may be warming it. Its warm-up fill (read from
      // the backup, then added to the master) is then either deleted by this
      // delete or finds the backup already empty when it checks (verifyFill).
      // Sent in parallel, the delete could reach the master before the fill and
      // the backup after the check, and the deleted value would stay.
      this.sendWrite(req, backupConn, Role.SHADOW, now, false);
      req.backupState = SENT;
      req.deferMaster = true;
      ctx.hold(req);
      return;
    }
    if (masterConn !== null) {
      this.sendWrite(req, masterConn, Role.CLIENT, now, false);
      req.masterState = SENT;
      // A warming master may lack the key the backup has (an incr there answers
      // NOT_FOUND): the write is answered once both have answered (write-pair.ts settleWarmWrite).
      req.backupIsTruth = backupConn !== null && recovering(health, master);
      req.ackAfterBackup = req.backupIsTruth || (backupConn !== null && warming(health, master));
      if (backupConn !== null) {
        if (isCasRequest(req)) {
          // Its backup copy waits for the master's answer (write-pair.ts casAnswered).
          req.casHeld = true;
        } else {
          this.sendWrite(req, backupConn, Role.SHADOW, now, false);
          req.backupState = SENT;
        }
        if (--this.sampleIn === 0) {
          const k = ctx.keyOf(req);
          this.sampleIn = this.sampler.take(master, backup, k.buf, k.start, k.end);
        }
      }
    } else if (backupConn !== null) {
      // Master down: the backup answers the client.
      this.sendWrite(req, backupConn, Role.CLIENT, now, false);
      req.masterState = FAILED;
      req.backupState = SENT;
    } else {
      req.reply = wire.SERVER_ERROR_UNAVAILABLE;
      ctx.complete(req);
    }
    ctx.letGo(req);
  }

  /** req to conn as an op of `role`; casAsSet: a cas (ms/ma C) without its condition. WritePair sends a write's second side with it. */
  sendWrite(req: Request, conn: BackendConnection, role: number, now: number, casAsSet: boolean): void {
    const meta = req.cmd >= Cmd.MG;
    const op = this.ctx.newOp(req, role, meta ? Expect.META : Expect.LINE);
    if (role === Role.CLIENT) req.waiting++;
    if (meta) {
      this.ctx.metaLine(conn, req, casAsSet);
      conn.enqueue(op, now);
      return;
    }
    const out = conn.outbox;
    const buf = req.buf;
    if (casAsSet) {
      // "cas <key> <flags> <exptime> <bytes> <cas>" -> "set <key> <flags> <exptime> <bytes>"
      let s = req.lineStart;
      while (buf[s] === 0x20) s++;
      let e = req.casStart;
      while (buf[e - 1] === 0x20) e--;
      out.addAll(SET);
      out.add(buf, s + 3, e);
    } else {
      out.add(buf, req.lineStart, req.forwardEnd);
    }
    out.addAll(wire.CRLF);
    if (req.cmd <= Cmd.CAS) out.add(buf, req.dataStart, req.dataStart + req.bytes + 2);
    conn.enqueue(op, now);
  }

  /**
   * Deletes a key on its master and backup, answering nobody: a set or ms too
   * large to store, whose old value memcached would unlink. `base64`: the key
   * token is base64 (ms ... b).
   */
  dropKey(buf: Buffer, ks: number, ke: number, client: NonNullable<Request['origin']>, base64: boolean): void {
    const ctx = this.ctx;
    const req = ctx.pools.request();
    req.refs = 1;
    req.cmd = Cmd.DELETE;
    req.buf = buf;
    req.affinity = client.id;
    req.origin = client;
    req.keys[0] = ks;
    req.keys[1] = ke;
    req.keyCount = 1;
    if (base64) req.decodedKey = Buffer.from(buf.toString('latin1', ks, ke), 'base64');
    req.dropping = true;
    ctx.routeSingle(req);
    if (req.backup === NONE || ctx.sequencer.acquire(req, ctx.router.hashed & (STRIPES - 1), this.holder)) {
      this.dropLocked(req);
      this.settleStripe(req);
    } else {
      // Parked behind another write of the key: the client's next get must not overtake it.
      ctx.hold(req);
    }
    ctx.release(req);
  }

  dropLocked(req: Request): void {
    const ctx = this.ctx;
    ctx.routeSingle(req);
    const k = ctx.keyOf(req);
    const kb = k.buf;
    const ks = k.start;
    const ke = k.end;
    const master = req.master;
    const backup = req.backup;
    const now = performance.now();
    if (writable(ctx.health, master)) ctx.deleteKey(req, master, kb, ks, ke, now);
    else ctx.journal.add(master, kb, ks, ke);
    if (shadowTarget(ctx.health, backup) !== NONE) ctx.deleteKey(req, backup, kb, ks, ke, now);
    else if (backup !== NONE) ctx.journal.add(backup, kb, ks, ke);
    ctx.letGo(req);
  }

  flushAllServers(req: Request): void {
    const ctx = this.ctx;
    ctx.counters[C.CMD_FLUSH]!++;
    const now = performance.now();
    for (let s = 0; s < ctx.servers.length; s++) {
      const conn = writable(ctx.health, s) ? ctx.connection(s, req.affinity, now) : null;
      if (conn === null) {
        // A server that misses a flush must be flushed before it serves reads again.
        ctx.journal.overflow(s);
        continue;
      }
      const op = ctx.newOp(req, Role.CLIENT, Expect.LINE);
      req.waiting++;
      conn.outbox.add(req.buf, req.lineStart, req.forwardEnd);
      conn.outbox.addAll(wire.CRLF);
      conn.enqueue(op, now);
    }
    if (req.waiting === 0) {
      req.reply = wire.SERVER_ERROR_UNAVAILABLE;
      ctx.complete(req);
    }
  }

  flushAnswered(req: Request, buf: Buffer, start: number, end: number): void {
    if (req.reply === null || req.reply === wire.OK) {
      req.reply = end - start === 4 && buf[start] === 0x4f ? wire.OK : buf.subarray(start, end);
    }
    if (--req.waiting === 0) this.ctx.complete(req);
  }

  flushFailed(req: Request): void {
    if (req.reply === null || req.reply === wire.OK) req.reply = wire.SERVER_ERROR_UNAVAILABLE;
    if (--req.waiting === 0) this.ctx.complete(req);
  }
}

/** add, cas, and the meta writes whose outcome depends on the key's value (ms E/A/P/R or C, ma N or C) */
function dependsOnValue(r: Request): boolean {
  const cmd = r.cmd;
  return cmd === Cmd.ADD || cmd === Cmd.CAS || (cmd >= Cmd.MS && (r.metaFlags & (META_DEPENDS | META_CAS)) !== 0);
}

/**
 * A write conditional on the master's cas id (cas; ms, md, ma with C): the
 * backup, whose cas ids are its own, gets it without the condition once the
 * master has applied it.
 */
function isCasRequest(r: Request): boolean {
  return r.cmd === Cmd.CAS || (r.cmd >= Cmd.MS && r.cmd <= Cmd.MA && (r.metaFlags & META_CAS) !== 0);
}
