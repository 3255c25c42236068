// Structured logs: JSON lines on stderr, one per event, in pino's layout:
//   {"level":"warn","time":"2025-01-01T00:00:00.000Z","pid":1,"hostname":"h","server":"a:1","msg":"server marked down"}
// Nothing on the per-request path logs at the default level (info); -v turns
// debug on, and callers check debugEnabled() once rather than building fields
// for a line that would be dropped.
//
// Every thread (main and workers) writes its own lines with one synchronous
// write to fd 2: a line is written whole before the call returns, so lines of
// different threads do not interleave and nothing is lost when a worker exits.
// This was pino over a synchronous destination; pino and its dependencies cost
// about 3 MB of RSS in each thread (docs/decisions/memory.md), and the proxy
// logs a few dozen lines in a day, so the line is built here.

import fs from 'node:fs';
import os from 'node:os';

let debugOn = false;

/** verbose: the number of -v flags; any at all turns debug lines on. */
export function setLogLevel(verbose: number): void {
  debugOn = verbose > 0;
}

export function debugEnabled(): boolean {
  return debugOn;
}

type Fields = Record<string, unknown>;

/** "pid" and "hostname", as every line has them */
const ORIGIN = `"pid":${process.pid},"hostname":${JSON.stringify(os.hostname())}`;

/** The JSON line for one event; fields keep their order, undefined ones are left out. */
export function formatLine(level: string, msg: string, fields: Fields | undefined, time: Date): string {
  let line = `{"level":"${level}","time":"${time.toISOString()}",${ORIGIN}`;
  if (fields !== undefined) {
    for (const key of Object.keys(fields)) {
      const text = JSON.stringify(fields[key]);
      if (text !== undefined) line += `,${JSON.stringify(key)}:${text}`;
    }
  }
  return `${line},"msg":${JSON.stringify(msg)}}\n`;
}

function write(level: string, msg: string, fields: Fields | undefined): void {
  const bytes = Buffer.from(formatLine(level, msg, fields, new Date()), 'utf8');
  let off = 0;
  let waits = 0;
  while (off < bytes.length) {
    try {
      off += fs.writeSync(2, bytes, off);
    } catch (err) {
      // stderr may be a non-blocking pipe whose reader is behind: wait a little
      // (at most a second in all), as a synchronous writer must.
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || ++waits > 1000) return;
      Atomics.wait(PAUSE, 0, 0, 1);
    }
  }
}

const PAUSE = new Int32Array(new SharedArrayBuffer(4));

export const log = {
  info(msg: string, fields?: Fields): void { write('info', msg, fields); },
  warn(msg: string, fields?: Fields): void { write('warn', msg, fields); },
  error(msg: string, fields?: Fields): void { write('error', msg, fields); },
  debug(msg: string, fields?: Fields): void { if (debugOn) write('debug', msg, fields); },
};
