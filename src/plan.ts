// mcrelay plan --config NEW.yml [--current OLD.yml | --admin HOST:PORT]
//              [--sample N] [--json]
// What a change of the server pool (masters added, removed or re-ordered, the
// backups changed, another distribution) would cost before it is applied: how
// many keys each server would gain and lose.
//
//   current placement: --current OLD.yml, or GET /config of a running mcrelay's
//                      admin listener (default as mcrelay ctl's)
//   new placement:     --config NEW.yml
//   keys: lru_crawler metadump all (backend/metadump.ts) of the servers that
//         hold a copy of every key: the current backups, or without backups
//         the current masters, all at once
//     --> each key routed by both placements --> per server: held now, gained, lost
//
// A key a source holds that the current placement puts elsewhere (left over
// from an earlier pool) is not counted, nor the proxies' own mcrelay:... keys.
// --sample N stops after N keys per source and scales what it read by the
// source's curr_items. Exit 0 on success, 1 when a server or the admin listener
// cannot be read (what was read is still shown), 2 on bad usage.

import { availableParallelism } from 'node:os';
import { loadConfig } from './config/argv.js';
import { parseServerAddress, serverKey, type Config, type Distribution, type ServerAddress } from './config/config.js';
import { isProxyKey, metadump } from './backend/metadump.js';
import { addBackendAuth } from './backend/auth.js';
import { endsWithEnd, exchange } from './backend/server-request.js';
import { Router } from './routing/router.js';
import { ADMIN_ACCESS_USAGE, adminRequest, DEFAULT_ADMIN, noAdminAccess, parseAdmin, takeAdminAccess, type AdminAccess } from './admin-client.js';

const USAGE = `usage: mcrelay plan --config NEW.yml [--current OLD.yml | --admin HOST:PORT] [--sample N] [--json] ${ADMIN_ACCESS_USAGE}`;
/** A source that sends nothing for this long (a hung server) is given up. */
const IDLE_MS = 10_000;

/** Where keys live: a distribution over two server lists. */
export interface Placement {
  readonly distribution: Distribution;
  readonly masters: readonly ServerAddress[];
  readonly backups: readonly ServerAddress[];
  /** where it was read: "file OLD.yml", "admin listener HOST:PORT" */
  readonly from: string;
  /** a file's pools' password files (backend_auth_file...), for servers the admin listener names */
  readonly auth?: Pick<Config, 'mastersAuth' | 'backupsAuth'>;
}

/** Keys a server (or a pool) holds, gains and loses. */
export interface Figures {
  /** keys it holds by the current placement */
  readonly now: number;
  readonly gain: number;
  readonly lose: number;
  /** now + gain - lose: what it holds once the new placement is applied */
  readonly after: number;
}

/** One server's row in a pool's table. */
export interface ServerMove extends Figures {
  readonly server: string;
  /** kept: in both placements' pool; new: only in the new one; removed: only in the current one */
  readonly status: 'kept' | 'new' | 'removed';
}

export interface PoolMoves {
  readonly servers: readonly ServerMove[];
  /** the servers' figures added up (before rounding, with --sample) */
  readonly total: Figures;
  readonly keys: number;
  /** keys whose server in this pool changes */
  readonly moved: number;
  readonly fraction: number;
}

export interface SourceRead {
  readonly server: string;
  /** keys listed by its dump (all of them, or up to --sample) */
  readonly read: number;
  /** of those, keys the current placement puts on it: the ones counted */
  readonly counted: number;
  readonly proxyKeys: number;
  /** keys it holds that the current placement puts elsewhere */
  readonly strays: number;
  /** its curr_items, asked only with --sample */
  readonly items: number | null;
  /** read to the end of its dump */
  readonly complete: boolean;
  /** why it could not be read to the end (or to --sample), or null */
  readonly error: string | null;
}

export interface Plan {
  readonly current: { readonly from: string; readonly distribution: Distribution; readonly masters: string[]; readonly backups: string[] };
  readonly new: { readonly from: string; readonly distribution: Distribution; readonly masters: string[]; readonly backups: string[] };
  readonly keysFrom: 'backups' | 'masters';
  readonly sample: number | null;
  /** every figure is a count, not scaled from a sample */
  readonly exact: boolean;
  readonly sources: readonly SourceRead[];
  readonly masters: PoolMoves;
  /** null when neither placement has backups */
  readonly backups: PoolMoves | null;
  readonly unreadable: string[];
}

interface Args { config: string; current: string | null; admin: string; sample: number | null; json: boolean; access: AdminAccess }

export async function plan(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv);
  if (typeof args === 'string') {
    if (args === 'help') { process.stdout.write(`${USAGE}\n`); return 0; }
    process.stderr.write(`mcrelay plan: ${args}\n`);
    return 2;
  }
  const next = fromFile(args.config, '--config');
  if (typeof next === 'string') { process.stderr.write(`mcrelay plan: ${next}\n`); return 2; }
  let current: Placement;
  if (args.current !== null) {
    const c = fromFile(args.current, '--current');
    if (typeof c === 'string') { process.stderr.write(`mcrelay plan: ${c}\n`); return 2; }
    current = c;
  } else {
    const c = await fromAdmin(args.admin, args.access);
    if (typeof c === 'string') { process.stderr.write(`mcrelay plan: ${c}\n`); return 1; }
    // /config names the servers only: a server the new file also lists is reached
    // as that file says (its pool's TLS); one it removes, as its pool's first server there.
    current = { ...c, masters: withTlsOf(c.masters, next.masters), backups: withTlsOf(c.backups, next.backups) };
    // ... and authenticates to as its pool there does; the new file's own servers keep theirs.
    addBackendAuth({ masters: current.masters.filter((s) => !next.masters.some((n) => serverKey(n) === serverKey(s))),
      backups: current.backups.filter((s) => !next.backups.some((n) => serverKey(n) === serverKey(s))), ...next.auth! });
  }
  const result = await measure(current, next, args.sample);
  for (const s of result.sources) {
    if (s.error !== null) process.stderr.write(`mcrelay plan: cannot read ${s.server} (${s.error}): its keys are not counted\n`);
  }
  const readAny = result.sources.some((s) => s.error === null);
  if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else if (readAny) process.stdout.write(render(result));
  return result.unreadable.length > 0 ? 1 : 0;
}

function parseArgs(argv: readonly string[]): Args | string {
  let config: string | null = null;
  let current: string | null = null;
  let admin: string | null = null;
  let sample: number | null = null;
  let json = false;
  const access = noAdminAccess();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h' || a === '--help') return 'help';
    if (a === '--json') { json = true; continue; }
    const took = takeAdminAccess(argv, i, access);
    if (typeof took === 'string') return `${took} (${USAGE})`;
    if (took !== null) { i = took; continue; }
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    if (name !== '--config' && name !== '--current' && name !== '--admin' && name !== '--sample') {
      return a.startsWith('-') ? `unknown option '${a}' (${USAGE})` : `unexpected argument '${a}' (${USAGE})`;
    }
    let value: string;
    if (name !== a) value = a.slice(eq + 1);
    else if (i + 1 < argv.length) value = argv[++i]!;
    else return `${name} wants a value (${USAGE})`;
    if (name === '--config') config = value;
    else if (name === '--current') current = value;
    else if (name === '--admin') admin = value;
    else {
      if (!/^[1-9]\d{0,8}$/.test(value)) return `invalid value '${value}' for --sample: expected keys per server, 1..999999999`;
      sample = Number(value);
    }
  }
  if (config === null) return `--config NEW.yml is required (${USAGE})`;
  if (current !== null && admin !== null) return '--current and --admin both name the current placement: give one';
  admin ??= DEFAULT_ADMIN;
  if (parseAdmin(admin) === null) return `--admin wants HOST:PORT, got '${admin}'`;
  return { config, current, admin, sample, json, access };
}

/** A config file as mcrelay reads it; or the problem, naming the file. */
function fromFile(path: string, flag: string): Placement | string {
  const r = loadConfig(['--config', path], { cpus: availableParallelism() });
  if ('error' in r) {
    const message = r.error.replace(/^mcrelay: /, '');
    return message.startsWith(path) ? `${flag} ${message}` : `${flag} ${path}: ${message}`;
  }
  addBackendAuth(r.config);
  const auth = { mastersAuth: r.config.mastersAuth, backupsAuth: r.config.backupsAuth };
  return { distribution: r.config.distribution, masters: r.config.masters, backups: r.config.backups, from: `file ${path}`, auth };
}

/** The servers with the TLS settings the same server, else the pool, has in `from`. */
function withTlsOf(servers: readonly ServerAddress[], from: readonly ServerAddress[]): ServerAddress[] {
  const pool = from.find((s) => s.tls !== undefined)?.tls;
  return servers.map((s) => {
    const tls = from.find((f) => serverKey(f) === serverKey(s))?.tls ?? (s.path === null ? pool : undefined);
    return tls === undefined ? s : { ...s, tls };
  });
}

/** What a running mcrelay serves now, from its admin listener's GET /config. */
async function fromAdmin(admin: string, access: AdminAccess): Promise<Placement | string> {
  const where = `admin listener ${admin}`;
  let answer: { status: number; body: string };
  try {
    answer = await adminRequest(parseAdmin(admin)!, 'GET', '/config', access);
  } catch (err) {
    return `${where}: ${(err as Error).message} (or name the current config with --current OLD.yml)`;
  }
  if (answer.status === 404) return `${where} has no /config (an mcrelay older than mcrelay plan?): name the current config with --current OLD.yml`;
  if (answer.status === 401) return `${where} wants its token: --admin-token-file FILE`;
  if (answer.status !== 200) return `${where} answered ${answer.status} to GET /config`;
  let body: { masters?: unknown; backups?: unknown; distribution?: unknown };
  try { body = JSON.parse(answer.body) as typeof body; } catch { return `${where}: GET /config is not JSON`; }
  const names = (v: unknown): ServerAddress[] | null => {
    if (!Array.isArray(v)) return null;
    const out = v.map((n) => (typeof n === 'string' ? parseServerAddress(n) : 'not a string'));
    return out.every((a): a is ServerAddress => typeof a !== 'string') ? out : null;
  };
  const masters = names(body.masters);
  const backups = names(body.backups);
  const d = body.distribution;
  if (masters === null || masters.length === 0 || backups === null || (d !== 'jump' && d !== 'ketama' && d !== 'magent')) {
    return `${where}: GET /config is not {masters, backups, distribution}`;
  }
  return { distribution: d, masters, backups, from: where };
}

/** One pool's rows: the new placement's servers in order, then those it removes. */
class Pool {
  readonly rows: Array<{ server: string; status: ServerMove['status'] }> = [];
  private readonly index = new Map<string, number>();

  constructor(current: readonly ServerAddress[], next: readonly ServerAddress[]) {
    const before = new Set(current.map(serverKey));
    const after = new Set(next.map(serverKey));
    for (const s of next) this.add(s, before.has(serverKey(s)) ? 'kept' : 'new');
    for (const s of current) if (!after.has(serverKey(s))) this.add(s, 'removed');
  }

  private add(s: ServerAddress, status: ServerMove['status']): void {
    if (this.index.has(serverKey(s))) return;
    this.index.set(serverKey(s), this.rows.length);
    this.rows.push({ server: s.name, status });
  }

  row(s: ServerAddress): number {
    return this.index.get(serverKey(s))!;
  }
}

const NOW = 0;
const GAIN = 1;
const LOSE = 2;

/** Reads the keys and routes each by both placements. */
export async function measure(current: Placement, next: Placement, sample: number | null): Promise<Plan> {
  const before = new Router(current.distribution, current.masters.map((s) => s.name), current.backups.map((s) => s.name));
  const after = new Router(next.distribution, next.masters.map((s) => s.name), next.backups.map((s) => s.name));
  const masterPool = new Pool(current.masters, next.masters);
  const withBackups = current.backups.length > 0 || next.backups.length > 0;
  const backupPool = withBackups ? new Pool(current.backups, next.backups) : null;
  const fromBackups = current.backups.length > 0;
  const sources = fromBackups ? current.backups : current.masters;
  // Per pool: NOW, GAIN, LOSE per row, then in the last slot the keys that move; summed over the sources, each scaled.
  const masterTotal = new Float64Array(masterPool.rows.length * 3 + 1);
  const backupTotal = new Float64Array((backupPool?.rows.length ?? 0) * 3 + 1);
  let keys = 0;
  let exact = true;

  const tally = (t: Float64Array, pool: Pool, was: ServerAddress | undefined, will: ServerAddress | undefined): void => {
    const from = was === undefined ? -1 : pool.row(was);
    const to = will === undefined ? -1 : pool.row(will);
    if (from >= 0) t[from * 3 + NOW]!++;
    if (from === to) return;
    if (from >= 0) t[from * 3 + LOSE]!++;
    if (to >= 0) t[to * 3 + GAIN]!++;
    t[t.length - 1]!++;
  };

  const read = await Promise.all(sources.map(async (source, i): Promise<SourceRead> => {
    let items: number | null = null;
    if (sample !== null) {
      const stats = await exchange(source, 'stats\r\n', IDLE_MS, endsWithEnd);
      const m = /^STAT curr_items (\d+)\r$/m.exec(stats.text ?? '');
      items = m === null ? null : Number(m[1]);
    }
    const mt = new Float64Array(masterTotal.length);
    const bt = new Float64Array(backupTotal.length);
    let n = 0;
    let counted = 0;
    let proxyKeys = 0;
    let strays = 0;
    const { end, detail } = await metadump(source, (key) => {
      n++;
      if (isProxyKey(key)) proxyKeys++;
      else {
        before.route(key, 0, key.length);
        if ((fromBackups ? before.backup : before.master) !== i) strays++;
        else {
          counted++;
          after.route(key, 0, key.length);
          tally(mt, masterPool, current.masters[before.master], next.masters[after.master]);
          if (backupPool !== null) tally(bt, backupPool, current.backups[before.backup], next.backups[after.backup]);
        }
      }
      return sample === null || n < sample;
    }, { idleMs: IDLE_MS });
    const ok = end === 'done' || end === 'stopped';
    if (ok) {
      // Stopped at --sample: what was read stands for all the server holds.
      const scale = end === 'stopped' && items !== null && items > n ? items / n : 1;
      if (end === 'stopped') exact = false;
      for (let j = 0; j < mt.length; j++) masterTotal[j]! += mt[j]! * scale;
      for (let j = 0; j < bt.length; j++) backupTotal[j]! += bt[j]! * scale;
      keys += counted * scale;
    }
    const error = ok ? null : end === 'unavailable' ? `lru_crawler metadump refused: ${detail}` : detail;
    return { server: source.name, read: n, counted, proxyKeys, strays, items, complete: end === 'done', error };
  }));

  const moves = (pool: Pool, t: Float64Array): PoolMoves => {
    const figures = (at: (field: number) => number): Figures => {
      const [now, gain, lose] = [at(NOW), at(GAIN), at(LOSE)];
      return { now: Math.round(now), gain: Math.round(gain), lose: Math.round(lose), after: Math.round(now + gain - lose) };
    };
    const servers = pool.rows.map((r, j) => ({ server: r.server, status: r.status, ...figures((f) => t[j * 3 + f]!) }));
    const total = figures((f) => pool.rows.reduce((n, _, j) => n + t[j * 3 + f]!, 0));
    const moved = t[t.length - 1]!;
    return { servers, total, keys: Math.round(keys), moved: Math.round(moved), fraction: keys === 0 ? 0 : moved / keys };
  };
  const described = (p: Placement): Plan['current'] => ({
    from: p.from, distribution: p.distribution, masters: p.masters.map((s) => s.name), backups: p.backups.map((s) => s.name),
  });
  return {
    current: described(current),
    new: described(next),
    keysFrom: fromBackups ? 'backups' : 'masters',
    sample,
    exact,
    sources: read,
    masters: moves(masterPool, masterTotal),
    backups: backupPool === null ? null : moves(backupPool, backupTotal),
    unreadable: read.filter((s) => s.error !== null).map((s) => s.server),
  };
}

/** The plan as a person reads it. */
export function render(p: Plan): string {
  const out: string[] = [];
  const pools = (d: Plan['current']): string => `${d.masters.length} master${d.masters.length === 1 ? '' : 's'}, ${d.backups.length} backup${d.backups.length === 1 ? '' : 's'}, ${d.distribution}`;
  out.push(`current: ${pools(p.current)} (${p.current.from})`);
  out.push(`new:     ${pools(p.new)} (${p.new.from})`);
  const read = p.sources.filter((s) => s.error === null);
  const readKeys = read.reduce((n, s) => n + s.counted, 0);
  const n = p.sources.length;
  const pool = n === 1 ? p.keysFrom.slice(0, -1) : `${n} ${p.keysFrom}`;
  const what = read.length === n ? `the current ${pool}` : `${read.length} of the current ${pool}`;
  out.push(p.exact
    ? `keys:    ${readKeys} counted on ${what}: a full count`
    : `keys:    ${readKeys} counted on ${what}, up to ${p.sample} per server: scaled to about ${p.masters.keys}, an estimate`);
  const skipped = read.reduce((n, s) => n + s.strays, 0);
  if (skipped > 0) out.push(`         ${skipped} keys read sit where the current placement does not put them (left from an earlier pool): not counted`);
  if (p.unreadable.length > 0) out.push(`not read: ${p.sources.filter((s) => s.error !== null).map((s) => `${s.server} (${s.error})`).join(', ')}; only what was read is counted`);
  const table = (title: string, m: PoolMoves): void => {
    const width = Math.max(title.length, 5, ...m.servers.map((s) => s.server.length));
    const num = (n: number): string => String(n).padStart(9);
    out.push('');
    out.push(`${title.padEnd(width)}${['now', 'gain', 'lose', 'after'].map((h) => h.padStart(9)).join('')}`);
    const row = (name: string, f: Figures, note: string): string => `${name.padEnd(width)}${num(f.now)}${num(f.gain)}${num(f.lose)}${num(f.after)}${note}`;
    for (const s of m.servers) out.push(row(s.server, s, s.status === 'kept' ? '' : `  ${s.status}`));
    out.push(row('total', m.total, ''));
  };
  table('masters', p.masters);
  if (p.backups !== null) table('backups', p.backups);
  out.push('');
  const about = p.exact ? '' : 'about ';
  const share = (m: PoolMoves): string => `${about}${m.moved} (${(m.fraction * 100).toFixed(1)}%)`;
  out.push(`${about}${p.masters.keys} keys: ${share(p.masters)} move to another master${p.backups === null ? '' : `, ${share(p.backups)} to another backup`}`);
  return `${out.join('\n')}\n`;
}
