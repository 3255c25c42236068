// Minimal structured logging: one JSON line per event on stderr. Nothing on the
// per-request path logs at the default level; debug output is checked once.

let level = 0;

export function setLogLevel(verbose: number): void {
  level = verbose;
}

export function debugEnabled(): boolean {
  return level > 0;
}

function emit(lvl: string, msg: string, fields?: Record<string, unknown>): void {
  const rec = { time: new Date().toISOString(), level: lvl, msg, ...fields };
  process.stderr.write(`${JSON.stringify(rec)}\n`);
}

export const log = {
  info(msg: string, fields?: Record<string, unknown>): void { emit('info', msg, fields); },
  warn(msg: string, fields?: Record<string, unknown>): void { emit('warn', msg, fields); },
  error(msg: string, fields?: Record<string, unknown>): void { emit('error', msg, fields); },
  debug(msg: string, fields?: Record<string, unknown>): void { if (level > 0) emit('debug', msg, fields); },
};
