// Recovery: deleting journaled keys on a returning server.
//
// A server that missed writes (down, or a write to it failed) has their keys in
// this worker's journal (journal.ts). When the main thread recovers it, each
// worker deletes them there, INVALIDATE_BATCH at a time, together with the keys
// the main thread gathered from the other entry proxies; a journal that
// overflowed (or a flush_all the server missed) flushes the server instead.
//
//   invalidate(server) --> deletes, a batch at a time --> all answered --> next batch
//                      --> flush_all (overflowed)       --> onInvalidated(server, ok, deleted)
//   a delete failed --> this worker's keys go back into the journal, not ok

import { performance } from 'node:perf_hooks';
import { Expect } from '../protocol/response-parser.js';
import { KEY_MAX_LENGTH, validKey } from '../protocol/request-rules.js';
import { BASE64_FLAG, DELETE, FLUSH_ALL, MD } from '../protocol/verbs.js';
import * as wire from '../protocol/wire.js';
import type { WorkerContext } from './context.js';
import { Request, Role } from './request.js';

/** Journaled deletes sent to a returning server at a time. */
const INVALIDATE_BATCH = 4096;

/** One returning server's invalidation in progress. */
interface Run {
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

export class Invalidation {
  private readonly runs = new Map<number, Run>();

  constructor(
    private readonly ctx: WorkerContext,
    /** told when an invalidation asked by the main thread is over: whether it worked, and how many keys it deleted */
    private readonly onInvalidated: (server: number, ok: boolean, deleted: number) => void,
  ) {}

  /**
   * Deletes on `server` every key this worker journaled for it and the `extra`
   * keys the main thread gathered from the other entry proxies (or flushes it,
   * if the journal overflowed or `flush` is asked), then reports through
   * onInvalidated. If a delete fails, this worker's keys go back into the journal.
   */
  start(server: number, flush: boolean, extra: readonly string[] = []): void {
    if (this.runs.has(server)) return;
    const ctx = this.ctx;
    const { keys, overflowed } = ctx.journal.take(server);
    const tracker = ctx.pools.request();
    tracker.refs = 1;
    const rest = extra.length === 0 ? keys.values() : chain(keys.values(), extra.values());
    const run: Run = { server, keys, overflowed: overflowed || flush, rest, pending: 0, failed: false, deleted: 0, tracker };
    this.runs.set(server, run);
    if (run.overflowed) {
      const conn = ctx.connection(server, 0, performance.now());
      if (conn === null) { run.failed = true; this.finish(run); return; }
      conn.outbox.addAll(FLUSH_ALL);
      conn.enqueue(ctx.newOp(tracker, Role.INVALIDATE, Expect.LINE), performance.now());
      run.pending = 1;
      return;
    }
    this.batch(run);
  }

  private batch(run: Run): void {
    const ctx = this.ctx;
    const now = performance.now();
    const conn = ctx.connection(run.server, 0, now);
    if (conn === null) { run.failed = true; this.finish(run); return; }
    const out = conn.outbox;
    let n = 0;
    for (let r = run.rest.next(); !r.done; r = n < INVALIDATE_BATCH ? run.rest.next() : { done: true, value: undefined }) {
      const key = Buffer.from(r.value, 'latin1');
      if (validKey(key, 0, key.length)) {
        // A key a text command could carry goes as one.
        out.addAll(DELETE);
        out.addAll(key);
        out.addAll(wire.CRLF);
        conn.enqueue(ctx.newOp(run.tracker, Role.INVALIDATE, Expect.LINE), now);
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
        conn.enqueue(ctx.newOp(run.tracker, Role.INVALIDATE, Expect.META), now);
      }
      n++;
    }
    run.pending = n;
    run.deleted += n;
    if (n === 0) this.finish(run);
  }

  /** A delete (or the flush) of `server`'s invalidation answered: failed for an error reply or a failed op. */
  answered(server: number, failed: boolean): void {
    const run = this.runs.get(server);
    if (run === undefined) return;
    if (failed) run.failed = true;
    if (--run.pending > 0) return;
    if (run.failed || run.overflowed) this.finish(run);
    else this.batch(run);
  }

  private finish(run: Run): void {
    this.runs.delete(run.server);
    if (run.failed) this.ctx.journal.restore(run.server, run.keys, run.overflowed);
    this.ctx.release(run.tracker);
    this.onInvalidated(run.server, !run.failed, run.deleted);
  }
}

function* chain<T>(a: Iterator<T>, b: Iterator<T>): Generator<T> {
  for (let r = a.next(); !r.done; r = a.next()) yield r.value;
  for (let r = b.next(); !r.done; r = b.next()) yield r.value;
}
