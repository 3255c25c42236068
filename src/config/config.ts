// The validated configuration every part of mcrelay reads. Built by config/argv.ts
// from magent-compatible flags (and, later, from a YAML file); immutable once built.

export type Distribution = 'jump' | 'ketama' | 'magent';

export interface ServerAddress {
  /** host:port as given, or a unix socket path; used in logs and stats */
  readonly name: string;
  readonly host: string;
  /** 0 for a unix socket path */
  readonly port: number;
  /** set for unix sockets */
  readonly path: string | null;
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
  /** unix socket path (-f); when set, host/port are not used */
  readonly path: string | null;
}

export interface Config {
  readonly listen: ListenAddress;
  /** master pool, in command-line order (the order is part of the hash) */
  readonly masters: readonly ServerAddress[];
  /** backup pool, hashed the same way over its own list; may be empty */
  readonly backups: readonly ServerAddress[];
  readonly distribution: Distribution;
  readonly workers: number;
  readonly maxConnections: number;
  /** pipelined connections each worker keeps to each server */
  readonly connectionsPerServer: number;
  readonly timeoutMs: number;
  readonly retryIntervalMs: number;
  readonly failureLimit: number;
  readonly maxItemSize: number;
  readonly user: string | null;
  readonly group: string | null;
  readonly verbose: number;
  readonly daemonize: boolean;
}

export const DEFAULTS = {
  host: '127.0.0.1',
  port: 11211,
  maxConnections: 4096,
  connectionsPerServer: 1,
  timeoutMs: 1000,
  retryIntervalMs: 1000,
  failureLimit: 3,
  maxItemSize: 1024 * 1024,
  distribution: 'jump' as Distribution,
} as const;
