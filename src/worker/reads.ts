// Reads: get, gets, gat, gats (text) and mg, me (meta), with failover.
//
//   keys --route--> master up? --yes--> one op per server (a one-key get/gets as mg
//                                       to a server answering meta: protocol/gets-as-mg.ts)
//                              --no---> the key's backup (counted: get_failover)
//   a master's op fails --> its keys again on their backups
//   the connection closed under it (an idle close) --> once more on a new one
//   a warming master's miss --> looked up on the backup (warm-up.ts)

import { performance } from 'node:perf_hooks';
import type { BackendConnection } from '../backend/connection.js';
import { Cmd, CMD_NAME_BYTES } from '../protocol/commands.js';
import { MG_GET_FLAGS, MG_GETS_FLAGS } from '../protocol/gets-as-mg.js';
import { META_DEPENDS, META_QUIET, META_TTL } from '../protocol/meta-request.js';
import { Expect } from '../protocol/response-parser.js';
import { SPACE, TOUCH } from '../protocol/verbs.js';
import * as wire from '../protocol/wire.js';
import { NONE, readTarget, shadowTarget, warming } from '../routing/policy.js';
import { C } from '../shared/counters.js';
import { S } from '../shared/server-stats.js';
import { log } from '../log.js';
import type { ReadsRoom, WorkerContext } from './context.js';
import { Op, Request, Role } from './request.js';

const EN = Buffer.from('EN\r\n');

export class Reads implements ReadsRoom {
  /** per server: the op being filled while a multi-key request is grouped */
  private readonly opFor: Array<Op | null>;
  private readonly connFor: Array<BackendConnection | null>;
  /** sendKeys: touched[0, touchedCount) are the servers the request's ops went to */
  private readonly touched: Int32Array;
  private touchedCount = 0;

  constructor(private readonly ctx: WorkerContext) {
    const n = ctx.servers.length;
    this.opFor = new Array(n).fill(null);
    this.connFor = new Array(n).fill(null);
    this.touched = new Int32Array(n);
  }

  // ---- text retrieval: get, gets, gat, gats ----

  retrieval(req: Request): void {
    const n = req.keyCount;
    const counters = this.ctx.counters;
    counters[C.CMD_GET]! += n;
    if (req.cmd === Cmd.GAT || req.cmd === Cmd.GATS) counters[C.CMD_TOUCH]! += n;
    req.expectValues(n);
    if (n === 0) { this.ctx.complete(req); return; }
    this.sendKeys(req, null, false);
    if (req.waiting === 0) this.ctx.complete(req);
  }

  /**
   * Groups keys by the server that should answer them and queues one op per
   * server. `only` limits it to some key indexes; `backupOnly` is a failover.
   */
  sendKeys(req: Request, only: number[] | null, backupOnly: boolean): void {
    const ctx = this.ctx;
    const router = ctx.router;
    const health = ctx.health;
    const buf = req.buf;
    const now = performance.now();
    const count = only === null ? req.keyCount : only.length;
    const isGat = req.cmd === Cmd.GAT || req.cmd === Cmd.GATS;
    for (let j = 0; j < count; j++) {
      const i = only === null ? j : only[j]!;
      const ks = req.keyStart(i);
      const ke = req.keyEnd(i);
      router.route(buf, ks, ke);
      const master = router.master;
      const backup = ctx.backupOf();
      let target = backupOnly ? (backup !== NONE && health.isUp(backup) ? backup : NONE) : readTarget(health, master, backup);
      let conn = target === NONE ? null : this.groupConnection(target, req.affinity, now);
      if (conn === null && target === master && backup !== NONE && health.isUp(backup)) {
        // The master's connection is held back after a protocol error: use the backup.
        target = backup;
        conn = this.groupConnection(target, req.affinity, now);
      }
      if (conn === null) continue; // a miss, counted when the request completes
      if (target !== master) ctx.countFailover(master);
      let op = this.opFor[target]!;
      if (op === null) {
        // One key of get or gets, to a server that answers meta commands: as mg,
        // which memcached answers in one write per batch of requests instead of
        // one write per get.
        const asMeta = req.keyCount === 1 && (req.cmd === Cmd.GET || req.cmd === Cmd.GETS) && health.answersMeta(target);
        op = ctx.newOp(req, Role.CLIENT, asMeta ? Expect.META_GET : Expect.RETRIEVAL);
        // Misses of a warming master are looked up on the backup.
        op.warm = target === master && backup !== NONE && warming(health, master) && health.isUp(backup);
        this.opFor[target] = op;
        this.touched[this.touchedCount++] = target;
        const out = conn.outbox;
        out.addAll(CMD_NAME_BYTES[asMeta ? Cmd.MG : req.cmd]!);
        if (isGat) { out.addAll(SPACE); out.add(buf, req.argStart, req.argEnd); }
        req.waiting++;
        conn.enqueue(op, now);
      }
      if (op.warm) ctx.stats[master]![S.WARM_READS]!++;
      op.keyIdx[op.keyCount++] = i;
      const out = conn.outbox;
      out.addAll(SPACE);
      out.add(buf, ks, ke);
      // gat also touches the backup copy, so a failover does not resurrect the old TTL.
      if (isGat && target === master) {
        const shadow = shadowTarget(health, backup);
        if (shadow !== NONE) ctx.forget(req, shadow, TOUCH, buf, ks, ke, true, now);
        else if (backup !== NONE) ctx.journal.add(backup, buf, ks, ke);
      }
    }
    const touched = this.touched;
    for (let t = 0; t < this.touchedCount; t++) {
      const server = touched[t]!;
      const end = this.opFor[server]!.kind === Expect.RETRIEVAL ? wire.CRLF : req.cmd === Cmd.GETS ? MG_GETS_FLAGS : MG_GET_FLAGS;
      this.connFor[server]!.outbox.addAll(end);
      this.opFor[server] = null;
      this.connFor[server] = null;
    }
    this.touchedCount = 0;
  }

  /** The connection a request's op for `server` is built on: one per server per request. */
  private groupConnection(server: number, affinity: number, now: number): BackendConnection | null {
    const held = this.connFor[server]!;
    if (held !== null) return held;
    const conn = this.ctx.connection(server, affinity, now);
    this.connFor[server] = conn;
    return conn;
  }

  retrievalAnswered(req: Request, op: Op, buf: Buffer, start: number, end: number): void {
    if (op.kind === Expect.META_GET) {
      // VA: the value (reply-queue.ts writes it as text); EN: a miss; else an error line.
      const i = op.keyIdx[0]!;
      if (buf[start] === 0x56) req.setValue(i, buf, start, end);
      else if (end - start === 7 && buf[start] === 0x45 && buf[start + 1] === 0x52) this.metaRefused(req, i, op.server);
      else if (buf[start] !== 0x45 || buf[start + 1] !== 0x4e) req.reply = buf.subarray(start, end);
      else if (op.warm) this.ctx.warm.lookup(req, i);
    } else if (end - start !== 5 || buf[start] !== 0x45) {
      // an error line replaces the whole reply
      req.reply = buf.subarray(start, end);
    } else if (op.warm) {
      const keyIdx = op.keyIdx;
      for (let c = 0; c < op.keyCount; c++) {
        const i = keyIdx[c]!;
        if (req.values[i] === null) this.ctx.warm.lookup(req, i);
      }
    }
    if (--req.waiting === 0) this.ctx.complete(req);
  }

  /**
   * A server answered mg with ERROR although it answered mn: an mcrelay in
   * front of servers that do not know mg (it answers mn itself). Gets go to it
   * as text from now on (until the prober asks again after an outage), this
   * key first.
   */
  private metaRefused(req: Request, i: number, server: number): void {
    const health = this.ctx.health;
    if (health.answersMeta(server)) {
      health.setAnswersMeta(server, false);
      log.warn('server answered mg with ERROR: gets go to it as text', { server: this.ctx.servers[server]![0]!.address.name });
    }
    this.sendKeys(req, [i], false);
  }

  // ---- meta reads: mg, me ----

  metaRead(req: Request): void {
    const ctx = this.ctx;
    const health = ctx.health;
    if (!req.prefilled) ctx.counters[C.CMD_GET]!++;
    ctx.routeSingle(req);
    const master = req.master;
    const backup = req.backup;
    if (req.cmd === Cmd.MG && (req.metaFlags & META_DEPENDS) !== 0 && ctx.warm.prefill(req)) { ctx.hold(req); return; }
    let target = readTarget(health, master, backup);
    // me shows an item's metadata: a warming master may not have the item yet, the backup has.
    if (req.cmd === Cmd.ME && target === master && backup !== NONE && warming(health, master) && health.isUp(backup)) target = backup;
    if (target === NONE || !this.sendMetaRead(req, target, target === master && req.cmd === Cmd.MG && backup !== NONE &&
        warming(health, master) && health.isUp(backup))) {
      this.metaMiss(req);
      return;
    }
    if (target !== master) ctx.countFailover(master);
    // mg T<ttl> touches: the backup's copy gets the same TTL.
    if (req.cmd === Cmd.MG && (req.metaFlags & META_TTL) !== 0 && target === master) {
      const shadow = shadowTarget(health, backup);
      const conn = shadow === NONE ? null : ctx.connection(shadow, req.affinity, performance.now());
      if (conn !== null) {
        const op = ctx.newOp(req, Role.FORGET, Expect.META);
        ctx.metaLine(conn, req, false);
        conn.enqueue(op, performance.now());
      } else if (backup !== NONE) {
        ctx.journalKey(backup, req);
      }
    }
  }

  sendMetaRead(req: Request, server: number, warm: boolean): boolean {
    const ctx = this.ctx;
    const now = performance.now();
    const conn = ctx.connection(server, req.affinity, now);
    if (conn === null) return false;
    const op = ctx.newOp(req, Role.CLIENT, Expect.META);
    op.warm = warm;
    if (warm) ctx.stats[server]![S.WARM_READS]!++;
    req.waiting++;
    ctx.metaLine(conn, req, false);
    conn.enqueue(op, now);
    return true;
  }

  /** No server has the key: mg answers a miss (nothing when quiet), me too. */
  metaMiss(req: Request): void {
    this.ctx.counters[C.GET_MISSES]!++;
    req.reply = (req.metaFlags & META_QUIET) !== 0 ? wire.NOTHING : EN;
    this.ctx.complete(req);
  }

  metaReadAnswered(req: Request, op: Op, buf: Buffer, start: number, end: number): void {
    const miss = buf[start] === 0x45 && buf[start + 1] === 0x4e; // EN
    if (miss && op.warm) this.ctx.warm.lookup(req, 0);
    req.reply = miss && (req.metaFlags & META_QUIET) !== 0 ? wire.NOTHING : buf.subarray(start, end);
    if (miss) this.ctx.counters[C.GET_MISSES]!++;
    else if (req.waiting === 1) this.ctx.counters[C.GET_HITS]!++;
    if (--req.waiting === 0) this.ctx.complete(req);
  }

  // ---- failures ----

  /**
   * The connection closed under a client's read (an idle close racing it): once
   * more on a new connection to the same server before anything counts.
   * `keys`: a retrieval's key indexes (else an mg or me).
   */
  again(req: Request, server: number, keys: number[] | null, warm: boolean): void {
    req.retried = true;
    req.waiting--;
    if (keys !== null) {
      this.sendKeys(req, keys, false);
      if (req.waiting === 0) this.ctx.complete(req);
    } else if (!this.sendMetaRead(req, server, warm)) {
      this.metaMiss(req);
    }
  }

  /** A client's read failed on `server`: a master's keys are tried on their backups; else a miss. */
  failed(req: Request, server: number, keys: number[] | null): void {
    const ctx = this.ctx;
    if (keys !== null) {
      if (server < ctx.masterCount) this.sendKeys(req, keys, true);
      if (--req.waiting === 0) ctx.complete(req);
      return;
    }
    req.waiting--;
    if (server >= ctx.masterCount || req.backup === NONE || !ctx.health.isUp(req.backup) || !this.sendMetaRead(req, req.backup, false)) {
      this.metaMiss(req);
    } else {
      ctx.countFailover(server);
    }
  }
}

