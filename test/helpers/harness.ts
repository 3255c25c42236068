// mcrelay as the CLI runs it, plus a test hook: SIGUSR2 ends worker 0 as a crash
// would and prints "replaced" once its replacement takes clients. For tests that
// must watch a worker being replaced in a process of its own (after a privilege
// drop, or with another process's attempts on the handoff pipe).
//
//   node dist/test/helpers/harness.js <mcrelay flags>
import { parseArgv } from '../../src/config/argv.js';
import { start } from '../../src/main/start.js';

const parsed = parseArgv(process.argv.slice(2));
if (parsed.kind !== 'run') throw new Error(`harness: ${JSON.stringify(parsed)}`);
const running = await start(parsed.config);
const sup = running.supervisor;
process.on('SIGUSR2', () => {
  void (async () => {
    await sup.killWorker(0);
    // bounded: 10 s at most
    for (let i = 0; i < 500 && sup.liveWorkers() < parsed.config.workers; i++) await new Promise((r) => setTimeout(r, 20));
    process.stdout.write(sup.liveWorkers() === parsed.config.workers ? 'replaced\n' : 'not replaced\n');
  })();
});
process.on('SIGTERM', () => { void running.stop().then(() => process.exit(0)); });
process.stdout.write('ready\n');
