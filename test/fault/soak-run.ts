// npm run soak [-- --seconds N --connections N]: the full load-with-faults run
// (60 s, 32 connections by default); see test/helpers/soak.ts. Exit status 1
// on a wrong value, an unanswered request or an error outside a detection window.
import { formatSoak, runSoak } from '../helpers/soak.js';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
}

const r = await runSoak({ seconds: option('seconds', 60), connections: option('connections', 32), log: (l) => console.log(l) });
console.log(`\n${formatSoak(r)}`);
const failed = !r.proxyAlive || r.wrong.length > 0 || r.unanswered.length > 0 || r.errorsOutside.length > 0;
console.log(failed ? '\nsoak: FAILED' : '\nsoak: passed');
process.exit(failed ? 1 : 0);
