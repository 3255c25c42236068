// npm run fuzz [-- options]: the full fuzz run.
//
//   1. the request parser, then the response parser, in process: generated valid,
//      mutated and random inputs cut at random points, checked against the
//      properties of request-check.ts / response-check.ts; spread over worker
//      threads by input index;
//   2. a differential run against real servers (differential.ts): memcached
//      directly versus mcrelay in front of a second memcached;
//   3. mangled TLS ClientHellos sent to mcrelay's TLS listener (tls-handshake.ts).
//
// Options:
//   --seed N            the seed (default: a new one, printed); input i of seed N
//                       is always the same input
//   --inputs N          inputs per parser (default 1000000)
//   --seconds S         time limit per parser (default 300)
//   --workers N         threads (default: the number of CPUs, at most 8)
//   --only request|response|differential|tls
//   --differential N    streams for the differential run (default 2000; 0: none)
//   --tls N             mangled TLS hellos sent to a TLS listener (default 5000; 0: none)
//   --replay T:I        print input I of target T (request, response, differential, tls) and its check
//
// Exit status 1 when any property fails or any stream is answered differently.
import os from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { formatReport, fuzzRequests, fuzzResponses, mergeReports, requestInput, responseInput, type Budget, type Report, type Target } from './engine.js';
import { diffInput, formatDiffReport, runDifferential } from './differential.js';
import { formatHandshakeReport, handshakeInput, recordClientHello, runHandshakeFuzz } from './tls-handshake.js';
import { RequestChecker } from './request-check.js';
import { ResponseChecker } from './response-check.js';
import { RequestModel } from './request-model.js';

const MAX_ITEM_SIZE = 1024;

interface Job { target: Target; budget: Budget }

if (!isMainThread) {
  const job = workerData as Job;
  const report = job.target === 'request' ? fuzzRequests(job.budget) : fuzzResponses(job.budget);
  parentPort!.postMessage(report);
} else {
  await main();
}

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}

function runJob(job: Job): Promise<Report> {
  return new Promise((resolve, reject) => {
    const w = new Worker(fileURLToPath(import.meta.url), { workerData: job });
    w.once('message', resolve);
    w.once('error', reject);
    w.once('exit', (code) => { if (code !== 0) reject(new Error(`fuzz worker exited with ${code}`)); });
  });
}

async function fuzz(target: Target, seed: number, inputs: number, seconds: number, workers: number): Promise<Report> {
  const deadline = Date.now() + seconds * 1000;
  const jobs = Array.from({ length: workers }, (_, w): Job => ({
    target,
    budget: { seed, first: w, count: inputs, step: workers, deadline, maxItemSize: MAX_ITEM_SIZE },
  }));
  return mergeReports(await Promise.all(jobs.map(runJob)));
}

function replay(spec: string, seed: number): void {
  const [target, index] = [spec.split(':')[0]!, Number(spec.split(':')[1])];
  if (target === 'request') {
    const { kind, text, cuts } = requestInput(seed, index, MAX_ITEM_SIZE);
    console.log(`request input ${index} of seed ${seed} (${kind}), cut at ${JSON.stringify(cuts)}:\n${JSON.stringify(text)}`);
    const model = new RequestModel({ mode: 'proxy', maxItemSize: MAX_ITEM_SIZE });
    console.log('model (proxy mode):', model.run(text, cuts).outcomes);
    const f = new RequestChecker(MAX_ITEM_SIZE).check(text, cuts);
    console.log(f === null ? 'all properties hold' : `${f.property}\n${f.detail}`);
  } else if (target === 'response') {
    const { kind, input, cuts } = responseInput(seed, index);
    console.log(`response input ${index} of seed ${seed} (${kind}), kinds ${JSON.stringify(input.kinds)}, cut at ${JSON.stringify(cuts)}:\n${JSON.stringify(input.text)}`);
    const f = new ResponseChecker().check(input, cuts);
    console.log(f === null ? 'all properties hold' : `${f.property}\n${f.detail}`);
  } else if (target === 'tls') {
    void recordClientHello('TLSv1.3').then(async (h13) => {
      const input = handshakeInput(seed, index, [h13, await recordClientHello('TLSv1.2')]);
      console.log(`tls input ${index} of seed ${seed} (${input.kind}), written cut at ${JSON.stringify(input.cuts)}:\n${input.bytes.toString('hex')}`);
    });
  } else {
    const d = diffInput(seed, index);
    console.log(`differential stream ${index} of seed ${seed}, written cut at ${JSON.stringify(d.cuts)}, left out: ${JSON.stringify(d.dropped)}\n${JSON.stringify(d.stream)}`);
    console.log('model (memcached mode):', new RequestModel({ mode: 'memcached', maxItemSize: 1 << 20 }).run(d.stream, d.cuts).outcomes);
  }
}

async function main(): Promise<void> {
  const seed = Number(option('seed') ?? Math.floor(Math.random() * 2 ** 31));
  const inputs = Number(option('inputs') ?? 1_000_000);
  const seconds = Number(option('seconds') ?? 300);
  const workers = Number(option('workers') ?? Math.min(8, os.availableParallelism()));
  const only = option('only');
  const diffCount = Number(option('differential') ?? 2000);
  const r = option('replay');
  if (r !== undefined) { replay(r, seed); return; }

  console.log(`fuzz: seed ${seed}, ${inputs.toLocaleString('en')} inputs per parser (at most ${seconds} s each), ${workers} threads`);
  let failed = false;
  for (const target of ['request', 'response'] as const) {
    if (only !== undefined && only !== target) continue;
    const report = await fuzz(target, seed, inputs, seconds, workers);
    console.log(`\n${formatReport(report)}`);
    if (report.failures.length > 0) failed = true;
    if (report.inputs < inputs) console.log(`  note: ${report.inputs.toLocaleString('en')} of ${inputs.toLocaleString('en')} inputs ran within ${seconds} s`);
  }
  if (diffCount > 0 && (only === undefined || only === 'differential')) {
    // Started here, not at the top: the in-process part needs no servers.
    const { startMemcached, startProxy } = await import('../helpers/procs.js');
    const [a, b] = await Promise.all([startMemcached(), startMemcached()]);
    const proxy = await startProxy(['-s', b.addr, '--workers', '1', '--timeout', '500']);
    const report = await runDifferential({ memcachedPort: a.port, proxyPort: proxy.port, backendPort: b.port }, seed, diffCount, Date.now() + 180_000);
    console.log(`\n${formatDiffReport(report, seed)}`);
    if (report.mismatches.length > 0) failed = true;
    await Promise.all([proxy.stop(), a.stop(), b.stop()]);
  }
  const tlsCount = Number(option('tls') ?? 5000);
  if (tlsCount > 0 && (only === undefined || only === 'tls')) {
    const { startMemcached, startProxy } = await import('../helpers/procs.js');
    const { makeCerts } = await import('../helpers/certs.js');
    const certs = await makeCerts();
    const mc = await startMemcached();
    const proxy = await startProxy(['-s', mc.addr, '--workers', '1', '--tls-cert', certs.serverCert, '--tls-key', certs.serverKey]);
    const report = await runHandshakeFuzz(proxy.port, seed, tlsCount, Date.now() + seconds * 1000);
    console.log(`\n${formatHandshakeReport(report, seed)}`);
    if (report.problems.length > 0) failed = true;
    await Promise.all([proxy.stop(), mc.stop()]);
    (await import('node:fs')).rmSync(certs.dir, { recursive: true, force: true });
  }
  console.log(failed ? '\nfuzz: FAILED' : '\nfuzz: all properties held');
  process.exitCode = failed ? 1 : 0;
}
