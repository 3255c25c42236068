// Where a request may go, given the health table: the one place that decides
// failover. The router says which master and backup own a key; this module says
// which of them to use now.
//
//   state        reads of its keys          writes of its keys
//   UP           master                     master + backup
//   DOWN         backup                     backup (journaled for the master)
//   RECOVERING   backup                     master + backup, answered with the backup's
//                                           reply (the master may still hold stale values:
//                                           an incr there counts from one), once both have
//   WARMING      master, misses -> backup   master + backup, answered once both have;
//                                           a key the master lacks is the backup's answer
//   DRAINING     backup                     master + backup (other proxies may still read it)
//   DRAINED      backup                     backup (journaled for the master)
//
// A backup serves reads only when UP; one that is DOWN has its writes journaled too.

import { DOWN, DRAINED, RECOVERING, UP, WARMING, type HealthTable } from '../shared/health.js';

/** A server that is not there: no pool, or no backup configured. */
export const NONE = -1;

/** The server a read of a key should go to: its master when readable, else its backup, else NONE. */
export function readTarget(health: HealthTable, master: number, backup: number): number {
  const s = health.state(master);
  if (s === UP || s === WARMING) return master;
  if (backup !== NONE && health.isUp(backup)) return backup;
  return NONE;
}

/**
 * Whether a master takes writes: anything but DOWN. A recovering master must
 * get them too: another entry proxy may already be reading from it.
 */
export function writable(health: HealthTable, server: number): boolean {
  const s = health.state(server);
  return s !== DOWN && s !== DRAINED;
}

/** The backup a write is replicated to, or NONE. */
export function shadowTarget(health: HealthTable, backup: number): number {
  return backup !== NONE && writable(health, backup) ? backup : NONE;
}

/** The master is being cleared: the backup's answers are the true ones. */
export function recovering(health: HealthTable, master: number): boolean {
  return health.state(master) === RECOVERING;
}

/** A read served by this master should look misses up on the backup. */
export function warming(health: HealthTable, master: number): boolean {
  return health.state(master) === WARMING;
}
