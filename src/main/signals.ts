// The operator's signals: SIGTERM and SIGINT stop mcrelay, SIGHUP reads the
// configuration again. They are installed before start() runs, not after it
// returns: start() logs "mcrelay started" before it returns, and a SIGHUP with
// no listener takes Node's default action and ends the process (an operator's
// reload sent on that line would kill the proxy). A signal that comes while
// mcrelay is still starting waits for the start; if the start fails, the
// caller's error path ends the process and the signal is dropped.

import type { Config } from '../config/config.js';

export interface Controllable {
  stop(): Promise<void>;
  reload(next: Config): void;
}

/**
 * `readConfig` reads the file and flags again: the new Config, or null when it
 * cannot be used (it logs why). Reloads run one after the other, so that a
 * later SIGHUP's file wins.
 */
export function handleSignals(startup: Promise<Controllable>, readConfig: () => Promise<Config | null>, onStop: (signal: string) => void): void {
  const started = startup.then((r) => r, () => null);
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    void started.then(async (running) => {
      if (running === null) return;
      onStop(signal);
      await running.stop();
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  let reloading = Promise.resolve();
  const reload = async (): Promise<void> => {
    const running = await started;
    if (running === null || stopping) return;
    const next = await readConfig();
    if (next !== null) running.reload(next);
  };
  process.on('SIGHUP', () => { reloading = reloading.then(reload); });
}
