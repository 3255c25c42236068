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
// backup so that it never holds a value the master does not).
//
// cas cannot be forwarded to the backup (its cas id is the master's): once the
// master answers STORED, the item goes to the backup as a set. Until then, later
// writes of the same key from this worker wait with their backup copies in a
// queue behind the cas (casQueues), so that the backup applies them in the order
// the master did; the clients' replies never wait for it.

import type { Config } from '../config/config.js';
import { BackendConnection, Failure, type ReplyHandler } from '../backend/connection.js';
import { Cmd, CMD_NAME_BYTES } from '../protocol/commands.js';
import * as wire from '../protocol/wire.js';
import { NONE, readTarget, shadowTarget } from '../routing/policy.js';
import { Router } from '../routing/router.js';
import { C } from '../shared/counters.js';
import { HealthTable } from '../shared/health.js';
import { S } from '../shared/server-stats.js';
import { log } from '../log.js';
import { Op, Pools, Request, Role } from './request.js';

const SP = Buffer.from(' ');
const SET = Buffer.from('set');
const DELETE = Buffer.from('delete ');
const TOUCH = Buffer.from('touch ');
const STORED_LINE = wire.STORED;

// Write-pair states (Request.masterState / backupState).
const NOT_SENT = 0;
const SENT = 1;
const ANSWERED = 2;
const FAILED = 3;

// Request.casState
const CAS_WAITING = 0;
const CAS_STORED = 1;
const CAS_REFUSED = 2;

export interface Flushable { flush(): void }

export class Dispatcher implements ReplyHandler {
  readonly pools = new Pools();
  private readonly router: Router;
  private readonly masterCount: number;
  private readonly servers: BackendConnection[][];
  /** per server: the op being filled while a multi-key request is grouped */
  private readonly opFor: Array<Op | null>;
  /** per server: its stats block (reads of its keys served by the backup are counted on it) */
  private readonly backupReads: Float64Array[];
  private readonly connFor: Array<BackendConnection | null>;
  private readonly touched: number[] = [];
  private readonly dirty: Flushable[] = [];
  /** per key: a cas waiting for the master, then writes whose backup copies wait behind it */
  private readonly casQueues = new Map<string, Request[]>();
  private flushScheduled = false;

  constructor(
    readonly config: Config,
    readonly health: HealthTable,
    readonly counters: Float64Array,
    /** this worker's per-server figures: serverStats(server) */
    readonly serverStats: (server: number) => Float64Array,
  ) {
    this.router = new Router(config.distribution, config.masters.map((s) => s.name), config.backups.map((s) => s.name));
    this.masterCount = config.masters.length;
    const all = [...config.masters, ...config.backups];
    this.servers = all.map((addr, i) => {
      const conns: BackendConnection[] = [];
      for (let c = 0; c < config.connectionsPerServer; c++) {
        conns.push(new BackendConnection(i, addr, this, config.timeoutMs, config.retryIntervalMs, serverStats(i)));
      }
      return conns;
    });
    this.backupReads = all.map((_a, i) => serverStats(i));
    this.opFor = new Array(all.length).fill(null);
    this.connFor = new Array(all.length).fill(null);
  }

  // ---- scheduling: one flush per socket per event-loop turn ----

  schedule(target: Flushable): void {
    this.dirty.push(target);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(flushDirty, this);
    }
  }

  /** @internal */ flushAll(): void {
    this.flushScheduled = false;
    const d = this.dirty;
    // flush() may schedule more (a client reply completing); those go next turn.
    const n = d.length;
    for (let i = 0; i < n; i++) d[i]!.flush();
    d.splice(0, n);
  }

  // ---- requests in ----

  /** Starts a parsed request; its reply arrives later through the client's queue. */
  submit(req: Request): void {
    const cmd = req.cmd;
    if (cmd <= Cmd.GATS) return this.retrieval(req);
    if (cmd === Cmd.FLUSH_ALL) return this.flushAllServers(req);
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

  private retrieval(req: Request): void {
    const n = req.keyCount;
    this.counters[C.CMD_GET]! += n;
    if (req.cmd === Cmd.GAT || req.cmd === Cmd.GATS) this.counters[C.CMD_TOUCH]! += n;
    const values = req.values;
    for (let i = 0; i < n; i++) values.push(null);
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
      const backup = router.backup === -1 ? NONE : this.masterCount + router.backup;
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
        this.backupReads[master]![S.BACKUP_READS]!++;
      }
      let op = this.opFor[target]!;
      if (op === null) {
        op = this.pools.op();
        op.req = req;
        op.role = Role.CLIENT;
        op.retrieval = true;
        this.opFor[target] = op;
        this.touched.push(target);
        const out = conn.outbox;
        out.addAll(CMD_NAME_BYTES[req.cmd]!);
        if (isGat) { out.addAll(SP); out.add(buf, req.argStart, req.argEnd); }
        req.waiting++;
        req.refs++;
        conn.enqueue(op, now);
      }
      op.keyIdx.push(i);
      const out = conn.outbox;
      out.addAll(SP);
      out.add(buf, ks, ke);
      // gat also touches the backup copy, so a failover does not resurrect the old TTL.
      if (isGat && target === master) {
        const shadow = shadowTarget(health, backup);
        if (shadow !== NONE) this.forget(req, shadow, TOUCH, ks, ke, true, now);
      }
    }
    const touched = this.touched;
    for (let t = 0; t < touched.length; t++) {
      const server = touched[t]!;
      this.connFor[server]!.outbox.addAll(wire.CRLF);
      this.opFor[server] = null;
      this.connFor[server] = null;
    }
    touched.length = 0;
  }

  /** The connection a request's op for `server` is built on: one per server per request. */
  private groupConnection(server: number, affinity: number, now: number): BackendConnection | null {
    const held = this.connFor[server]!;
    if (held !== null) return held;
    const conn = this.connection(server, affinity, now);
    this.connFor[server] = conn;
    return conn;
  }

  /** A fire-and-forget op for the backup: "<verb><key>[ <arg>]\r\n". */
  private forget(req: Request, server: number, verb: Buffer, ks: number, ke: number, withArg: boolean, now: number): void {
    const conn = this.connection(server, req.affinity, now);
    if (conn === null) return;
    const op = this.pools.op();
    op.req = req;
    op.role = Role.FORGET;
    op.retrieval = false;
    req.refs++;
    const out = conn.outbox;
    out.addAll(verb);
    out.add(req.buf, ks, ke);
    if (withArg) { out.addAll(SP); out.add(req.buf, req.argStart, req.argEnd); }
    out.addAll(wire.CRLF);
    conn.enqueue(op, now);
  }

  private write(req: Request): void {
    const cmd = req.cmd;
    if (cmd === Cmd.TOUCH) this.counters[C.CMD_TOUCH]!++;
    else if (cmd <= Cmd.CAS) this.counters[C.CMD_SET]!++;
    const buf = req.buf;
    const ks = req.keyStart(0);
    const ke = req.keyEnd(0);
    this.router.route(buf, ks, ke);
    const master = this.router.master;
    const backup = this.router.backup === -1 ? NONE : this.masterCount + this.router.backup;
    req.master = master;
    req.backup = backup;
    const now = performance.now();
    const health = this.health;
    const masterConn = health.isUp(master) ? this.connection(master, req.affinity, now) : null;
    const shadow = shadowTarget(health, backup);
    const backupConn = shadow === NONE ? null : this.connection(shadow, req.affinity, now);
    if (masterConn !== null) {
      this.sendWrite(req, masterConn, Role.CLIENT, now, false);
      req.masterState = SENT;
      if (backupConn !== null) {
        const queue = cmd === Cmd.CAS || this.casQueues.size > 0 ? this.casQueue(req, buf, ks, ke) : undefined;
        if (queue !== undefined) {
          // Held (one reference) until drainCas sends it to the backup.
          queue.push(req);
          req.refs++;
          if (cmd !== Cmd.CAS) req.backupState = SENT;
        } else {
          this.sendWrite(req, backupConn, Role.SHADOW, now, false);
          req.backupState = SENT;
        }
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
  }

  /**
   * The queue a write of this key must wait in for the backup: a cas starts one
   * if there is none; other writes get one only if a cas is already waiting.
   */
  private casQueue(req: Request, buf: Buffer, ks: number, ke: number): Request[] | undefined {
    const key = buf.toString('latin1', ks, ke);
    let queue = this.casQueues.get(key);
    if (queue === undefined && req.cmd === Cmd.CAS) {
      queue = [];
      this.casQueues.set(key, queue);
    }
    if (queue !== undefined) req.casKey = key;
    return queue;
  }

  /** Sends the backup copies that waited behind cas requests the master has now answered. */
  private drainCas(key: string): void {
    const queue = this.casQueues.get(key);
    if (queue === undefined) return;
    const now = performance.now();
    while (queue.length > 0) {
      const r = queue[0]!;
      if (r.cmd === Cmd.CAS && r.casState === CAS_WAITING) return;
      queue.shift();
      r.casKey = null;
      const conn = this.health.isUp(r.backup) ? this.connection(r.backup, r.affinity, now) : null;
      if (r.cmd === Cmd.CAS) {
        if (r.casState === CAS_STORED && conn !== null) this.sendWrite(r, conn, Role.FORGET, now, true);
      } else if (conn !== null) {
        this.sendWrite(r, conn, Role.SHADOW, now, false);
      } else {
        this.shadowFailed(r);
      }
      this.release(r);
    }
    this.casQueues.delete(key);
  }

  private sendWrite(req: Request, conn: BackendConnection, role: number, now: number, casAsSet: boolean): void {
    const op = this.pools.op();
    op.req = req;
    op.role = role;
    op.retrieval = false;
    req.refs++;
    if (role === Role.CLIENT) req.waiting++;
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

  /** Deletes a key on its master and backup, answering nobody (a set too large to store). */
  dropKey(buf: Buffer, ks: number, ke: number, affinity: number): void {
    const req = this.pools.request();
    req.refs = 1;
    req.cmd = Cmd.DELETE;
    req.buf = buf;
    req.affinity = affinity;
    this.router.route(buf, ks, ke);
    const master = this.router.master;
    const backup = this.router.backup === -1 ? NONE : this.masterCount + this.router.backup;
    const now = performance.now();
    if (this.health.isUp(master)) this.forget(req, master, DELETE, ks, ke, false, now);
    if (shadowTarget(this.health, backup) !== NONE) this.forget(req, backup, DELETE, ks, ke, false, now);
    this.release(req);
  }

  private flushAllServers(req: Request): void {
    this.counters[C.CMD_FLUSH]!++;
    const now = performance.now();
    for (let s = 0; s < this.servers.length; s++) {
      if (!this.health.isUp(s)) continue;
      const conn = this.connection(s, req.affinity, now);
      if (conn === null) continue;
      const op = this.pools.op();
      op.req = req;
      op.role = Role.CLIENT;
      op.retrieval = false;
      req.refs++;
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

  // ---- replies in ----

  onValue(op: Op, buf: Buffer, start: number, end: number, keyStart: number, keyEnd: number): void {
    const req = op.req!;
    if (op.role !== Role.CLIENT) return;
    // Values come back in the order the keys were asked, misses skipped.
    const idx = op.keyIdx;
    const rbuf = req.buf;
    const klen = keyEnd - keyStart;
    for (let c = op.cursor; c < idx.length; c++) {
      const i = idx[c]!;
      const ks = req.keyStart(i);
      if (req.keyEnd(i) - ks === klen && buf.compare(rbuf, ks, ks + klen, keyStart, keyEnd) === 0) {
        req.values[i] = buf.subarray(start, end);
        op.cursor = c + 1;
        return;
      }
    }
    // A value for a key not asked: the stream is not what we think it is.
    this.failConnectionOf(op, 'value for a key that was not requested');
  }

  onLine(op: Op, buf: Buffer, start: number, end: number): void {
    const req = op.req!;
    this.health.resetTimeouts(op.server);
    const role = op.role;
    const fromMaster = op.server < this.masterCount;
    this.pools.freeOp(op);
    if (role === Role.FORGET) { this.release(req); return; }
    if (req.cmd <= Cmd.GATS) {
      // END, or an error line that replaces the whole reply
      if (end - start !== 5 || buf[start] !== 0x45) req.reply = buf.subarray(start, end);
      if (--req.waiting === 0) this.complete(req);
      this.release(req);
      return;
    }
    if (req.cmd === Cmd.FLUSH_ALL) {
      if (req.reply === null || req.reply === wire.OK) {
        req.reply = end - start === 4 && buf[start] === 0x4f ? wire.OK : buf.subarray(start, end);
      }
      if (--req.waiting === 0) this.complete(req);
      this.release(req);
      return;
    }
    const line = buf.subarray(start, end);
    if (role === Role.CLIENT) {
      req.waiting--;
      if (fromMaster) {
        req.masterState = ANSWERED;
        req.masterReply = line;
        req.reply = line;
        this.complete(req);
        if (req.cmd === Cmd.CAS && req.casKey !== null) {
          req.casState = line.equals(STORED_LINE) ? CAS_STORED : CAS_REFUSED;
          this.drainCas(req.casKey);
        } else if (fromMaster && req.backupState === ANSWERED) this.compare(req);
      } else {
        // Master down, backup served as primary.
        req.backupState = ANSWERED;
        req.reply = line;
        this.complete(req);
      }
    } else {
      // SHADOW: the backup's answer to a replicated write.
      req.backupState = ANSWERED;
      req.backupReply = line;
      if (req.masterState === ANSWERED) this.compare(req);
      else if (req.masterState === FAILED && !req.done) {
        req.reply = line;
        this.complete(req);
      }
    }
    this.release(req);
  }

  onFailed(op: Op): void {
    const req = op.req!;
    const role = op.role;
    const server = op.server;
    if (role === Role.FORGET) { this.pools.freeOp(op); this.release(req); return; }
    if (op.retrieval) {
      // Retry the op's keys on their backups (if it was a master that failed).
      const keys = op.keyIdx;
      op.keyIdx = [];
      this.pools.freeOp(op);
      if (server < this.masterCount) this.sendKeys(req, keys, true);
      if (--req.waiting === 0) this.complete(req);
      this.release(req);
      return;
    }
    this.pools.freeOp(op);
    if (req.cmd === Cmd.FLUSH_ALL) {
      if (req.reply === null || req.reply === wire.OK) req.reply = wire.SERVER_ERROR_UNAVAILABLE;
      if (--req.waiting === 0) this.complete(req);
      this.release(req);
      return;
    }
    if (role === Role.CLIENT) {
      req.waiting--;
      const fromMaster = server < this.masterCount && req.masterState === SENT;
      if (fromMaster) {
        req.masterState = FAILED;
        if (req.cmd === Cmd.CAS && req.casKey !== null) {
          req.casState = CAS_REFUSED;
          this.drainCas(req.casKey);
        }
        // The backup's reply, when it has or will come, answers the client.
        if (req.backupState === ANSWERED) { req.reply = req.backupReply; this.complete(req); }
        else if (req.backupState !== SENT) { req.reply = wire.SERVER_ERROR_UNAVAILABLE; this.complete(req); }
      } else {
        req.backupState = FAILED;
        req.reply = wire.SERVER_ERROR_UNAVAILABLE;
        this.complete(req);
      }
    } else {
      this.shadowFailed(req);
    }
    this.release(req);
  }

  /** The backup copy of a write was lost; if the master's was too, the client learns it. */
  private shadowFailed(req: Request): void {
    req.backupState = FAILED;
    if (req.masterState === FAILED && !req.done) {
      req.reply = wire.SERVER_ERROR_UNAVAILABLE;
      this.complete(req);
    }
  }

  onConnectionFailed(conn: BackendConnection, failure: number, error: Error | null): void {
    const server = conn.server;
    const name = conn.address.name;
    if (failure === Failure.TIMEOUT) {
      this.counters[C.BACKEND_TIMEOUTS]!++;
      const n = this.health.addTimeout(server);
      if (n >= this.config.failureLimit && this.health.markDown(server)) {
        log.warn('server marked down', { server: name, reason: `${n} consecutive timeouts` });
      }
      return;
    }
    this.counters[C.BACKEND_ERRORS]!++;
    if (failure === Failure.CONNECTION) {
      if (this.health.markDown(server)) log.warn('server marked down', { server: name, reason: error?.message ?? 'connection lost' });
    } else {
      log.warn('backend connection closed after a protocol error', { server: name, reason: error?.message });
    }
  }

  private failConnectionOf(op: Op, why: string): void {
    op.conn?.fail(Failure.PROTOCOL, new Error(why));
  }

  // ---- replication ----

  /** Master and backup both answered a write: a disagreement removes the key from the backup. */
  private compare(req: Request): void {
    const m = req.masterReply!;
    const b = req.backupReply!;
    if (m.length === b.length && m.equals(b)) return;
    this.counters[C.BACKUP_REPAIRS]!++;
    this.forget(req, req.backup, DELETE, req.keyStart(0), req.keyEnd(0), false, performance.now());
  }

  // ---- completion ----

  private complete(req: Request): void {
    if (req.done) return;
    req.done = true;
    if (req.cmd <= Cmd.GATS && req.reply === null) {
      let hits = 0;
      const v = req.values;
      for (let i = 0; i < v.length; i++) if (v[i] !== null) hits++;
      this.counters[C.GET_HITS]! += hits;
      this.counters[C.GET_MISSES]! += req.keyCount - hits;
    }
    req.client?.replyReady();
  }

  /** Drops one reference; the last one returns the request to its pool. */
  release(req: Request): void {
    if (--req.refs === 0) this.pools.freeRequest(req);
  }

  closeAll(): void {
    for (const conns of this.servers) for (const c of conns) c.close();
  }
}

function flushDirty(d: Dispatcher): void {
  d.flushAll();
}
