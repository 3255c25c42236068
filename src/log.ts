// Structured logs: pino JSON lines on stderr, one per event:
//   {"level":"warn","time":"2025-01-01T00:00:00.000Z","pid":1,"hostname":"h","msg":"server marked down","server":"a:1"}
// Nothing on the per-request path logs at the default level (info); -v turns
// debug on, and callers check debugEnabled() once rather than building fields
// for a line that would be dropped.
//
// Every thread (main and workers) has its own logger over a synchronous
// destination on fd 2: no transport thread, and a line is written whole before
// the call returns, so lines of different threads do not interleave and nothing
// is lost when a worker exits.

import pino from 'pino';

const logger = pino({
  level: 'info',
  // The level as its name and the time as ISO 8601: readable as they are, and
  // what log shippers parse without configuration.
  formatters: { level: (label) => ({ level: label }) },
  timestamp: pino.stdTimeFunctions.isoTime,
}, pino.destination({ fd: 2, sync: true }));

let debugOn = false;

/** verbose: the number of -v flags; any at all turns debug lines on. */
export function setLogLevel(verbose: number): void {
  debugOn = verbose > 0;
  logger.level = debugOn ? 'debug' : 'info';
}

export function debugEnabled(): boolean {
  return debugOn;
}

type Fields = Record<string, unknown>;

export const log = {
  info(msg: string, fields?: Fields): void { logger.info(fields ?? {}, msg); },
  warn(msg: string, fields?: Fields): void { logger.warn(fields ?? {}, msg); },
  error(msg: string, fields?: Fields): void { logger.error(fields ?? {}, msg); },
  debug(msg: string, fields?: Fields): void { if (debugOn) logger.debug(fields ?? {}, msg); },
};
