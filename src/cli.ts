#!/usr/bin/env node
// mcrelay's command line: magent-compatible flags -> Config -> start.

import { availableParallelism } from 'node:os';
import { loadConfig, parseArgv } from './config/argv.js';
import { log, setLogLevel } from './log.js';
import { restartWithMallocSettings } from './main/malloc.js';
import { start } from './main/start.js';

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
      process.on('SIGHUP', () => {
        const r = loadConfig(process.argv.slice(2), { cpus: availableParallelism() });
        if ('error' in r) {
          log.error('reload refused; the running configuration is unchanged', { error: r.error });
          return;
        }
        setLogLevel(r.config.verbose);
        running.reload(r.config);
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      process.stderr.write(`mcrelay: ${e.message}\n`);
      process.exit(1);
    }
    break;
  }
}
