// The worker's data path between client requests and backend connections.
//
//   client --submit(req)--> route key(s) --> policy (master? backup?) --> Op(s)
//                                                        |
//            BackendConnection.enqueue + outbox bytes <--'
//   backend reply --onValue/onLine--> Request (values / reply) --> client reply queue
//                 --onFailed-------> failover: reads retried on the backup
//
// Writes go to the key's master (the client's reply) and to its backup (a shadow
// whose reply is compared with the master's; a disagreement deletes the key on the
// backup so that it never holds a value the master does not). A write that cannot
// reach a server, or whose request to it fails, is journaled for that server
// (worker/journal.ts) so that the key is deleted there before it serves reads again.
//
// Every such write holds its key's stripe (worker/sequencer.ts) from the moment
// it is sent until both servers have answered it (pendingOps back to 0), so no
// other write of the key, from any worker of this proxy, can pass it on the way
// to either server: master and backup apply the proxy's writes in one order.
//
// Two entry proxies do not share stripes: their writes of one key, in flight at
// the same time, can still reach master and backup in opposite orders. So each
// replicated write's key is read on both (mg v f) CHECK_MS after the write is
// over, holding the stripe; a backup value that differs from the master's twice,
// CHECK_MS apart, is deleted from the backup and counted (backup_divergences).
// A backup that lacks the key is no divergence: that is what a repair leaves.
//
// cas cannot be forwarded to the backup (its cas id is the master's): once the
// master answers STORED, the item goes to the backup as a set (a meta write with
// C<cas>: once the master answers HD, without its C). Until then the cas holds
// its stripe, so later writes of the key wait and the backup applies them in the
// order the master did.
//
// A master that comes back WARMING serves reads; a key it misses is looked up on
// the backup (mg v f t), copied into the master with its flags and remaining TTL
// (ms ... ME: an add, so a newer value is never overwritten) and returned. For
// gets, gat, gats and mg the copy is made first and the key read again from the
// master, so that cas ids and meta flags come from the master. A write whose
// outcome depends on the current value (add, cas, ms in mode E/A/P/R or with C,
// ma and mg with N) looks the key up on the backup and copies it over before it
// goes (prefill), so that memcached decides it on the value clients have seen.

import { performance } from 'node:perf_hooks';
import type { Config } from '../config/config.js';
import { BackendConnection, Failure, type ReplyHandler } from '../backend/connection.js';
import { Cmd, CMD_NAME_BYTES } from '../protocol/commands.js';
import { KEY_MAX_LENGTH, META_BASE64, META_CAS, META_DEPENDS, META_INVALIDATE, META_KEEP_Q, META_QUIET, META_TTL, validKey } from '../protocol/request-parser.js';
import { bytesEqual, findLF } from '../io/buffers.js';
import { Expect } from '../protocol/response-parser.js';
import { sameMeaning } from '../protocol/reply-meaning.js';
import * as wire from '../protocol/wire.js';
import { NONE, readTarget, recovering, shadowTarget, warming, writable } from '../routing/policy.js';
import { Router } from '../routing/router.js';
import { C } from '../shared/counters.js';
import { HealthTable } from '../shared/health.js';
import { S } from '../shared/server-stats.js';
import { log } from '../log.js';
import { Journal } from './journal.js';
import { WriteSampler } from './write-sampler.js';
import { Op, Pools, Request, Role } from './request.js';
import type { Sequencer, StripeHolder } from './sequencer.js';
import { STRIPES } from '../shared/stripes.js';

const SP = Buffer.from(' ');
const SET = Buffer.from('set');
const DELETE = Buffer.from('delete ');
const TOUCH = Buffer.from('touch ');
const FLUSH_ALL = Buffer.from('flush_all\r\n');
const MG = Buffer.from('mg ');
const MD = Buffer.from('md ');
const MS = Buffer.from('ms ');
const WARM_LOOKUP_FLAGS = Buffer.from(' v f t c');
const KEY_FLAG = Buffer.from(' k');
const STALE_MARK = Buffer.from(' I\r\n');
const STALE_MARK_B64 = Buffer.from(' b I\r\n');
const CAS_FLAG = Buffer.from(' c');
const BASE64_FLAG = Buffer.from(' b');
/** what follows the key of a get or gets sent as mg: the value and its client flags (and cas) */
const MG_GET_FLAGS = Buffer.from(' v f\r\n');
const MG_GETS_FLAGS = Buffer.from(' v f c\r\n');

// Write-pair states (Request.masterState / backupState; 0: not sent).
const SENT = 1;
const ANSWERED = 2;
const FAILED = 3;

/** How long after a write its key is checked on master and backup, and again after a difference. */
const CHECK_MS = 100;
/**
 * How often due checks are sent: a burst of CHECK_TICK_MS of writes' checks at
 * a time rather than CHECK_MS of them, which held up other requests (p99).
 */
const CHECK_TICK_MS = 10;
/** A check whose reads fail is tried again this many times (a server that stays away is recovered instead). */
const CHECK_RETRIES = 3;

/** Journaled deletes sent to a returning server at a time. */
const INVALIDATE_BATCH = 4096;
/** memcached reads an exptime above 30 days as a unix time. */
const RELATIVE_TTL_MAX = 60 * 60 * 24 * 30;

export interface Flushable { flush(): void }

/** One returning server's invalidation in progress (see invalidate()). */
interface Invalidation {
  server: number;
  /** this worker's journal for the server, put back if the invalidation fails */
  keys: Set<string>;
  overflowed: boolean;
  /** the keys to delete: this worker's, then those the main thread handed over */
  rest: Iterator<string>;
  pending: number;
  failed: boolean;
  /** deletes sent */
  deleted: number;
  tracker: Request;
}

export class Dispatcher implements ReplyHandler, StripeHolder {
  readonly journal: Journal;
  private readonly router: Router;
  private readonly masterCount: number;
  private readonly servers: BackendConnection[][];
  /** per server: this worker's figures for it */
  private readonly stats: Float64Array[];
  /** per server: the op being filled while a multi-key request is grouped */
  private readonly opFor: Array<Op | null>;
  private readonly connFor: Array<BackendConnection | null>;
  /** sendKeys: touched[0, touchedCount) are the servers the request's ops went to */
  private readonly touched: Int32Array;
  private touchedCount = 0;
  /** dirty[0, dirtyCount) flush at the end of this turn (a count, not the array's length: see Request.values) */
  private readonly dirty: Array<Flushable | null> = [];
  private dirtyCount = 0;
  private flushScheduled = false;
  private readonly invalidations = new Map<number, Invalidation>();
  /** checks of written keys, oldest first from checksHead, each due at its dueAt */
  private checksDue: Request[] = [];
  private checksHead = 0;
  private checkTimer: NodeJS.Timeout | null = null;
  /** replaced by a reload: finishes what is in flight, starts no check */
  private retired = false;
  /** per stripe: a check queued and not yet sent, so that a hot key is checked once per CHECK_MS */
  private readonly queuedCheck: Array<Request | null> = new Array<Request | null>(STRIPES).fill(null);
  /** keys of replicated writes, sampled for main/coverage.ts */
  readonly sampler: WriteSampler;
  /** replicated writes left before the next one is sampled */
  private sampleIn = 1;
  /** the failure of the connection whose ops are being failed (set by onConnectionFailed) */
  private failing = -1;
  // the key routeKey() found: bytes [ks, ke) of kb
  private kb: Buffer = wire.NOTHING;
  private ks = 0;
  private ke = 0;

  constructor(
    /** shared by every dispatcher of the worker, so a request may be released by any */
    readonly pools: Pools,
    readonly config: Config,
    readonly health: HealthTable,
    readonly counters: Float64Array,
    serverStats: (server: number) => Float64Array,
    /** told when an invalidation asked by the main thread is over: whether it worked, and how many keys it deleted */
    private readonly onInvalidated: (server: number, ok: boolean, deleted: number) => void,
    /** told when keys journaled for a master wait to be published (Journal.takeShared) */
    onJournalShared: () => void = () => {},
    /** the worker's write stripes: shared by its dispatchers (old and new ones across a reload) */
    private readonly sequencer: Sequencer,
  ) {
    this.router = new Router(config.distribution, config.masters.map((s) => s.name), config.backups.map((s) => s.name));
    this.masterCount = config.masters.length;
    const all = [...config.masters, ...config.backups];
    this.stats = all.map((_a, i) => serverStats(i));
    this.servers = all.map((addr, i) => {
      const conns: BackendConnection[] = [];
      for (let c = 0; c < config.connectionsPerServer; c++) {
        conns.push(new BackendConnection(i, addr, this, config.timeoutMs, config.retryIntervalMs, this.stats[i]!));
      }
      return conns;
    });
    this.sampler = new WriteSampler(all.map((a) => a.name));
    this.opFor = new Array(all.length).fill(null);
    this.touched = new Int32Array(all.length);
    this.connFor = new Array(all.length).fill(null);
    this.journal = new Journal(all.map((a) => a.name), Math.max(1, Math.ceil(config.journalMaxKeys / config.workers)), (s) => this.stats[s]!,
      config.backups.length > 0 ? this.masterCount : 0, onJournalShared);
  }

  // ---- scheduling: one flush per socket per event-loop turn ----

  schedule(target: Flushable): void {
    this.dirty[this.dirtyCount++] = target;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(flushDirty, this);
    }
  }

  /** @internal */ flushAll(): void {
    this.flushScheduled = false;
    const d = this.dirty;
    // flush() may schedule more (a client reply completing); those go next turn.
    const n = this.dirtyCount;
    for (let i = 0; i < n; i++) d[i]!.flush();
    const total = this.dirtyCount;
    for (let i = n; i < total; i++) d[i - n] = d[i]!;
    for (let i = total - n; i < total; i++) d[i] = null;
    this.dirtyCount = total - n;
  }

  // ---- requests in ----

  /** Starts a parsed request; its reply arrives later through the client's queue. */
  submit(req: Request): void {
    const cmd = req.cmd;
    if (cmd <= Cmd.GATS) return this.retrieval(req);
    if (cmd === Cmd.FLUSH_ALL) return this.flushAllServers(req);
    if (cmd >= Cmd.MG && (req.metaFlags & META_BASE64) !== 0) {
      // Route (and journal) by the key's bytes, as a text command for the same key would.
      req.decodedKey = Buffer.from(req.buf.toString('latin1', req.keyStart(0), req.keyEnd(0)), 'base64');
    }
    if (cmd === Cmd.MG || cmd === Cmd.ME) return this.metaRead(req);
    this.write(req);
  }

  /**
   * The connection to `server` for a request of client `affinity`. A client's
   * requests to one server always share a connection, so that they reach the
   * server in the order the client sent them (a noreply set, then a get).
   */
  private connection(server: number, affinity: number, now: number): BackendConnection | null {
    const conns = this.servers[server]!;
    const conn = conns.length === 1 ? conns[0]! : conns[affinity % conns.length]!;
    return conn.usable(now) ? conn : null;
  }

  /** Sets kb/ks/ke to the bytes a single-key request is routed and journaled by. */
  private routeKey(req: Request): void {
    const d = req.decodedKey;
    if (d !== null) { this.kb = d; this.ks = 0; this.ke = d.length; return; }
    this.kb = req.buf;
    this.ks = req.keyStart(0);
    this.ke = req.keyEnd(0);
  }

  /** Routes a single-key request: sets kb/ks/ke and req.master / req.backup. */
  private routeSingle(req: Request): void {
    this.routeKey(req);
    this.router.route(this.kb, this.ks, this.ke);
    req.master = this.router.master;
    req.backup = this.backupOf();
  }

  private backupOf(): number {
    return this.router.backup === -1 ? NONE : this.masterCount + this.router.backup;
  }

  private newOp(req: Request, role: number, kind: number): Op {
    const op = this.pools.op();
    op.req = req;
    op.role = role;
    op.kind = kind;
    req.refs++;
    req.pendingOps++;
    return op;
  }

  /** A warm-up fill or its verification of key i: the backup's cas and the master it concerns. */
  private warmOp(req: Request, role: number, i: number, cas: string, master: number): Op {
    const op = this.newOp(req, role, Expect.META);
    op.keyIndex = i;
    op.token = cas;
    op.peer = master;
    return op;
  }

  // ---- text retrieval: get, gets, gat, gats ----

  private retrieval(req: Request): void {
    const n = req.keyCount;
    this.counters[C.CMD_GET]! += n;
    if (req.cmd === Cmd.GAT || req.cmd === Cmd.GATS) this.counters[C.CMD_TOUCH]! += n;
    req.expectValues(n);
    if (n === 0) { this.complete(req); return; }
    this.sendKeys(req, null, false);
    if (req.waiting === 0) this.complete(req);
  }

  /**
   * Groups keys by the server that should answer them and queues one op per
   * server. `only` limits it to some key indexes; `backupOnly` is a failover.
   */
  private sendKeys(req: Request, only: number[] | null, backupOnly: boolean): void {
    const router = this.router;
    const health = this.health;
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
      const backup = this.backupOf();
      let target = backupOnly ? (backup !== NONE && health.isUp(backup) ? backup : NONE) : readTarget(health, master, backup);
      let conn = target === NONE ? null : this.groupConnection(target, req.affinity, now);
      if (conn === null && target === master && backup !== NONE && health.isUp(backup)) {
        // The master's connection is held back after a protocol error: use the backup.
        target = backup;
        conn = this.groupConnection(target, req.affinity, now);
      }
      if (conn === null) continue; // a miss, counted when the request completes
      if (target !== master) {
        this.counters[C.GET_FAILOVER]!++;
        this.stats[master]![S.BACKUP_READS]!++;
      }
      let op = this.opFor[target]!;
      if (op === null) {
        // One key of get or gets, to a server that answers meta commands: as mg,
        // which memcached answers in one write per batch of requests instead of
        // one write per get.
        const asMeta = req.keyCount === 1 && (req.cmd === Cmd.GET || req.cmd === Cmd.GETS) && health.answersMeta(target);
        op = this.newOp(req, Role.CLIENT, asMeta ? Expect.META_GET : Expect.RETRIEVAL);
        // Misses of a warming master are looked up on the backup.
        op.warm = target === master && backup !== NONE && warming(health, master) && health.isUp(backup);
        this.opFor[target] = op;
        this.touched[this.touchedCount++] = target;
        const out = conn.outbox;
        out.addAll(CMD_NAME_BYTES[asMeta ? Cmd.MG : req.cmd]!);
        if (isGat) { out.addAll(SP); out.add(buf, req.argStart, req.argEnd); }
        req.waiting++;
        conn.enqueue(op, now);
      }
      if (op.warm) this.stats[master]![S.WARM_READS]!++;
      op.keyIdx[op.keyCount++] = i;
      const out = conn.outbox;
      out.addAll(SP);
      out.add(buf, ks, ke);
      // gat also touches the backup copy, so a failover does not resurrect the old TTL.
      if (isGat && target === master) {
        const shadow = shadowTarget(health, backup);
        if (shadow !== NONE) this.forget(req, shadow, TOUCH, buf, ks, ke, true, now);
        else if (backup !== NONE) this.journal.add(backup, buf, ks, ke);
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
    const conn = this.connection(server, affinity, now);
    this.connFor[server] = conn;
    return conn;
  }

  /**
   * A fire-and-forget op about one key, queued on `server`'s connection, whose
   * caller writes the line; journaled for the server if it cannot be sent or fails.
   */
  private keyOp(req: Request, server: number, kind: number, kb: Buffer, ks: number, ke: number, now: number): BackendConnection | null {
    const conn = this.connection(server, req.affinity, now);
    if (conn === null) { this.journal.add(server, kb, ks, ke); return null; }
    const op = this.newOp(req, Role.FORGET, kind);
    op.keyBuf = kb;
    op.keyStart = ks;
    op.keyEnd = ke;
    conn.enqueue(op, now);
    return conn;
  }

  /** "<verb><key>[ <arg>]\r\n", answering nobody. */
  private forget(req: Request, server: number, verb: Buffer, kb: Buffer, ks: number, ke: number, withArg: boolean, now: number): void {
    const conn = this.keyOp(req, server, Expect.LINE, kb, ks, ke, now);
    if (conn === null) return;
    const out = conn.outbox;
    out.addAll(verb);
    out.add(kb, ks, ke);
    if (withArg) { out.addAll(SP); out.add(req.buf, req.argStart, req.argEnd); }
    out.addAll(wire.CRLF);
  }

  /** Deletes a key on a server, by its bytes (md with a base64 key takes any bytes). */
  private deleteKey(req: Request, server: number, kb: Buffer, ks: number, ke: number, now: number): void {
    if (req.decodedKey === null) { this.forget(req, server, DELETE, kb, ks, ke, false, now); return; }
    const conn = this.keyOp(req, server, Expect.META, kb, ks, ke, now);
    if (conn === null) return;
    const out = conn.outbox;
    out.addAll(MD);
    out.add(req.buf, req.keyStart(0), req.keyEnd(0));
    out.addAll(BASE64_FLAG);
    out.addAll(wire.CRLF);
  }

  // ---- meta reads: mg, me ----

  private metaRead(req: Request): void {
    if (!req.prefilled) this.counters[C.CMD_GET]!++;
    this.routeSingle(req);
    const master = req.master;
    const backup = req.backup;
    if (req.cmd === Cmd.MG && (req.metaFlags & META_DEPENDS) !== 0 && this.prefill(req)) { this.hold(req); return; }
    let target = readTarget(this.health, master, backup);
    // me shows an item's metadata: a warming master may not have the item yet, the backup has.
    if (req.cmd === Cmd.ME && target === master && backup !== NONE && warming(this.health, master) && this.health.isUp(backup)) target = backup;
    if (target === NONE || !this.sendMetaRead(req, target, target === master && req.cmd === Cmd.MG && backup !== NONE &&
        warming(this.health, master) && this.health.isUp(backup))) {
      this.metaMiss(req);
      return;
    }
    if (target !== master) {
      this.counters[C.GET_FAILOVER]!++;
      this.stats[master]![S.BACKUP_READS]!++;
    }
    // mg T<ttl> touches: the backup's copy gets the same TTL.
    if (req.cmd === Cmd.MG && (req.metaFlags & META_TTL) !== 0 && target === master) {
      const shadow = shadowTarget(this.health, backup);
      const conn = shadow === NONE ? null : this.connection(shadow, req.affinity, performance.now());
      if (conn !== null) {
        const op = this.newOp(req, Role.FORGET, Expect.META);
        this.metaLine(conn, req, false);
        conn.enqueue(op, performance.now());
      } else if (backup !== NONE) {
        this.journal.add(backup, this.kb, this.ks, this.ke);
      }
    }
  }

  private sendMetaRead(req: Request, server: number, warm: boolean): boolean {
    const now = performance.now();
    const conn = this.connection(server, req.affinity, now);
    if (conn === null) return false;
    const op = this.newOp(req, Role.CLIENT, Expect.META);
    op.warm = warm;
    if (warm) this.stats[server]![S.WARM_READS]!++;
    req.waiting++;
    this.metaLine(conn, req, false);
    conn.enqueue(op, now);
    return true;
  }

  /** No server has the key: mg answers a miss (nothing when quiet), me too. */
  private metaMiss(req: Request): void {
    this.counters[C.GET_MISSES]!++;
    req.reply = (req.metaFlags & META_QUIET) !== 0 ? wire.NOTHING : EN;
    this.complete(req);
  }

  /**
   * Writes the request's meta line to conn's outbox without its q flag (the proxy
   * keeps replies one per request and does the quieting itself) and, for a cas
   * replayed on the backup, without its C flag; then the data block of ms.
   */
  private metaLine(conn: BackendConnection, req: Request, dropCas: boolean): void {
    const out = conn.outbox;
    const buf = req.buf;
    const end = req.forwardEnd;
    let i = req.lineStart;
    while (buf[i] === 0x20) i++;
    // The command, the key and (ms) the length are kept whatever letter they start with.
    const fixed = req.cmd === Cmd.MS ? 3 : 2;
    const keepQ = (req.metaFlags & META_KEEP_Q) !== 0;
    let t = 0;
    while (i < end) {
      const s = i;
      while (i < end && buf[i] !== 0x20) i++;
      const c = buf[s];
      if (t < fixed || ((c !== 0x71 /* q */ || keepQ) && !(dropCas && c === 0x43 /* C */))) {
        if (t > 0) out.addAll(SP);
        out.add(buf, s, i);
      }
      t++;
      while (i < end && buf[i] === 0x20) i++;
    }
    out.addAll(wire.CRLF);
    if (req.cmd === Cmd.MS) out.add(buf, req.dataStart, req.dataStart + req.bytes + 2);
  }

  // ---- writes: set add replace append prepend cas delete incr decr touch, ms md ma ----

  private write(req: Request): void {
    const cmd = req.cmd;
    if (req.prefilled) { /* counted when it first came */ }
    else if (cmd === Cmd.TOUCH) this.counters[C.CMD_TOUCH]!++;
    else if (cmd <= Cmd.CAS || cmd === Cmd.MS) this.counters[C.CMD_SET]!++;
    this.routeSingle(req);
    // A write that depends on the key's value, to a warming master: the backup's copy first (prefill).
    if (dependsOnValue(req) && this.prefill(req)) { this.hold(req); return; }
    if (req.backup === NONE) { this.writeLocked(req); return; }
    if (!this.sequencer.acquire(req, this.router.hashed & (STRIPES - 1), this)) {
      this.hold(req);
    } else {
      // A write answered at once (no server to send it to) is written to the
      // client and released inside writeLocked: the reference keeps it to settle.
      req.refs++;
      this.writeLocked(req);
      this.settleStripe(req);
      this.release(req);
    }
  }

  /** A parked write now holds its stripe: it goes out (and drops the reference parking took). */
  resumeWrite(req: Request): void {
    if (req.dropping) this.dropLocked(req);
    else if (req.checking) {
      this.routeSingle(req);
      if (!this.sendCheck(req)) this.endCheck(req);
    } else {
      this.routeSingle(req);
      this.writeLocked(req);
    }
    this.settleStripe(req);
    this.release(req);
  }

  /** Lets go of req's stripe once none of its ops is left (a held cas still waits for its master). */
  private settleStripe(req: Request): void {
    if (req.stripe < 0 || req.pendingOps !== 0) return;
    const stripe = req.stripe;
    this.sequencer.release(req);
    if (req.checking || req.dropping || req.masterState !== ANSWERED || req.backupState === FAILED) return;
    if ((req.metaFlags & META_INVALIDATE) !== 0) this.cancelCheck(req, stripe);
    else this.queueCheck(req, stripe);
  }

  // ---- the divergence check of written keys ----

  /** Copies the written key into a check request, sent CHECK_MS from now (unless one for it is queued). */
  private queueCheck(req: Request, stripe: number): void {
    if (this.checkQueued(req, stripe)) return;
    const ks = req.keyStart(0);
    const ke = req.keyEnd(0);
    const c = this.pools.request();
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
    this.queuedCheck[stripe] = c;
    this.dueCheck(c);
  }

  /** A check looked at again later: queued under its stripe (if free), so that an invalidation can still drop it. */
  private checkAgain(c: Request): void {
    this.routeSingle(c);
    const stripe = this.router.hashed & (STRIPES - 1);
    if (this.queuedCheck[stripe] === null) this.queuedCheck[stripe] = c;
    this.dueCheck(c);
  }

  private checkQueued(req: Request, stripe: number): boolean {
    const queued = this.queuedCheck[stripe]!;
    const ks = req.keyStart(0);
    const ke = req.keyEnd(0);
    return queued !== null && queued.buf.length === ke - ks && bytesEqual(queued.buf, 0, req.buf, ks, ke - ks);
  }

  /**
   * The key was just marked stale (md I, ms I): no check reads it. Any mg of a
   * stale item takes its recache token (W), and the client that reads it
   * next must get it, or every reader is told another recaches (Z) until the
   * item expires. A check queued by an earlier write of the key is dropped.
   */
  private cancelCheck(req: Request, stripe: number): void {
    if (!this.checkQueued(req, stripe)) return;
    // runChecks drops it when it is due.
    this.queuedCheck[stripe]!.checking = false;
    this.queuedCheck[stripe] = null;
  }

  private dueCheck(c: Request): void {
    if (this.retired) { this.release(c); return; }
    c.dueAt = performance.now() + CHECK_MS;
    this.checksDue.push(c);
    if (this.checkTimer === null) {
      this.checkTimer = setTimeout(checkWrites, CHECK_TICK_MS, this);
      this.checkTimer.unref();
    }
  }

  /** @internal */ runChecks(): void {
    this.checkTimer = null;
    const due = this.checksDue;
    const now = performance.now();
    let head = this.checksHead;
    while (head < due.length && due[head]!.dueAt <= now) {
      const c = due[head]!;
      due[head++] = null!;
      if (!c.checking) { this.release(c); continue; } // cancelled (cancelCheck)
      this.routeSingle(c);
      const stripe = this.router.hashed & (STRIPES - 1);
      if (this.queuedCheck[stripe] === c) this.queuedCheck[stripe] = null;
      if (!this.sequencer.acquire(c, stripe, this)) continue;
      if (!this.sendCheck(c)) this.endCheck(c);
    }
    if (head === due.length) {
      due.length = 0;
      head = 0;
    } else if (head > 1024 && head * 2 > due.length) {
      due.copyWithin(0, head);
      due.length -= head;
      head = 0;
    }
    this.checksHead = head;
    if (head < due.length) {
      this.checkTimer = setTimeout(checkWrites, CHECK_TICK_MS, this);
      this.checkTimer.unref();
    }
  }

  /** mg <key> v f to master and backup, both up; false if either cannot be asked now. */
  private sendCheck(c: Request): boolean {
    const health = this.health;
    if (c.backup === NONE || !health.isUp(c.master) || !health.isUp(c.backup)) return false;
    const now = performance.now();
    const mc = this.connection(c.master, c.affinity, now);
    const bc = this.connection(c.backup, c.affinity, now);
    if (mc === null || bc === null) return false;
    c.masterReply = null;
    c.backupReply = null;
    c.reply = null;
    c.waiting = 2;
    this.checkRead(c, mc, now);
    this.checkRead(c, bc, now);
    return true;
  }

  private checkRead(c: Request, conn: BackendConnection, now: number): void {
    const op = this.newOp(c, Role.CHECK, Expect.META);
    conn.outbox.addAll(MG);
    this.keyToken(conn.outbox, c, 0);
    conn.outbox.addAll(MG_GET_FLAGS);
    conn.enqueue(op, now);
  }

  private endCheck(c: Request): void {
    this.settleStripe(c);
    this.release(c);
  }

  /** One side of a check answered (or failed: failed). */
  private checkAnswered(c: Request, server: number, buf: Buffer, start: number, end: number, failed: boolean): void {
    if (failed) c.reply = wire.NOTHING;
    else if (server < this.masterCount) c.masterReply = buf.subarray(start, end);
    else c.backupReply = buf.subarray(start, end);
    if (--c.waiting > 0) return;
    const m = c.masterReply;
    const b = c.backupReply;
    if (c.reply !== null && c.checkFailures++ < CHECK_RETRIES) {
      // A read failed (a timeout, a connection lost): no verdict yet.
      this.checkAgain(c);
      return;
    }
    // The stripe goes when this op is done (onLine/onFailed); the request with the last reference.
    if (c.reply !== null || m === null || b === null || isMissReply(b) || m.equals(b)) { this.release(c); return; }
    if (c.strikes++ === 0) {
      // Maybe a write through another proxy is between the two servers: look again.
      this.checkAgain(c);
      return;
    }
    this.stats[c.backup]![S.BACKUP_DIVERGENCES]!++;
    this.routeKey(c);
    this.deleteKey(c, c.backup, this.kb, this.ks, this.ke, performance.now());
    this.release(c);
  }

  /** Sends a routed write (routeSingle just ran for it) to its master and backup. */
  private writeLocked(req: Request): void {
    const cmd = req.cmd;
    const kb = this.kb;
    const ks = this.ks;
    const ke = this.ke;
    const master = req.master;
    const backup = req.backup;
    const now = performance.now();
    const health = this.health;
    const masterConn = writable(health, master) ? this.connection(master, req.affinity, now) : null;
    const shadow = shadowTarget(health, backup);
    const backupConn = shadow === NONE ? null : this.connection(shadow, req.affinity, now);
    // A server that misses this write must not serve the key's old value later.
    if (masterConn === null) this.journal.add(master, kb, ks, ke);
    if (backupConn === null && backup !== NONE) this.journal.add(backup, kb, ks, ke);
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
      this.hold(req);
      return;
    }
    if (masterConn !== null) {
      this.sendWrite(req, masterConn, Role.CLIENT, now, false);
      req.masterState = SENT;
      // A warming master may lack the key the backup has (an incr there answers
      // NOT_FOUND): the write is answered once both have answered (settleWarmWrite).
      req.backupIsTruth = backupConn !== null && recovering(health, master);
      req.ackAfterBackup = req.backupIsTruth || (backupConn !== null && warming(health, master));
      if (backupConn !== null) {
        if (isCasRequest(req)) {
          // Its backup copy waits for the master's answer (casAnswered).
          req.casHeld = true;
        } else {
          this.sendWrite(req, backupConn, Role.SHADOW, now, false);
          req.backupState = SENT;
        }
        if (--this.sampleIn === 0) this.sampleIn = this.sampler.take(master, backup, kb, ks, ke);
      }
    } else if (backupConn !== null) {
      // Master down: the backup answers the client.
      this.sendWrite(req, backupConn, Role.CLIENT, now, false);
      req.masterState = FAILED;
      req.backupState = SENT;
    } else {
      req.reply = wire.SERVER_ERROR_UNAVAILABLE;
      this.complete(req);
    }
    this.letGo(req);
  }

  /**
   * req waits before going to its master: its client's later requests wait
   * behind it, as memcached answers a connection's requests in order (a get
   * after a delete must not read the value the delete is on its way to remove).
   */
  private hold(req: Request): void {
    if (req.holding || req.origin === null) return;
    req.holding = true;
    req.origin.holdNext();
  }

  /** req has gone to its master (or will not): its client's next requests go on. */
  private letGo(req: Request): void {
    if (!req.holding) return;
    req.holding = false;
    req.origin!.readOn();
  }

  /** The master answered a held cas: if it stored the item, the backup gets it as a set. */
  private casAnswered(req: Request, stored: boolean): void {
    req.casHeld = false;
    if (!stored) return;
    const now = performance.now();
    const conn = shadowTarget(this.health, req.backup) !== NONE ? this.connection(req.backup, req.affinity, now) : null;
    if (conn !== null) {
      // Compared like any write: an ma's new value tells whether the backup's counter had diverged.
      this.sendWrite(req, conn, Role.SHADOW, now, true);
      req.backupState = SENT;
      return;
    }
    this.routeKey(req);
    this.journal.add(req.backup, this.kb, this.ks, this.ke);
  }

  private sendWrite(req: Request, conn: BackendConnection, role: number, now: number, casAsSet: boolean): void {
    const meta = req.cmd >= Cmd.MG;
    const op = this.newOp(req, role, meta ? Expect.META : Expect.LINE);
    if (role === Role.FORGET) {
      this.routeKey(req);
      op.keyBuf = this.kb;
      op.keyStart = this.ks;
      op.keyEnd = this.ke;
    }
    if (role === Role.CLIENT) req.waiting++;
    if (meta) {
      this.metaLine(conn, req, casAsSet);
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
    const req = this.pools.request();
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
    this.routeSingle(req);
    if (req.backup === NONE || this.sequencer.acquire(req, this.router.hashed & (STRIPES - 1), this)) {
      this.dropLocked(req);
      this.settleStripe(req);
    } else {
      // Parked behind another write of the key: the client's next get must not overtake it.
      this.hold(req);
    }
    this.release(req);
  }

  private dropLocked(req: Request): void {
    this.routeSingle(req);
    const kb = this.kb;
    const kks = this.ks;
    const kke = this.ke;
    const master = req.master;
    const backup = req.backup;
    const now = performance.now();
    if (writable(this.health, master)) this.deleteKey(req, master, kb, kks, kke, now);
    else this.journal.add(master, kb, kks, kke);
    if (shadowTarget(this.health, backup) !== NONE) this.deleteKey(req, backup, kb, kks, kke, now);
    else if (backup !== NONE) this.journal.add(backup, kb, kks, kke);
    this.letGo(req);
  }

  private flushAllServers(req: Request): void {
    this.counters[C.CMD_FLUSH]!++;
    const now = performance.now();
    for (let s = 0; s < this.servers.length; s++) {
      const conn = writable(this.health, s) ? this.connection(s, req.affinity, now) : null;
      if (conn === null) {
        // A server that misses a flush must be flushed before it serves reads again.
        this.journal.overflow(s);
        continue;
      }
      const op = this.newOp(req, Role.CLIENT, Expect.LINE);
      req.waiting++;
      conn.outbox.add(req.buf, req.lineStart, req.forwardEnd);
      conn.outbox.addAll(wire.CRLF);
      conn.enqueue(op, now);
    }
    if (req.waiting === 0) {
      req.reply = wire.SERVER_ERROR_UNAVAILABLE;
      this.complete(req);
    }
  }

  // ---- recovery: deleting journaled keys on a returning server ----

  /**
   * Deletes on `server` every key this worker journaled for it and the `extra`
   * keys the main thread gathered from the other entry proxies (or flushes it,
   * if the journal overflowed or `flush` is asked), then reports through
   * onInvalidated. If a delete fails, this worker's keys go back into the journal.
   */
  invalidate(server: number, flush: boolean, extra: readonly string[] = []): void {
    if (this.invalidations.has(server)) return;
    const { keys, overflowed } = this.journal.take(server);
    const tracker = this.pools.request();
    tracker.refs = 1;
    const rest = extra.length === 0 ? keys.values() : chain(keys.values(), extra.values());
    const inv: Invalidation = { server, keys, overflowed: overflowed || flush, rest, pending: 0, failed: false, deleted: 0, tracker };
    this.invalidations.set(server, inv);
    if (inv.overflowed) {
      const conn = this.connection(server, 0, performance.now());
      if (conn === null) { inv.failed = true; this.finishInvalidation(inv); return; }
      conn.outbox.addAll(FLUSH_ALL);
      conn.enqueue(this.newOp(tracker, Role.INVALIDATE, Expect.LINE), performance.now());
      inv.pending = 1;
      return;
    }
    this.invalidateBatch(inv);
  }

  private invalidateBatch(inv: Invalidation): void {
    const now = performance.now();
    const conn = this.connection(inv.server, 0, now);
    if (conn === null) { inv.failed = true; this.finishInvalidation(inv); return; }
    const out = conn.outbox;
    let n = 0;
    for (let r = inv.rest.next(); !r.done; r = n < INVALIDATE_BATCH ? inv.rest.next() : { done: true, value: undefined }) {
      const key = Buffer.from(r.value, 'latin1');
      if (validKey(key, 0, key.length)) {
        // A key a text command could carry goes as one.
        out.addAll(DELETE);
        out.addAll(key);
        out.addAll(wire.CRLF);
        conn.enqueue(this.newOp(inv.tracker, Role.INVALIDATE, Expect.LINE), now);
      } else {
        // Other bytes (spaces, control characters: a meta b key) as base64, which
        // memcached takes up to its 250-character token limit; a longer one was
        // refused when it was written, so the server cannot hold it.
        const b64 = key.toString('base64');
        if (b64.length > KEY_MAX_LENGTH) continue;
        out.addAll(MD);
        out.addAll(Buffer.from(b64, 'latin1'));
        out.addAll(BASE64_FLAG);
        out.addAll(wire.CRLF);
        conn.enqueue(this.newOp(inv.tracker, Role.INVALIDATE, Expect.META), now);
      }
      n++;
    }
    inv.pending = n;
    inv.deleted += n;
    if (n === 0) this.finishInvalidation(inv);
  }

  private invalidateAnswered(server: number, failed: boolean): void {
    const inv = this.invalidations.get(server);
    if (inv === undefined) return;
    if (failed) inv.failed = true;
    if (--inv.pending > 0) return;
    if (inv.failed || inv.overflowed) this.finishInvalidation(inv);
    else this.invalidateBatch(inv);
  }

  private finishInvalidation(inv: Invalidation): void {
    this.invalidations.delete(inv.server);
    if (inv.failed) this.journal.restore(inv.server, inv.keys, inv.overflowed);
    this.release(inv.tracker);
    this.onInvalidated(inv.server, !inv.failed, inv.deleted);
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
    op.conn?.fail(Failure.PROTOCOL, new Error('value for a key that was not requested'));
  }

  onLine(op: Op, buf: Buffer, start: number, end: number): void {
    const req = op.req!;
    const server = op.server;
    this.health.resetTimeouts(server);
    switch (op.role) {
      case Role.FORGET: break;
      case Role.INVALIDATE: this.invalidateAnswered(server, isErrorReply(buf, start)); break;
      case Role.WARM_LOOKUP: this.warmLookupAnswered(req, op.keyIndex, buf, start, end); break;
      case Role.WARM_VERIFY: this.verifyAnswered(req, op, buf, start, end); break;
      case Role.CHECK: this.checkAnswered(req, server, buf, start, end, false); break;
      case Role.WARM_FILL:
        // HD: the fill was added; NS: the master had the key already, nothing to check.
        if (buf[start] === 0x48 && buf[start + 1] === 0x44) this.verifyFill(req, op.keyIndex, op.peer, op.token);
        break;
      case Role.WARM_PREFILL: this.prefillAnswered(req, buf, start, end); break;
      case Role.CLIENT:
        if (req.cmd <= Cmd.GATS) this.retrievalAnswered(req, op, buf, start, end);
        else if (req.cmd === Cmd.FLUSH_ALL) this.flushAnswered(req, buf, start, end);
        else if (req.cmd === Cmd.MG || req.cmd === Cmd.ME) this.metaReadAnswered(req, op, buf, start, end);
        else this.writeAnswered(req, server < this.masterCount, replyLine(buf, start, end));
        break;
      default: this.shadowAnswered(req, replyLine(buf, start, end));
    }
    this.pools.freeOp(op);
    req.pendingOps--;
    this.settleStripe(req);
    this.release(req);
  }

  private retrievalAnswered(req: Request, op: Op, buf: Buffer, start: number, end: number): void {
    if (op.kind === Expect.META_GET) {
      // VA: the value (client.ts writes it as text); EN: a miss; else an error line.
      const i = op.keyIdx[0]!;
      if (buf[start] === 0x56) req.setValue(i, buf, start, end);
      else if (end - start === 7 && buf[start] === 0x45 && buf[start + 1] === 0x52) this.metaRefused(req, i, op.server);
      else if (buf[start] !== 0x45 || buf[start + 1] !== 0x4e) req.reply = buf.subarray(start, end);
      else if (op.warm) this.warmLookup(req, i);
    } else if (end - start !== 5 || buf[start] !== 0x45) {
      // an error line replaces the whole reply
      req.reply = buf.subarray(start, end);
    } else if (op.warm) {
      const keyIdx = op.keyIdx;
      for (let c = 0; c < op.keyCount; c++) {
        const i = keyIdx[c]!;
        if (req.values[i] === null) this.warmLookup(req, i);
      }
    }
    if (--req.waiting === 0) this.complete(req);
  }

  /**
   * A server answered mg with ERROR although it answered mn: an mcrelay in
   * front of servers that do not know mg (it answers mn itself). Gets go to it
   * as text from now on (until the prober asks again after an outage), this
   * key first.
   */
  private metaRefused(req: Request, i: number, server: number): void {
    if (this.health.answersMeta(server)) {
      this.health.setAnswersMeta(server, false);
      log.warn('server answered mg with ERROR: gets go to it as text', { server: this.servers[server]![0]!.address.name });
    }
    this.sendKeys(req, [i], false);
  }

  private flushAnswered(req: Request, buf: Buffer, start: number, end: number): void {
    if (req.reply === null || req.reply === wire.OK) {
      req.reply = end - start === 4 && buf[start] === 0x4f ? wire.OK : buf.subarray(start, end);
    }
    if (--req.waiting === 0) this.complete(req);
  }

  private metaReadAnswered(req: Request, op: Op, buf: Buffer, start: number, end: number): void {
    const miss = buf[start] === 0x45 && buf[start + 1] === 0x4e; // EN
    if (miss && op.warm) this.warmLookup(req, 0);
    req.reply = miss && (req.metaFlags & META_QUIET) !== 0 ? wire.NOTHING : buf.subarray(start, end);
    if (miss) this.counters[C.GET_MISSES]!++;
    else if (req.waiting === 1) this.counters[C.GET_HITS]!++;
    if (--req.waiting === 0) this.complete(req);
  }

  private writeAnswered(req: Request, fromMaster: boolean, line: Buffer): void {
    req.waiting--;
    // Quiet meta writes answer nothing when all went well (HD).
    const reply = quieted(req, line) ? wire.NOTHING : line;
    if (fromMaster) {
      req.masterState = ANSWERED;
      req.masterReply = line;
      req.reply = reply;
      if (req.ackAfterBackup && req.backupState === SENT) return;
      if (req.ackAfterBackup && req.backupState === ANSWERED) { this.settleWarmWrite(req); return; }
      this.complete(req);
      if (req.casHeld) {
        this.casAnswered(req, line.equals(wire.STORED) || isMetaSuccess(req, line));
      } else if (req.backupState === ANSWERED) {
        this.compare(req);
      }
    } else {
      // Master down, backup served as primary.
      req.backupState = ANSWERED;
      req.reply = reply;
      this.complete(req);
    }
  }

  /** The backup's answer to a replicated write. */
  private shadowAnswered(req: Request, line: Buffer): void {
    req.backupState = ANSWERED;
    req.backupReply = line;
    if (req.deferMaster) { this.sendDeferredMaster(req); return; }
    if (req.masterState === ANSWERED) {
      if (req.ackAfterBackup) this.settleWarmWrite(req);
      else this.compare(req);
    }
    else if (req.masterState === FAILED && !req.done) {
      req.reply = quieted(req, line) ? wire.NOTHING : line;
      this.complete(req);
    }
  }

  onFailed(op: Op): void {
    const req = op.req!;
    const role = op.role;
    const server = op.server;
    const kind = op.kind;
    const retrieval = kind === Expect.RETRIEVAL || kind === Expect.META_GET;
    if (op.keyBuf !== null) this.journal.add(server, op.keyBuf, op.keyStart, op.keyEnd);
    // A write whose fate on the server is unknown (it timed out: its bytes may still
    // land) leaves the server possibly stale for that key: it must not serve reads
    // until recovery has cleared it, whatever the failure limit says for reads.
    if (this.failing === Failure.TIMEOUT && !retrieval && role !== Role.WARM_LOOKUP &&
        role !== Role.WARM_VERIFY && role !== Role.WARM_PREFILL && req.cmd !== Cmd.MG && req.cmd !== Cmd.ME && this.health.markDown(server)) {
      log.warn('server marked down', { server: this.servers[server]![0]!.address.name, reason: 'a write to it timed out' });
    }
    // The op goes back to its pool at the end; a retrieval's keys move to the failover.
    const keys = retrieval ? op.keyIdx.slice(0, op.keyCount) : null;
    const warm = op.warm;
    this.pools.freeOp(op);
    if (this.failing === Failure.CLOSED && role === Role.CLIENT) {
      // The connection closed under this read (an idle close racing it): once
      // more on a new connection to the same server before anything counts.
      req.retried = true;
      if (retrieval) {
        req.waiting--;
        this.sendKeys(req, keys!, false);
        if (req.waiting === 0) this.complete(req);
      } else {
        req.waiting--;
        if (!this.sendMetaRead(req, server, warm)) this.metaMiss(req);
      }
      req.pendingOps--;
      this.release(req);
      return;
    }
    switch (role) {
      case Role.FORGET: break;
      case Role.INVALIDATE: this.invalidateAnswered(server, true); break;
      case Role.WARM_VERIFY: case Role.WARM_FILL: break;
      case Role.CHECK: this.checkAnswered(req, server, wire.NOTHING, 0, 0, true); break;
      // The backup failed: the request goes on without the copy.
      case Role.WARM_PREFILL: this.resume(req); break;
      case Role.WARM_LOOKUP:
        // The backup failed too: the key is a miss.
        if (--req.waiting === 0) this.complete(req);
        break;
      case Role.CLIENT:
        if (retrieval) {
          // Retry the op's keys on their backups (if it was a master that failed).
          if (server < this.masterCount) this.sendKeys(req, keys!, true);
          if (--req.waiting === 0) this.complete(req);
        } else if (req.cmd === Cmd.FLUSH_ALL) {
          if (req.reply === null || req.reply === wire.OK) req.reply = wire.SERVER_ERROR_UNAVAILABLE;
          if (--req.waiting === 0) this.complete(req);
        } else if (req.cmd === Cmd.MG || req.cmd === Cmd.ME) {
          req.waiting--;
          if (server >= this.masterCount || req.backup === NONE || !this.health.isUp(req.backup) ||
              !this.sendMetaRead(req, req.backup, false)) {
            this.metaMiss(req);
          } else {
            this.counters[C.GET_FAILOVER]!++;
            this.stats[server]![S.BACKUP_READS]!++;
          }
        } else {
          this.routeKey(req);
          this.journal.add(server, this.kb, this.ks, this.ke);
          this.writeFailed(req, server);
        }
        break;
      default:
        this.routeKey(req);
        this.journal.add(server, this.kb, this.ks, this.ke);
        this.shadowFailed(req);
    }
    req.pendingOps--;
    this.settleStripe(req);
    this.release(req);
  }

  private writeFailed(req: Request, server: number): void {
    req.waiting--;
    if (server < this.masterCount && req.masterState === SENT) {
      req.masterState = FAILED;
      if (req.casHeld) this.casAnswered(req, false);
      // The backup's reply, when it has or will come, answers the client.
      if (req.backupState === ANSWERED) { req.reply = req.backupReply; this.complete(req); }
      else if (req.backupState !== SENT) { req.reply = wire.SERVER_ERROR_UNAVAILABLE; this.complete(req); }
    } else {
      req.backupState = FAILED;
      req.reply = wire.SERVER_ERROR_UNAVAILABLE;
      this.complete(req);
    }
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
      this.complete(req);
      return;
    }
    // The backup's answer when the master lacked the key: its value, or its
    // CLIENT_ERROR about that value (an incr of a non-number); not a failure of its own.
    if (isMissReply(m) && !isMissReply(b) && (!isErrorReply(b, 0) || b[0] === 0x43 /* CLIENT_ERROR */)) {
      req.reply = quieted(req, b) ? wire.NOTHING : b;
      this.complete(req);
      if (!isDelete(req)) this.warmLookup(req, 0);
      return;
    }
    this.complete(req);
    this.compare(req);
  }

  /** The backup has answered a delete held back for a warming master: now the master. */
  private sendDeferredMaster(req: Request): void {
    req.deferMaster = false;
    const conn = writable(this.health, req.master) ? this.connection(req.master, req.affinity, performance.now()) : null;
    if (conn === null) {
      this.routeKey(req);
      this.journal.add(req.master, this.kb, this.ks, this.ke);
      req.masterState = FAILED;
      req.reply = req.backupState === ANSWERED ? req.backupReply : wire.SERVER_ERROR_UNAVAILABLE;
      this.complete(req);
      return;
    }
    this.sendWrite(req, conn, Role.CLIENT, performance.now(), false);
    req.masterState = SENT;
    this.letGo(req);
    // As for other writes (writeLocked): a recovering master's reply is not the
    // truth, and a warming one may lack the key the backup just deleted.
    req.backupIsTruth = recovering(this.health, req.master);
    req.ackAfterBackup = req.backupIsTruth || warming(this.health, req.master);
  }

  /** The backup copy of a write was lost; if the master's was too, the client learns it. */
  private shadowFailed(req: Request): void {
    req.backupState = FAILED;
    if (req.deferMaster) { this.sendDeferredMaster(req); return; }
    if (req.ackAfterBackup && req.masterState === ANSWERED) this.complete(req);
    if (req.masterState === FAILED && !req.done) {
      req.reply = wire.SERVER_ERROR_UNAVAILABLE;
      this.complete(req);
    }
  }

  /**
   * A client's read (text retrieval, mg, me) may go again on a new connection,
   * once; so may a warm-up lookup on the backup (its failure is only a miss).
   * A write may not: whether it landed is unknown.
   */
  retryable(op: Op): boolean {
    // A check of a written key reads: it is sent again (checkAnswered) as a failure.
    if (op.role === Role.WARM_LOOKUP || op.role === Role.CHECK) return true;
    if (op.role !== Role.CLIENT) return false;
    const req = op.req!;
    return !req.retried && (op.kind === Expect.RETRIEVAL || op.kind === Expect.META_GET || req.cmd === Cmd.MG || req.cmd === Cmd.ME);
  }

  onConnectionFailed(conn: BackendConnection, failure: number, error: Error | null): void {
    this.failing = failure;
    const server = conn.server;
    const name = conn.address.name;
    if (failure === Failure.CLOSED) {
      log.debug('backend connection closed under reads; sending them again', { server: name, reason: error?.message ?? 'closed' });
      return;
    }
    if (failure === Failure.TIMEOUT) {
      this.counters[C.BACKEND_TIMEOUTS]!++;
      const n = this.health.addTimeout(server);
      if (n >= this.config.failureLimit && this.health.markDown(server)) {
        log.warn('server marked down', { server: name, reason: `${n} consecutive timeouts` });
      }
      return;
    }
    this.counters[C.BACKEND_ERRORS]!++;
    // A refused or reset connection, or a stream out of step: either way the
    // server's answers cannot be trusted until the prober has seen it well again.
    if (this.health.markDown(server)) log.warn('server marked down', { server: name, reason: error?.message ?? 'connection lost' });
  }

  // ---- warm-up ----

  /** Looks up on the backup a key that its warming master missed. */
  private warmLookup(req: Request, i: number): void {
    let kb: Buffer;
    let ks: number;
    let ke: number;
    if (req.cmd >= Cmd.MG) {
      this.routeKey(req);
      kb = this.kb; ks = this.ks; ke = this.ke;
    } else {
      kb = req.buf; ks = req.keyStart(i); ke = req.keyEnd(i);
    }
    this.router.route(kb, ks, ke);
    const backup = this.backupOf();
    if (backup === NONE || !this.health.isUp(backup)) return;
    const now = performance.now();
    const conn = this.connection(backup, req.affinity, now);
    if (conn === null) return;
    req.waiting++;
    this.lookup(conn, req, Role.WARM_LOOKUP, i, now);
  }

  /** mg <key> v f t c on the backup: its value, client flags, remaining TTL and cas. */
  private lookup(conn: BackendConnection, req: Request, role: number, i: number, now: number): void {
    const op = this.newOp(req, role, Expect.META);
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
  private prefill(req: Request): boolean {
    const backup = req.backup;
    if (req.prefilled || backup === NONE || !warming(this.health, req.master) || !this.health.isUp(backup)) return false;
    const now = performance.now();
    const conn = this.connection(backup, req.affinity, now);
    if (conn === null) return false;
    req.prefilled = true;
    this.lookup(conn, req, Role.WARM_PREFILL, 0, now);
    return true;
  }

  private prefillAnswered(req: Request, buf: Buffer, start: number, end: number): void {
    const v = parseVA(buf, start, end);
    // The fill goes to the master's connection ahead of the request: memcached applies them in that order.
    if (v !== null && v.ttl !== 0) this.fill(req, 0, req.master, v, buf.subarray(v.dataStart, v.dataStart + v.size));
    this.resume(req);
  }

  private resume(req: Request): void {
    if (req.cmd === Cmd.MG) {
      this.metaRead(req);
      this.letGo(req);
    } else {
      this.write(req);
    }
  }

  /** The key as sent on the wire: text keys as they are, meta keys as the client wrote them (b adds " b"). */
  private keyToken(out: BackendConnection['outbox'], req: Request, i: number): void {
    if (req.cmd >= Cmd.MG) {
      out.add(req.buf, req.keyStart(0), req.keyEnd(0));
      if (req.decodedKey !== null) out.addAll(BASE64_FLAG);
    } else {
      out.add(req.buf, req.keyStart(i), req.keyEnd(i));
    }
  }

  private warmLookupAnswered(req: Request, i: number, buf: Buffer, start: number, end: number): void {
    req.waiting--;
    const v = parseVA(buf, start, end);
    if (v !== null) {
      const m = req.cmd >= Cmd.MG ? req.master : this.masterOfKey(req, i);
      this.stats[m]![S.WARM_BACKUP_HITS]!++;
      this.counters[C.GET_WARM_HITS]!++;
      const data = buf.subarray(v.dataStart, v.dataStart + v.size);
      const filled = v.ttl !== 0 && this.fill(req, i, m, v, data);
      if (req.cmd === Cmd.GET) {
        // The backup's value answers the client (client.ts writes it as text); the fill goes on beside it.
        req.setValue(i, buf, start, end);
      } else if (filled && (req.cmd <= Cmd.GATS || req.cmd === Cmd.MG)) {
        // Read it again from the master, which now holds it: cas ids and meta flags are the master's.
        this.reread(req, i, m);
      }
    }
    if (req.waiting === 0) this.complete(req);
  }

  private masterOfKey(req: Request, i: number): number {
    this.router.route(req.buf, req.keyStart(i), req.keyEnd(i));
    return this.router.master;
  }

  /** Copies an item into a warming master with ms ... ME (add: never over a newer value). */
  private fill(req: Request, i: number, master: number, v: VA, data: Buffer): boolean {
    const now = performance.now();
    const conn = this.connection(master, req.affinity, now);
    if (conn === null) return false;
    // No TTL stays none; past 30 days memcached wants a unix time.
    const ttl = v.ttl;
    const exptime = ttl < 0 ? 0 : ttl > RELATIVE_TTL_MAX ? Math.floor(Date.now() / 1000) + ttl : ttl;
    // Its answer sends the verification (WARM_FILL in onLine): only once the fill
    // has landed can a delete that raced it be seen on the backup.
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
      const mark = this.newOp(req, Role.FORGET, Expect.META);
      mark.keyBuf = d ?? req.buf;
      mark.keyStart = d === null ? req.keyStart(i) : 0;
      mark.keyEnd = d === null ? req.keyEnd(i) : d.length;
      out.addAll(MD);
      out.add(req.buf, req.keyStart(i), req.keyEnd(i));
      out.addAll(d !== null ? STALE_MARK_B64 : STALE_MARK);
      conn.enqueue(mark, now);
    }
    this.stats[master]![S.WARM_FILLS]!++;
    return true;
  }

  /**
   * A write or delete of the key through another proxy may have passed the fill
   * (read from the backup, then added to the master after the delete): read the
   * backup's cas again, and if the item changed or went, delete the fill.
   */
  private verifyFill(req: Request, i: number, master: number, cas: string): void {
    const now = performance.now();
    const conn = this.connection(req.backup >= 0 && req.cmd >= Cmd.MG ? req.backup : this.backupOfKey(req, i), req.affinity, now);
    if (conn === null) return;
    const op = this.warmOp(req, Role.WARM_VERIFY, i, cas, master);
    const out = conn.outbox;
    out.addAll(MG);
    this.keyToken(out, req, i);
    out.addAll(CAS_FLAG);
    out.addAll(wire.CRLF);
    conn.enqueue(op, now);
  }

  private verifyAnswered(req: Request, op: Op, buf: Buffer, start: number, end: number): void {
    const line = buf.toString('latin1', start, end);
    const m = /^HD.* c(\d+)/.exec(line);
    if (m !== null && m[1] === op.token) return;
    // Gone or changed on the backup since the lookup: the fill may be stale.
    let kb: Buffer;
    let ks: number;
    let ke: number;
    if (req.cmd >= Cmd.MG) { this.routeKey(req); kb = this.kb; ks = this.ks; ke = this.ke; }
    else { kb = req.buf; ks = req.keyStart(op.keyIndex); ke = req.keyEnd(op.keyIndex); }
    if (req.cmd >= Cmd.MG) this.deleteKey(req, op.peer, kb, ks, ke, performance.now());
    else this.forget(req, op.peer, DELETE, kb, ks, ke, false, performance.now());
  }

  private backupOfKey(req: Request, i: number): number {
    this.router.route(req.buf, req.keyStart(i), req.keyEnd(i));
    return this.backupOf();
  }

  private reread(req: Request, i: number, master: number): void {
    const now = performance.now();
    const conn = this.connection(master, req.affinity, now);
    if (conn === null) return;
    req.waiting++;
    if (req.cmd >= Cmd.MG) {
      const op = this.newOp(req, Role.CLIENT, Expect.META);
      this.metaLine(conn, req, false);
      conn.enqueue(op, now);
      return;
    }
    const op = this.newOp(req, Role.CLIENT, Expect.RETRIEVAL);
    op.keyIdx[op.keyCount++] = i;
    const out = conn.outbox;
    out.addAll(CMD_NAME_BYTES[req.cmd]!);
    if (req.cmd === Cmd.GAT || req.cmd === Cmd.GATS) { out.addAll(SP); out.add(req.buf, req.argStart, req.argEnd); }
    out.addAll(SP);
    out.add(req.buf, req.keyStart(i), req.keyEnd(i));
    out.addAll(wire.CRLF);
    conn.enqueue(op, now);
  }

  // ---- replication ----

  /** Master and backup both answered a write: a disagreement removes the key from the backup. */
  private compare(req: Request): void {
    // Whichever of them had the key, a delete left it on neither; each server has
    // its own cas counter: "HD c7" and "HD c9" agree.
    if (isDelete(req) || sameMeaning(req.masterReply!, req.backupReply!, req.cmd >= Cmd.MG)) return;
    this.counters[C.BACKUP_REPAIRS]!++;
    // SERVER_ERROR (out of memory, -M): the backup refused what the master stored.
    const b = req.backupReply!;
    if (b[0] === 0x53 && b[6] === 0x5f) this.stats[req.backup]![S.WRITE_REFUSALS]!++;
    this.routeKey(req);
    this.deleteKey(req, req.backup, this.kb, this.ks, this.ke, performance.now());
  }

  // ---- completion ----

  private complete(req: Request): void {
    if (req.done) return;
    req.done = true;
    this.letGo(req);
    if (req.cmd <= Cmd.GATS && req.reply === null) {
      let hits = 0;
      const v = req.values;
      for (let i = 0; i < req.valueCount; i++) if (v[i] !== null) hits++;
      this.counters[C.GET_HITS]! += hits;
      this.counters[C.GET_MISSES]! += req.keyCount - hits;
    }
    req.client?.replyReady();
  }

  /** Drops one reference; the last one returns the request to its pool. */
  release(req: Request): void {
    if (--req.refs !== 0) return;
    this.letGo(req);
    this.pools.freeRequest(req);
  }

  closeAll(): void {
    for (const conns of this.servers) for (const c of conns) c.close();
  }

  /** After a reload: the requests still in flight finish here, then the connections close. */
  retire(): void {
    // Queued checks would open these connections again once they are closed;
    // the new dispatcher checks the writes it sends.
    this.retired = true;
    if (this.checkTimer !== null) { clearTimeout(this.checkTimer); this.checkTimer = null; }
    const due = this.checksDue;
    for (let i = this.checksHead; i < due.length; i++) this.release(due[i]!);
    due.length = 0;
    this.checksHead = 0;
    this.queuedCheck.fill(null);
    const check = (): void => {
      for (const conns of this.servers) for (const c of conns) if (c.inflight > 0) return;
      clearInterval(timer);
      this.closeAll();
    };
    const timer = setInterval(check, 100);
    check();
  }

  /** After a reload: takes over what `old` journaled for the servers both know, by name. */
  adoptJournals(old: Dispatcher): void {
    const names = [...old.config.masters, ...old.config.backups].map((a) => a.name);
    const mine = [...this.config.masters, ...this.config.backups].map((a) => a.name);
    for (let i = 0; i < names.length; i++) {
      const j = mine.indexOf(names[i]!);
      if (j < 0) continue;
      const { keys, overflowed } = old.journal.take(i);
      this.journal.restore(j, keys, overflowed);
    }
  }
}

const EN = Buffer.from('EN\r\n');

/**
 * A quiet meta write's reply that memcached would not send: HD (ms, md, ma) and,
 * for ma, the value of a successful incr/decr (VA).
 */
function quieted(req: Request, line: Buffer): boolean {
  if ((req.metaFlags & META_QUIET) === 0) return false;
  if (line[0] === 0x48 && line[1] === 0x44) return true;
  return req.cmd === Cmd.MA && line[0] === 0x56 && line[1] === 0x41;
}

function isDelete(r: Request): boolean {
  return r.cmd === Cmd.DELETE || r.cmd === Cmd.MD;
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

/** HD, or the VA of an ma that returned its value */
function isMetaSuccess(req: Request, line: Buffer): boolean {
  if (req.cmd < Cmd.MS) return false;
  return (line[0] === 0x48 && line[1] === 0x44) || (req.cmd === Cmd.MA && line[0] === 0x56 && line[1] === 0x41);
}

/** NOT_FOUND, NOT_STORED, or their meta forms NF, NS, EN */
function isMissReply(line: Buffer): boolean {
  const c0 = line[0];
  const c1 = line[1];
  if (c0 === 0x4e) return c1 === 0x4f || c1 === 0x46 || c1 === 0x53; // NOT_..., NF, NS
  return c0 === 0x45 && c1 === 0x4e; // EN
}

/** ERROR, CLIENT_ERROR or SERVER_ERROR */
function isErrorReply(buf: Buffer, start: number): boolean {
  const c = buf[start];
  return (c === 0x45 && buf[start + 1] === 0x52) || ((c === 0x43 || c === 0x53) && buf[start + 6] === 0x5f);
}

/** "VA <size> f<flags> t<ttl>\r\n<data>\r\n" -> its parts; null for anything else (EN). */
/** A warm lookup's VA line: what a fill copies (stale: invalidated, and this lookup won the recache, W). */
interface VA { size: number; flags: string; ttl: number; cas: string; stale: boolean; textKey: boolean; dataStart: number }

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

function checkWrites(d: Dispatcher): void {
  d.runChecks();
}

function* chain<T>(a: Iterator<T>, b: Iterator<T>): Generator<T> {
  for (let r = a.next(); !r.done; r = a.next()) yield r.value;
  for (let r = b.next(); !r.done; r = b.next()) yield r.value;
}

function flushDirty(d: Dispatcher): void {
  d.flushAll();
}

/** A write's reply line: the shared constant for the usual STORED, else the bytes where they are. */
function replyLine(buf: Buffer, start: number, end: number): Buffer {
  if (end - start === wire.STORED.length && bytesEqual(buf, start, wire.STORED, 0, wire.STORED.length)) return wire.STORED;
  return buf.subarray(start, end);
}
