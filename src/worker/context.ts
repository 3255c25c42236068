// What every room of the worker's data path shares (one per configuration: a
// reload builds a new one): the servers and their connections, routing, health,
// the journal, the write stripes, the counters, and the small acts all rooms do
// (choose a connection, start an op, send a key's delete, finish a request).
//
//   Dispatcher (dispatch.ts)  hands requests in and replies back to the rooms:
//     Reads        reads.ts         get, gets, gat, gats, mg, me; failover
//     Writes       writes.ts        a write sent to its master/backup pair, cas held back, flush_all
//     WritePair    write-pair.ts    the pair's answers: the client's reply, the cas copy, repair
//     Checks       checks.ts        the divergence check of written keys
//     WarmUp       warm-up.ts       a warming master's misses, filled from the backup
//     Invalidation invalidation.ts  journaled keys deleted on a returning server

import { backupNames, masterNames, serverNames, type Config } from '../config/config.js';
import { BackendConnection, type ReplyHandler } from '../backend/connection.js';
import { Cmd } from '../protocol/commands.js';
import { writeMetaLine } from '../protocol/meta-line.js';
import { META_KEEP_Q } from '../protocol/meta-request.js';
import { Expect } from '../protocol/response-parser.js';
import { BASE64_FLAG, DELETE, MD, SPACE } from '../protocol/verbs.js';
import * as wire from '../protocol/wire.js';
import { NONE } from '../routing/policy.js';
import { Router } from '../routing/router.js';
import { C } from '../shared/counters.js';
import type { HealthTable } from '../shared/health.js';
import { S } from '../shared/server-stats.js';
import type { FlushScheduler } from './flush-scheduler.js';
import { Journal } from './journal.js';
import { Op, Pools, Request, Role } from './request.js';
import type { Sequencer } from './sequencer.js';

/** The bytes a request's key is routed and journaled by: [start, end) of buf. */
export interface KeySpan { buf: Buffer; start: number; end: number }

/** What the worker gives a configuration's dispatcher (worker/entry.ts), and the dispatcher its context. */
export interface ContextOptions {
  /** shared by every dispatcher of the worker, so a request may be released by any */
  readonly pools: Pools;
  readonly config: Config;
  readonly health: HealthTable;
  /** this worker's row of the counters */
  readonly counters: Float64Array;
  /** this worker's figures for a server */
  readonly serverStats: (server: number) => Float64Array;
  /** the worker's write stripes: shared by its dispatchers (old and new ones across a reload) */
  readonly sequencer: Sequencer;
  /** the worker's one flush per socket per turn */
  readonly scheduler: FlushScheduler;
  /** told when keys journaled for a master wait to be published (Journal.takeShared) */
  readonly onJournalShared: () => void;
}

// What the rooms ask of one another through the context: declared here, so
// that no room imports another and the context imports none.

/** reads.ts: a warm-up prefill's mg goes on */
export interface ReadsRoom {
  metaRead(req: Request): void;
}

/** writes.ts: a warm-up prefill's write goes on; a check lets go of its stripe */
export interface WritesRoom {
  write(req: Request): void;
  settleStripe(req: Request): void;
}

/** checks.ts: a write that settled is checked later (or its check is dropped) */
export interface ChecksRoom {
  queue(req: Request, stripe: number): void;
  cancel(req: Request, stripe: number): void;
}

/** warm-up.ts: a warming master's miss, a write that depends on the value, a key as the backup is asked it */
export interface WarmUpRoom {
  lookup(req: Request, i: number): void;
  prefill(req: Request): boolean;
  keyToken(out: BackendConnection['outbox'], req: Request, i: number): void;
}

export class WorkerContext {
  readonly pools: Pools;
  readonly config: Config;
  readonly health: HealthTable;
  readonly counters: Float64Array;
  readonly sequencer: Sequencer;
  readonly scheduler: FlushScheduler;
  readonly router: Router;
  readonly masterCount: number;
  /** per server: its connections */
  readonly servers: BackendConnection<Op>[][];
  /** per server: this worker's figures for it */
  readonly stats: Float64Array[];
  readonly journal: Journal;
  // The rooms, set once by the Dispatcher that builds them.
  reads!: ReadsRoom;
  writes!: WritesRoom;
  checks!: ChecksRoom;
  warm!: WarmUpRoom;
  /** what keyOf returns (one per context: read it before the next call) */
  private readonly span: KeySpan = { buf: wire.NOTHING, start: 0, end: 0 };

  constructor(options: ContextOptions, handler: ReplyHandler<Op>) {
    const { config, serverStats } = options;
    this.pools = options.pools;
    this.config = config;
    this.health = options.health;
    this.counters = options.counters;
    this.sequencer = options.sequencer;
    this.scheduler = options.scheduler;
    this.router = new Router(config.distribution, masterNames(config), backupNames(config));
    this.masterCount = config.masters.length;
    const all = [...config.masters, ...config.backups];
    this.stats = all.map((_a, i) => serverStats(i));
    this.servers = all.map((addr, i) => {
      const conns: BackendConnection<Op>[] = [];
      for (let c = 0; c < config.connectionsPerServer; c++) {
        conns.push(new BackendConnection(i, addr, handler, config.timeoutMs, config.retryIntervalMs, this.stats[i]!));
      }
      return conns;
    });
    this.journal = new Journal(serverNames(config), Math.max(1, Math.ceil(config.journalMaxKeys / config.workers)), (s) => this.stats[s]!,
      config.backups.length > 0 ? this.masterCount : 0, options.onJournalShared);
  }

  /**
   * The connection to `server` for a request of client `affinity`. A client's
   * requests to one server always share a connection, so that they reach the
   * server in the order the client sent them (a noreply set, then a get).
   */
  connection(server: number, affinity: number, now: number): BackendConnection<Op> | null {
    const conns = this.servers[server]!;
    const conn = conns.length === 1 ? conns[0]! : conns[affinity % conns.length]!;
    return conn.usable(now) ? conn : null;
  }

  /** The bytes a single-key request is routed and journaled by (a meta b key: its decoded bytes). */
  keyOf(req: Request): KeySpan {
    const s = this.span;
    const d = req.decodedKey;
    if (d !== null) {
      s.buf = d; s.start = 0; s.end = d.length;
    } else {
      s.buf = req.buf; s.start = req.keyStart(0); s.end = req.keyEnd(0);
    }
    return s;
  }

  /** Routes a single-key request: sets req.master and req.backup (and the router's hash, for its stripe). */
  routeSingle(req: Request): void {
    const k = this.keyOf(req);
    this.router.route(k.buf, k.start, k.end);
    req.master = this.router.master;
    req.backup = this.backupOf();
  }

  /** The backup of the key the router last routed, as a server number, or NONE. */
  backupOf(): number {
    return this.router.backup === -1 ? NONE : this.masterCount + this.router.backup;
  }

  /** Journals req's key for `server`: it missed a write and must not serve the key before recovery. */
  journalKey(server: number, req: Request): void {
    const k = this.keyOf(req);
    this.journal.add(server, k.buf, k.start, k.end);
  }

  newOp(req: Request, role: number, kind: number): Op {
    const op = this.pools.op();
    op.req = req;
    op.role = role;
    op.kind = kind;
    req.refs++;
    req.pendingOps++;
    return op;
  }

  /** A read of `master`'s key answered by its backup. */
  countFailover(master: number): void {
    this.counters[C.GET_FAILOVER]!++;
    this.stats[master]![S.BACKUP_READS]!++;
  }

  /**
   * A fire-and-forget op about one key, queued on `server`'s connection, whose
   * caller writes the line; journaled for the server if it cannot be sent or fails.
   */
  private keyOp(req: Request, server: number, kind: number, kb: Buffer, ks: number, ke: number, now: number): BackendConnection<Op> | null {
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
  forget(req: Request, server: number, verb: Buffer, kb: Buffer, ks: number, ke: number, withArg: boolean, now: number): void {
    const conn = this.keyOp(req, server, Expect.LINE, kb, ks, ke, now);
    if (conn === null) return;
    const out = conn.outbox;
    out.addAll(verb);
    out.add(kb, ks, ke);
    if (withArg) { out.addAll(SPACE); out.add(req.buf, req.argStart, req.argEnd); }
    out.addAll(wire.CRLF);
  }

  /** Deletes a key on a server, by its bytes (md with a base64 key takes any bytes). */
  deleteKey(req: Request, server: number, kb: Buffer, ks: number, ke: number, now: number): void {
    if (req.decodedKey === null) { this.forget(req, server, DELETE, kb, ks, ke, false, now); return; }
    const conn = this.keyOp(req, server, Expect.META, kb, ks, ke, now);
    if (conn === null) return;
    const out = conn.outbox;
    out.addAll(MD);
    out.add(req.buf, req.keyStart(0), req.keyEnd(0));
    out.addAll(BASE64_FLAG);
    out.addAll(wire.CRLF);
  }

  /** req's meta line to conn (worker-side: no q; dropCas: no C, for a cas replayed on the backup), then ms's data. */
  metaLine(conn: BackendConnection, req: Request, dropCas: boolean): void {
    writeMetaLine(conn.outbox, req.buf, req.lineStart, req.forwardEnd, req.cmd === Cmd.MS, (req.metaFlags & META_KEEP_Q) !== 0, dropCas,
      req.dataStart, req.bytes);
  }

  /**
   * req waits before going to its master: its client's later requests wait
   * behind it, as memcached answers a connection's requests in order (a get
   * after a delete must not read the value the delete is on its way to remove).
   */
  hold(req: Request): void {
    if (req.holding || req.origin === null) return;
    req.holding = true;
    req.origin.holdNext();
  }

  /** req has gone to its master (or will not): its client's next requests go on. */
  letGo(req: Request): void {
    if (!req.holding) return;
    req.holding = false;
    req.origin!.readOn();
  }

  /** req's reply is ready: its client writes it when it is the oldest it owes. */
  complete(req: Request): void {
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
}
