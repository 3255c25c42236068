// The demo's terminal output: one line a second, narrative lines between them.
// Plain text when the output is not a terminal (or NO_COLOR is set), ANSI colours
// otherwise; widths are computed on the plain text so the columns line up either way.

export interface Colors {
  enabled: boolean;
}

const CODES: Record<string, string> = {
  red: '31', green: '32', yellow: '33', blue: '34', magenta: '35', cyan: '36', dim: '2', bold: '1',
};

export function paint(c: Colors, color: keyof typeof CODES | string, text: string): string {
  const code = CODES[color];
  return c.enabled && code !== undefined ? `\x1b[${code}m${text}\x1b[0m` : text;
}

/** Pads to width on the plain text, then paints. */
function cell(c: Colors, text: string, width: number, color: string | null, left = false): string {
  const padded = left ? text.padEnd(width) : text.padStart(width);
  return color === null ? padded : paint(c, color, padded);
}

const STATE_SHORT: Record<string, string> = { up: 'up', down: 'DOWN', recovering: 'recov', warming: 'warm' };
const STATE_COLOR: Record<string, string> = { up: 'green', down: 'red', recovering: 'yellow', warming: 'cyan' };

export interface MasterColumn {
  /** the state each entry reports, in entry order ('?' when it did not answer) */
  states: string[];
  requestsPerSecond: number;
}

export interface Row {
  second: number;
  ops: number;
  gets: number;
  hits: number;
  errors: number;
  masters: MasterColumn[];
  backupRequests: number;
  failoverReads: number;
  warmFills: number;
}

const MASTER_WIDTH = 12;

export function header(c: Colors, masters: number): string {
  let h1 = ' time  ops/s    hit%  err |';
  let h2 = '                          |';
  for (let i = 0; i < masters; i++) {
    h1 += ` ${`master ${i + 1}`.padEnd(MASTER_WIDTH - 1)}`;
    h2 += ` ${'state'.padEnd(6)}${'rq/s'.padStart(4)} `;
  }
  h1 += '| backup relay';
  h2 += '| req/s  failover  fills';
  return paint(c, 'bold', h1) + '\n' + paint(c, 'dim', h2);
}

export function row(c: Colors, r: Row): string {
  const hitPct = r.gets === 0 ? '-' : `${((100 * r.hits) / r.gets).toFixed(1)}%`;
  const hitColor = r.gets === 0 ? null : r.hits === r.gets ? 'green' : r.hits / r.gets >= 0.95 ? 'yellow' : 'red';
  let s = `${String(r.second).padStart(4)}s ${String(r.ops).padStart(6)} ${cell(c, hitPct, 7, hitColor)} ` +
    `${cell(c, String(r.errors), 4, r.errors > 0 ? 'red' : null)} |`;
  for (const m of r.masters) {
    const first = m.states[0] ?? '?';
    const agree = m.states.every((x) => x === first);
    // The entries see a change a moment apart: '*' marks a second where they differ.
    const state = (STATE_SHORT[first] ?? first) + (agree ? '' : '*');
    s += ` ${cell(c, state, 6, STATE_COLOR[first] ?? null, true)}${String(Math.round(m.requestsPerSecond)).padStart(4)} `;
  }
  s += `| ${String(Math.round(r.backupRequests)).padStart(5)}` +
    `  ${cell(c, String(Math.round(r.failoverReads)), 8, r.failoverReads > 0 ? 'magenta' : null)}` +
    `  ${cell(c, String(Math.round(r.warmFills)), 5, r.warmFills > 0 ? 'cyan' : null)}`;
  return s;
}

export function narrative(c: Colors, atSeconds: number, text: string, color = 'yellow'): string {
  return paint(c, color, `  >> ${atSeconds.toFixed(1).padStart(5)}s  ${text}`);
}

export const LEGEND = [
  'Columns: ops/s and hit% are what the clients saw (hit% = gets that found their key; every key was',
  'set before the load began, so anything under 100% is a lost cache entry). master N: its state as the',
  'entries see it (up, DOWN, recov = no reads until values that may be stale are cleared on it, warm =',
  'misses filled from the backup) and the requests/s the entries sent it; a master added during the run',
  'has a column once the entries switch to it. backup relay: requests/s the entries sent to the backup',
  'mcrelay (a copy of every set, plus reads), of which "failover" are reads of keys whose master is DOWN',
  'or recov, and "fills" the keys copied from the backup into a warming master.',
];
