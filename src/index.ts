// mcrelay as a library: start the proxy in-process from a Config (tests, embedding).
export { start, type Running } from './main/start.js';
export { parseArgv, loadConfig } from './config/argv.js';
export type { Config } from './config/config.js';
