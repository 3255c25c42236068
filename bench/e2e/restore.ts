// The restore line of the bench (issue 16): how fast a returning master gets
// its keys back from the backup, and what the restore costs the clients.
//
//   memcached master + backup, mcrelay -s master -b backup (1 worker)
//   fill 100,000 keys through mcrelay -> headline load 5 s (before)
//   kill -9 the master, start it again empty on its port
//   headline load in 2 s runs while the restore runs (during)
//   -> keys/s restored (restore_keys_copied / restore_seconds), during / before
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseLoadTool } from './load.js';
import { exchange, installHooks, startProcess, stopProcess, waitForReply } from './processes.js';
import { fillArgs, findScenario, HEADLINE, loadArgs } from './scenarios.js';
import { memcachedCommand, startMcrelay, startMemcached } from './targets.js';

export interface RestoreResult {
  loadTool: string;
  keysCopied: number;
  seconds: number;
  keysPerSecond: number;
  opsBefore: number;
  opsDuring: number;
  /** opsDuring / opsBefore */
  share: number;
}

/** mcrelay's `stats servers`, whole (up to its END): "host:port:field" -> value. */
export async function serverFigures(port: number): Promise<Map<string, string>> {
  const text = await exchange(port, 'stats servers\r\n', 3000, (got) => got.endsWith('END\r\n'));
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^STAT (\S+) (\S+)\r$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

async function figure(port: number, server: string, field: string): Promise<string | undefined> {
  return (await serverFigures(port)).get(`${server}:${field}`);
}

export async function restoreBench(log: (line: string) => void): Promise<RestoreResult> {
  installHooks();
  const logDir = mkdtempSync(join(tmpdir(), 'mcrelay-bench-restore-'));
  const tool = chooseLoadTool();
  const headline = findScenario(HEADLINE);
  const started: Array<{ proc: Parameters<typeof stopProcess>[0] }> = [];
  try {
    const master = await startMemcached('memcached-master', logDir);
    const backup = await startMemcached('memcached-backup', logDir);
    started.push(master, backup);
    const relay = await startMcrelay('mcrelay-w1-backup', master.port, backup.port, 1, logDir);
    started.push(relay);
    const addr = `127.0.0.1:${master.port}`;
    await tool.run(fillArgs(headline.dataSize, relay.port), logDir);
    const before = await tool.run(loadArgs(headline, relay.port, 5), logDir);
    log(`restore: load before ${Math.round(before.opsPerSec)} ops/s`);

    await stopProcess(master.proc, 0);
    const args = ['-l', '127.0.0.1', '-p', String(master.port), '-U', '0', '-t', '1', '-m', '1024', '-c', '4096'];
    if (process.getuid?.() === 0) args.push('-u', 'root');
    const again = { proc: startProcess('memcached-master-again', memcachedCommand(), args, logDir) };
    started.push(again);
    await waitForReply(master.port, 'version\r\n', 'VERSION', 5000, again.proc);
    const t0 = Date.now();
    while ((await figure(relay.port, addr, 'restore_state')) !== 'running' && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 50));

    let ops = 0;
    let ms = 0;
    for (let i = 0; i < 60 && (await figure(relay.port, addr, 'restore_state')) === 'running'; i++) {
      const s = await tool.run(loadArgs(headline, relay.port, 2), logDir);
      ops += s.opsPerSec * 2;
      ms += 2000;
    }
    const keysCopied = Number(await figure(relay.port, addr, 'restore_keys_copied'));
    const seconds = Number(await figure(relay.port, addr, 'restore_seconds'));
    const opsDuring = ms > 0 ? ops / (ms / 1000) : NaN;
    const r: RestoreResult = {
      loadTool: tool.name, keysCopied, seconds, keysPerSecond: keysCopied / seconds,
      opsBefore: before.opsPerSec, opsDuring, share: opsDuring / before.opsPerSec,
    };
    log(`restore: ${keysCopied} keys in ${seconds.toFixed(1)} s = ${Math.round(r.keysPerSecond)} keys/s; ` +
      `load during it ${Math.round(opsDuring)} ops/s = ${(100 * r.share).toFixed(0)} % of before (${tool.name})`);
    return r;
  } finally {
    for (const s of started.reverse()) await stopProcess(s.proc, 0).catch(() => {});
    rmSync(logDir, { recursive: true, force: true });
  }
}
