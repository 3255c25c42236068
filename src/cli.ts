#!/usr/bin/env node
// mcrelay's command line: magent-compatible flags -> Config -> start.

import { availableParallelism } from 'node:os';
import { loadConfig, parseArgv } from './config/argv.js';
import { findSameServer } from './config/same-server.js';
import { Code } from './errors.js';
import { log, setLogLevel } from './log.js';
import { restartWithMallocSettings } from './main/malloc.js';
import { handleSignals } from './main/signals.js';
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
      const startup = start(config);
      handleSignals(startup, async () => {
        const r = loadConfig(process.argv.slice(2), { cpus: availableParallelism() });
        const problem = 'error' in r ? r.error : await findSameServer(r.config.masters, r.config.backups);
        if (problem !== null || 'error' in r) {
          log.error('reload refused; the running configuration is unchanged', { code: Code.USAGE, error: problem });
          return null;
        }
        setLogLevel(r.config.verbose);
        return r.config;
      }, (signal) => log.info('stopping', { signal }));
      await startup;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      process.stderr.write(`mcrelay: ${e.message}\n`);
      // A configuration that names what does not exist, as a bad flag: status 2.
      process.exit(e.code === Code.USAGE ? 2 : 1);
    }
    break;
  }
}
