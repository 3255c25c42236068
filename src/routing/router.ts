// Picks a key's master and backup server. One hash per key, then one bucket
// choice per pool; both pools use the same algorithm over their own server lists,
// so every mcrelay built from the same lists routes a key identically.
//
//   key bytes --hash()--> h --+--> master bucket (jump | % n | master ring)
//                             '--> backup bucket (jump | % n | backup ring), -1 if none
//
// Tables (ketama rings) are built here, in the constructor; route() allocates
// nothing for jump and magent.

import type { Distribution } from '../config/config.js';
import { jumpRoute } from './jump.js';
import { KetamaRing, ketamaHash } from './ketama.js';
import { magentHash, moduloBucket } from './magent.js';
import { xxh32 } from './xxhash.js';

export type { Distribution };

const JUMP = 0;
const KETAMA = 1;
const MAGENT = 2;

function kindOf(distribution: Distribution): number {
  switch (distribution) {
    case 'jump': return JUMP;
    case 'ketama': return KETAMA;
    case 'magent': return MAGENT;
  }
}

export class Router {
  /** index into the master list of the last routed key */
  master: number;
  /** index into the backup list of the last routed key; -1 when there are no backups */
  backup: number;
  /** the hash of the last routed key (worker/sequencer.ts picks its write stripe by it) */
  hashed: number;

  private readonly kind: number;
  private readonly masterCount: number;
  private readonly backupCount: number;
  private readonly masterRing: KetamaRing | null;
  private readonly backupRing: KetamaRing | null;

  constructor(distribution: Distribution, masterNames: readonly string[], backupNames: readonly string[]) {
    if (masterNames.length === 0) throw new RangeError('a router needs at least one master');
    this.kind = kindOf(distribution);
    this.masterCount = masterNames.length;
    this.backupCount = backupNames.length;
    this.masterRing = this.kind === KETAMA ? new KetamaRing(masterNames) : null;
    this.backupRing = this.kind === KETAMA && backupNames.length > 0 ? new KetamaRing(backupNames) : null;
    this.master = 0;
    this.backup = -1;
    this.hashed = 0;
  }

  /** the same hash route() uses (for callers that want to cache it) */
  hash(buf: Uint8Array, start: number, end: number): number {
    switch (this.kind) {
      case JUMP: return xxh32(buf, start, end);
      case MAGENT: return magentHash(buf, start, end);
      default: return ketamaHash(buf, start, end);
    }
  }

  /** Hashes the key once and picks a master and a backup bucket; sets this.master / this.backup. */
  route(buf: Uint8Array, start: number, end: number): void {
    const h = this.hash(buf, start, end);
    this.hashed = h;
    const nb = this.backupCount;
    switch (this.kind) {
      case JUMP:
        jumpRoute(h, this.masterCount, nb, this);
        break;
      case MAGENT:
        this.master = moduloBucket(h, this.masterCount);
        this.backup = nb > 0 ? moduloBucket(h, nb) : -1;
        break;
      default:
        this.master = this.masterRing!.bucket(h);
        this.backup = this.backupRing !== null ? this.backupRing.bucket(h) : -1;
        break;
    }
  }
}
