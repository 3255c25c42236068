#!/usr/bin/env node
// mcrelay's command line: magent-compatible flags -> Config -> start.

import { availableParallelism } from 'node:os';
import { loadConfig, parseArgv } from './config/argv.js';
import { findSameServer } from './config/same-server.js';
import { Code } from './errors.js';
import { log, setLogLevel } from './log.js';
import { restartWithMallocSettings } from './main/malloc.js';
import { start } from './main/start.js';

if (process.argv[2] === 'ctl') {
  const { ctl } = await import('./ctl.js');
  process.exit(await ctl(process.argv.slice(3)));
}
if (process.argv[2] === 'plan') {
  const { plan } = await import('./plan.js');
  process.exit(await plan(process.argv.slice(3)));
}

const parsed = parseArgv(process.argv.slice(2), { cpus: availableParallelism() });
switch (parsed.kind) {
  case 'help':
  case 'version':
    process.stdout.write(`${parsed.text}\n`);
    process.exit(0);
    break;
  case 'error':
    process.stderr.write(`${parsed.message}\n`);
    process.exit(2);
    break;
  case 'run': {
    restartWithMallocSettings();
    const config = parsed.config;
    const twin = await findSameServer(config.masters, config.backups);
    if (twin !== null) {
      process.stderr.write(`mcrelay: ${twin}\n`);
      process.exit(2);
    }
    setLogLevel(config.verbose);
    try {
      const running = await start(config);
      let stopping = false;
      const shutdown = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        log.info('stopping', { signal });
        void running.stop().then(() => process.exit(0));
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
      // SIGHUP: read the file (and the same flags) again; a bad file changes nothing.
      // Reloads run one after the other, so that a later SIGHUP's file wins.
      let reloading = Promise.resolve();
      const reload = async (): Promise<void> => {
        const r = loadConfig(process.argv.slice(2), { cpus: availableParallelism() });
        const problem = 'error' in r ? r.error : await findSameServer(r.config.masters, r.config.backups);
        if (problem !== null || 'error' in r) {
          log.error('reload refused; the running configuration is unchanged', { code: Code.USAGE, error: problem });
          return;
        }
        setLogLevel(r.config.verbose);
        running.reload(r.config);
      };
      process.on('SIGHUP', () => { reloading = reloading.then(reload); });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      process.stderr.write(`mcrelay: ${e.message}\n`);
      // A configuration that names what does not exist, as a bad flag: status 2.
      process.exit(e.code === Code.USAGE ? 2 : 1);
    }
    break;
  }
}
