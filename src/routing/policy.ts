// Where a request may go, given the health table: the one place that decides
// failover. The router says which master and backup own a key; this module says
// which of them to use now. Warm-up of a returning master (a later state) slots
// in here without the data path changing shape.

import { type HealthTable } from '../shared/health.js';

/** A server that is not there: no pool, or no backup configured. */
export const NONE = -1;

/** The server a read of a key should go to: its master when up, else its backup, else NONE. */
export function readTarget(health: HealthTable, master: number, backup: number): number {
  if (health.isUp(master)) return master;
  if (backup !== NONE && health.isUp(backup)) return backup;
  return NONE;
}

/** The backup a write is replicated to, or NONE. */
export function shadowTarget(health: HealthTable, backup: number): number {
  return backup !== NONE && health.isUp(backup) ? backup : NONE;
}
