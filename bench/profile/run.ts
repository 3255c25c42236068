// npm run profile: one end-to-end scenario against mcrelay --workers 1 running
// under the V8 CPU profiler, rendered as a flame graph SVG into flamegraphs/.
//
//   memcached <- mcrelay (node --cpu-prof: one .cpuprofile per thread) <- load
//   stop mcrelay -> busiest thread's profile -> tree -> flamegraph package -> SVG
//
//   node dist/bench/profile/run.js [--scenario NAME] [--seconds N] [--workers N]
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import flamegraph from 'flamegraph';
import { chooseLoadTool, loadgen } from '../e2e/load.js';
import { atInterrupt, installHooks, killAllNow, stopProcess, type Started } from '../e2e/processes.js';
import { fillArgs, findScenario, HEADLINE, loadArgs } from '../e2e/scenarios.js';
import { startMcrelay, startMemcached } from '../e2e/targets.js';
import { commitId, repoRoot } from '../environment.js';
import { textTable } from '../table.js';
import { busy, toTree, topSelfTime, type CpuProfile } from './cpuprofile.js';

const MAX_SVG_BYTES = 1_000_000;

interface Args { scenario: string; seconds: number; workers: number }

function parse(argv: readonly string[]): Args {
  const a: Args = { scenario: HEADLINE, seconds: 10, workers: 1 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--scenario': a.scenario = value(); break;
      case '--seconds': a.seconds = Number(value()); break;
      case '--workers': a.workers = Number(value()); break;
      case '-h': case '--help':
        process.stdout.write('usage: npm run profile -- [--scenario NAME] [--seconds N (10)] [--workers N (1)]\n');
        process.exit(0);
        break;
      default: throw new Error(`unknown option '${flag}'`);
    }
  }
  if (!(a.seconds >= 1) || !Number.isInteger(a.workers) || a.workers < 1) throw new Error('--seconds and --workers must be >= 1');
  return a;
}

/**
 * Two fixes to the package's template output: its mouse handlers carry a bare
 * `&&`, which is not well-formed XML (browsers refuse the file), and its title
 * line is commented out.
 */
function wellFormed(svg: string): string {
  return svg
    .replace(/ && /g, ' &amp;&amp; ')
    .replace(/<!--(<text text-anchor="middle"[^]*?<\/text>)-->/, '$1');
}

/** Renders with growing minimum frame width until the SVG is small enough. */
function render(profile: CpuProfile, root: string, title: string): { svg: string; minwidth: number } {
  const tree = toTree(profile, root);
  let minwidth = 0.5;
  for (;;) {
    const svg = wellFormed(flamegraph.fromCpuProfile({ head: tree }, {
      minwidth, removenarrows: true, countname: 'µs', nametype: 'Function', titletext: title, imagewidth: 1600,
    }));
    if (Buffer.byteLength(svg) < MAX_SVG_BYTES || minwidth > 16) return { svg, minwidth };
    minwidth *= 2;
  }
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const scenario = findScenario(a.scenario);
  const root = repoRoot().replace(/\/$/, '');
  const commit = commitId();
  const date = new Date().toISOString();
  const tool = chooseLoadTool();
  const logDir = mkdtempSync(join(tmpdir(), 'mcrelay-profile-'));
  const profDir = join(logDir, 'cpuprofiles');
  mkdirSync(profDir);
  installHooks();
  const undo = atInterrupt(() => rmSync(logDir, { recursive: true, force: true }));
  let mcrelay: Started | null = null;
  let memcached: Started | null = null;
  try {
    const mc = await startMemcached('memcached-master', logDir);
    memcached = mc.proc;
    const relay = await startMcrelay('mcrelay-profiled', mc.port, null, a.workers, logDir, ['--cpu-prof', '--cpu-prof-dir', profDir]);
    mcrelay = relay.proc;
    await loadgen.run(fillArgs(scenario.dataSize, mc.port), logDir);
    process.stdout.write(`profiling mcrelay --workers ${a.workers}: ${scenario.name} (${scenario.description}), ${a.seconds} s, load from ${tool.name}\n`);
    const load = await tool.run(loadArgs(scenario, relay.port, a.seconds), logDir);
    process.stdout.write(`${Math.round(load.opsPerSec)} ops/s, p50 ${load.p50} ms, p99 ${load.p99} ms under the profiler\n`);
    // SIGTERM: mcrelay stops its workers and exits, and each thread writes its profile.
    await stopProcess(mcrelay, 20_000);
    mcrelay = null;

    const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
    if (files.length === 0) throw new Error(`mcrelay wrote no .cpuprofile into ${profDir}`);
    const profiles = files.map((f) => {
      const profile = JSON.parse(readFileSync(join(profDir, f), 'utf8')) as CpuProfile;
      return { file: f, profile, busy: busy(profile) };
    });
    profiles.sort((x, y) => y.busy.busyMicros - x.busy.busyMicros);
    for (const p of profiles) {
      process.stdout.write(`  ${p.file}: busy ${(p.busy.busyMicros / 1e6).toFixed(2)} s of ${(p.busy.totalMicros / 1e6).toFixed(2)} s\n`);
    }
    const chosen = profiles[0]!;
    // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: thread 0 is the main thread.
    const threadId = chosen.file.split('.')[4] ?? '?';
    const thread = threadId === '0' ? 'main thread' : `worker thread ${threadId}`;
    const busyPct = (100 * chosen.busy.busyMicros) / chosen.busy.totalMicros;

    const outDir = join(root, 'flamegraphs');
    mkdirSync(outDir, { recursive: true });
    const base = `mcrelay-w${a.workers}-${scenario.name}-${date.slice(0, 10)}-${commit.replace('+', '-')}`;
    const title = `mcrelay --workers ${a.workers}, ${scenario.name}, ${thread}, commit ${commit}`;
    const { svg, minwidth } = render(chosen.profile, root, title);
    const svgFile = join(outDir, `${base}.svg`);
    writeFileSync(svgFile, svg);
    copyFileSync(join(profDir, chosen.file), join(outDir, `${base}.cpuprofile`));
    process.stdout.write(`\nflame graph: ${svgFile} (${(statSync(svgFile).size / 1024).toFixed(0)} KiB, frames under ${minwidth} px dropped)\n`);
    process.stdout.write(`profile: ${join(outDir, `${base}.cpuprofile`)} (not committed; open it in Chrome DevTools)\n`);
    process.stdout.write(`${thread}: busy ${busyPct.toFixed(0)} % of the run\n\n`);

    const top = topSelfTime(chosen.profile, root, 10);
    process.stdout.write('top 10 functions by self time (% of the thread\'s busy time):\n');
    process.stdout.write(textTable(['function', 'self ms', '% busy'],
      top.map((t) => [t.name, (t.micros / 1000).toFixed(0), t.percentOfBusy.toFixed(1)])));

    const readme = join(outDir, 'README.md');
    if (!existsSync(readme)) {
      writeFileSync(readme, [
        '# Flame graphs',
        '',
        'CPU flame graphs of mcrelay under the end-to-end benchmark, written by `npm run profile`',
        '(V8 CPU profiler, busiest thread, idle time left out; rendered by the `flamegraph` package).',
        'One line per graph: scenario, commit, date and what was measured.',
        '',
        '',
      ].join('\n'));
    }
    appendFileSync(readme,
      `- [${base}.svg](${base}.svg): scenario ${scenario.name} (${scenario.description}), mcrelay --workers ${a.workers}, ` +
      `${thread} (busy ${busyPct.toFixed(0)} %), commit ${commit}, ${date}, ${a.seconds} s, ${Math.round(load.opsPerSec)} ops/s under the profiler, load: ${tool.name}\n`);
    process.stdout.write(`\nappended to ${readme}\n`);
  } finally {
    if (mcrelay !== null) await stopProcess(mcrelay);
    if (memcached !== null) await stopProcess(memcached);
    killAllNow();
    undo();
    rmSync(logDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`profile: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
});
