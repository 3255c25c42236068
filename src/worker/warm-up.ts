// Warm-up: a master that comes back WARMING serves reads; a key it misses is
// looked up on the backup (mg v f t c), copied into the master with its flags and
// remaining TTL (ms ... ME: an add, so a newer value is never overwritten) and
// returned. For gets, gat, gats and mg the copy is made first and the key read
// again from the master, so that cas ids and meta flags come from the master. A
// write whose outcome depends on the current value (add, cas, ms in mode
// E/A/P/R or with C, ma and mg with N) looks the key up on the backup and
// copies it over before it goes (prefill), so that memcached decides it on the
// value clients have seen.
//
//   master's miss --> lookup on the backup --VA--> fill the master (ms ME)
//                                                    --HD--> verify: the backup's cas again;
//                                                            changed or gone --> delete the fill
//                                              --> get: the backup's value answers
//                                              --> gets, gat, gats, mg: read again from the master
//   write that depends on the value --> prefill (lookup, fill) --> the write goes on (resume)

import { performance } from 'node:perf_hooks';
import type { BackendConnection } from '../backend/connection.js';
import { Cmd, CMD_NAME_BYTES } from '../protocol/commands.js';
import { MG } from '../protocol/gets-as-mg.js';
import { findLF } from '../io/buffers.js';
import { Expect } from '../protocol/response-parser.js';
import { BASE64_FLAG, DELETE, MD, MS, SPACE } from '../protocol/verbs.js';
import * as wire from '../protocol/wire.js';
import { NONE, warming } from '../routing/policy.js';
import { C } from '../shared/counters.js';
import { S } from '../shared/server-stats.js';
import type { WarmUpRoom, WorkerContext } from './context.js';
import { Op, Request, Role } from './request.js';

const WARM_LOOKUP_FLAGS = Buffer.from(' v f t c');
const KEY_FLAG = Buffer.from(' k');
const STALE_MARK = Buffer.from(' I\r\n');
const STALE_MARK_B64 = Buffer.from(' b I\r\n');
const CAS_FLAG = Buffer.from(' c');
/** memcached reads an exptime above 30 days as a unix time. */
const RELATIVE_TTL_MAX = 60 * 60 * 24 * 30;

export class WarmUp implements WarmUpRoom {
  constructor(private readonly ctx: WorkerContext) {}

  /** Looks up on the backup key i of req, which its warming master missed. */
  lookup(req: Request, i: number): void {
    const ctx = this.ctx;
    if (req.cmd >= Cmd.MG) {
      const k = ctx.keyOf(req);
      ctx.router.route(k.buf, k.start, k.end);
    } else {
      ctx.router.route(req.buf, req.keyStart(i), req.keyEnd(i));
    }
    const backup = ctx.backupOf();
    if (backup === NONE || !ctx.health.isUp(backup)) return;
    const now = performance.now();
    const conn = ctx.connection(backup, req.affinity, now);
    if (conn === null) return;
    req.waiting++;
    this.ask(conn, req, Role.WARM_LOOKUP, i, now);
  }

  /** mg <key> v f t c on the backup: its value, client flags, remaining TTL and cas. */
  private ask(conn: BackendConnection, req: Request, role: number, i: number, now: number): void {
    const op = this.ctx.newOp(req, role, Expect.META);
    op.keyIndex = i;
    const out = conn.outbox;
    out.addAll(MG);
    this.keyToken(out, req, i);
    out.addAll(WARM_LOOKUP_FLAGS);
    // A base64 key: k tells whether the backup's item was stored by its bytes (ms ... b) or as text.
    if (req.decodedKey !== null) out.addAll(KEY_FLAG);
    out.addAll(wire.CRLF);
    conn.enqueue(op, now);
  }

  /**
   * A write (or mg N) that depends on the key's current value, to a warming
   * master that may lack a key the backup has: looks the key up on the backup
   * first; its answer fills the master and sends the request on (resume). False
   * when there is nothing to look up (not warming, no backup, or done already).
   */
  prefill(req: Request): boolean {
    const ctx = this.ctx;
    const backup = req.backup;
    if (req.prefilled || backup === NONE || !warming(ctx.health, req.master) || !ctx.health.isUp(backup)) return false;
    const now = performance.now();
    const conn = ctx.connection(backup, req.affinity, now);
    if (conn === null) return false;
    req.prefilled = true;
    this.ask(conn, req, Role.WARM_PREFILL, 0, now);
    return true;
  }

  prefillAnswered(req: Request, buf: Buffer, start: number, end: number): void {
    const v = parseVA(buf, start, end);
    // The fill goes to the master's connection ahead of the request: memcached applies them in that order.
    if (v !== null && v.ttl !== 0) this.fill(req, 0, req.master, v, buf.subarray(v.dataStart, v.dataStart + v.size));
    this.resume(req);
  }

  /** The prefill is over (answered, or its lookup failed): the request goes on. */
  resume(req: Request): void {
    if (req.cmd === Cmd.MG) {
      this.ctx.reads.metaRead(req);
      this.ctx.letGo(req);
    } else {
      this.ctx.writes.write(req);
    }
  }

  /** The key as sent on the wire: text keys as they are, meta keys as the client wrote them (b adds " b"). */
  keyToken(out: BackendConnection['outbox'], req: Request, i: number): void {
    if (req.cmd >= Cmd.MG) {
      out.add(req.buf, req.keyStart(0), req.keyEnd(0));
      if (req.decodedKey !== null) out.addAll(BASE64_FLAG);
    } else {
      out.add(req.buf, req.keyStart(i), req.keyEnd(i));
    }
  }

  lookupAnswered(req: Request, i: number, buf: Buffer, start: number, end: number): void {
    const ctx = this.ctx;
    req.waiting--;
    const v = parseVA(buf, start, end);
    if (v !== null) {
      const m = req.cmd >= Cmd.MG ? req.master : this.masterOfKey(req, i);
      ctx.stats[m]![S.WARM_BACKUP_HITS]!++;
      ctx.counters[C.GET_WARM_HITS]!++;
      const data = buf.subarray(v.dataStart, v.dataStart + v.size);
      const filled = v.ttl !== 0 && this.fill(req, i, m, v, data);
      if (req.cmd === Cmd.GET) {
        // The backup's value answers the client (reply-queue.ts writes it as text); the fill goes on beside it.
        req.setValue(i, buf, start, end);
      } else if (filled && (req.cmd <= Cmd.GATS || req.cmd === Cmd.MG)) {
        // Read it again from the master, which now holds it: cas ids and meta flags are the master's.
        this.reread(req, i, m);
      }
    }
    if (req.waiting === 0) ctx.complete(req);
  }

  /** The lookup failed too: the key is a miss. */
  lookupFailed(req: Request): void {
    if (--req.waiting === 0) this.ctx.complete(req);
  }

  private masterOfKey(req: Request, i: number): number {
    this.ctx.router.route(req.buf, req.keyStart(i), req.keyEnd(i));
    return this.ctx.router.master;
  }

  private backupOfKey(req: Request, i: number): number {
    this.ctx.router.route(req.buf, req.keyStart(i), req.keyEnd(i));
    return this.ctx.backupOf();
  }

  /** Copies an item into a warming master with ms ... ME (add: never over a newer value). */
  private fill(req: Request, i: number, master: number, v: VA, data: Buffer): boolean {
    const ctx = this.ctx;
    const now = performance.now();
    const conn = ctx.connection(master, req.affinity, now);
    if (conn === null) return false;
    // No TTL stays none; past 30 days memcached wants a unix time.
    const ttl = v.ttl;
    const exptime = ttl < 0 ? 0 : ttl > RELATIVE_TTL_MAX ? Math.floor(Date.now() / 1000) + ttl : ttl;
    // Its answer sends the verification (filled): only once the fill has landed
    // can a delete that raced it be seen on the backup.
    const op = this.warmOp(req, Role.WARM_FILL, i, v.cas, master);
    const out = conn.outbox;
    // "ms <key> <datalen> [b] F.. T.. ME". A base64 key goes as the backup
    // keeps it: by its bytes (b), or as text, which mg ... k then shows as text.
    out.addAll(MS);
    const d = req.decodedKey;
    if (d !== null && v.textKey) out.add(d, 0, d.length);
    else out.add(req.buf, req.keyStart(i), req.keyEnd(i));
    out.addAll(Buffer.from(` ${data.length}${d !== null && !v.textKey ? ' b' : ''} F${v.flags} T${exptime} ME\r\n`, 'latin1'));
    out.add(data, 0, data.length);
    out.addAll(wire.CRLF);
    conn.enqueue(op, now);
    if (v.stale) {
      // Invalidated on the backup (md I), and this lookup won its recache token
      // (W): the copy is marked stale too, before anything reads it, so that the
      // master hands the token on (md I gives a new W even to a marked item: a
      // lookup that found the token taken, Z, leaves the copy to the winner's
      // fill). Its answer matters to nobody.
      const mark = ctx.newOp(req, Role.FORGET, Expect.META);
      mark.keyBuf = d ?? req.buf;
      mark.keyStart = d === null ? req.keyStart(i) : 0;
      mark.keyEnd = d === null ? req.keyEnd(i) : d.length;
      out.addAll(MD);
      out.add(req.buf, req.keyStart(i), req.keyEnd(i));
      out.addAll(d !== null ? STALE_MARK_B64 : STALE_MARK);
      conn.enqueue(mark, now);
    }
    ctx.stats[master]![S.WARM_FILLS]!++;
    return true;
  }

  /** A warm-up fill or its verification of key i: the backup's cas and the master it concerns. */
  private warmOp(req: Request, role: number, i: number, cas: string, master: number): Op {
    const op = this.ctx.newOp(req, role, Expect.META);
    op.keyIndex = i;
    op.token = cas;
    op.peer = master;
    return op;
  }

  /** The master answered a fill: HD, it was added (verified next); NS, the master had the key already. */
  filled(req: Request, op: Op, buf: Buffer, start: number): void {
    if (buf[start] === 0x48 && buf[start + 1] === 0x44) this.verifyFill(req, op.keyIndex, op.peer, op.token);
  }

  /**
   * A write or delete of the key through another proxy may have passed the fill
   * (read from the backup, then added to the master after the delete): read the
   * backup's cas again, and if the item changed or went, delete the fill.
   */
  private verifyFill(req: Request, i: number, master: number, cas: string): void {
    const ctx = this.ctx;
    const now = performance.now();
    const conn = ctx.connection(req.backup >= 0 && req.cmd >= Cmd.MG ? req.backup : this.backupOfKey(req, i), req.affinity, now);
    if (conn === null) return;
    const op = this.warmOp(req, Role.WARM_VERIFY, i, cas, master);
    const out = conn.outbox;
    out.addAll(MG);
    this.keyToken(out, req, i);
    out.addAll(CAS_FLAG);
    out.addAll(wire.CRLF);
    conn.enqueue(op, now);
  }

  verifyAnswered(req: Request, op: Op, buf: Buffer, start: number, end: number): void {
    const ctx = this.ctx;
    const line = buf.toString('latin1', start, end);
    const m = /^HD.* c(\d+)/.exec(line);
    if (m !== null && m[1] === op.token) return;
    // Gone or changed on the backup since the lookup: the fill may be stale.
    if (req.cmd >= Cmd.MG) {
      const k = ctx.keyOf(req);
      ctx.deleteKey(req, op.peer, k.buf, k.start, k.end, performance.now());
    } else {
      ctx.forget(req, op.peer, DELETE, req.buf, req.keyStart(op.keyIndex), req.keyEnd(op.keyIndex), false, performance.now());
    }
  }

  private reread(req: Request, i: number, master: number): void {
    const ctx = this.ctx;
    const now = performance.now();
    const conn = ctx.connection(master, req.affinity, now);
    if (conn === null) return;
    req.waiting++;
    if (req.cmd >= Cmd.MG) {
      const op = ctx.newOp(req, Role.CLIENT, Expect.META);
      ctx.metaLine(conn, req, false);
      conn.enqueue(op, now);
      return;
    }
    const op = ctx.newOp(req, Role.CLIENT, Expect.RETRIEVAL);
    op.keyIdx[op.keyCount++] = i;
    const out = conn.outbox;
    out.addAll(CMD_NAME_BYTES[req.cmd]!);
    if (req.cmd === Cmd.GAT || req.cmd === Cmd.GATS) { out.addAll(SPACE); out.add(req.buf, req.argStart, req.argEnd); }
    out.addAll(SPACE);
    out.add(req.buf, req.keyStart(i), req.keyEnd(i));
    out.addAll(wire.CRLF);
    conn.enqueue(op, now);
  }
}

/** A warm lookup's VA line: what a fill copies (stale: invalidated, and this lookup won the recache, W). */
interface VA { size: number; flags: string; ttl: number; cas: string; stale: boolean; textKey: boolean; dataStart: number }

/** "VA <size> f<flags> t<ttl> c<cas> [W] [k<key>] [b]\r\n<data>\r\n" -> its parts; null for anything else (EN). */
function parseVA(buf: Buffer, start: number, end: number): VA | null {
  if (buf[start] !== 0x56 || buf[start + 1] !== 0x41) return null;
  const nl = findLF(buf, start, end);
  if (nl < 0) return null;
  const line = buf.toString('latin1', start, nl - 1);
  const parts = line.split(' ');
  let flags = '0';
  let ttl = -1;
  let cas = '';
  let stale = false;
  // k<key> without b: memcached keeps an item's key as text, and shows it so even to mg ... b
  let textKey = false;
  for (let p = 2; p < parts.length; p++) {
    const t = parts[p]!;
    if (t[0] === 'f') flags = t.slice(1);
    else if (t[0] === 't') ttl = Number(t.slice(1));
    else if (t[0] === 'c') cas = t.slice(1);
    else if (t === 'W') stale = true;
    else if (t[0] === 'k') textKey = true;
    else if (t === 'b') textKey = false;
  }
  return { size: Number(parts[1]), flags, ttl, cas, stale, textKey, dataStart: nl + 1 };
}
