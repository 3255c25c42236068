// A process that handles its signals as the CLI does (main/signals.ts) around a
// start that takes `argv[2]` ms and succeeds, or fails with `argv[3]` = fail.
// Prints each step as a line, for test/unit/signals.test.ts.
//
//   node dist/test/helpers/signals-child.js <start ms> [fail]
import type { Config } from '../../src/config/config.js';
import { handleSignals, type Controllable } from '../../src/main/signals.js';

const say = (line: string): void => { process.stdout.write(`${line}\n`); };
const startMs = Number(process.argv[2]);
const fails = process.argv[3] === 'fail';
const startup = new Promise<Controllable>((resolve, reject) => {
  setTimeout(() => {
    if (fails) { reject(new Error('start failed')); return; }
    say('started');
    // what keeps a started mcrelay alive: its listeners, here a timer
    const serving = setInterval(() => {}, 1000);
    resolve({ stop: async () => { clearInterval(serving); say('stopped'); }, reload: () => { say('reloaded'); } });
  }, startMs);
});
handleSignals(startup, async () => { say('read config'); return {} as Config; }, (signal) => say(`stopping ${signal}`));
say('starting');
try {
  await startup;
} catch {
  say('start failed');
  // as cli.ts: the failed start ends the process with its own status
  setTimeout(() => process.exit(3), 300);
}
