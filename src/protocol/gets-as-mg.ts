// Gets as mg: a one-key get or gets goes to a server that answers meta commands
// as `mg <key> v f [c]`, which memcached answers in one write per batch of
// requests instead of one write per get (worker/reads.ts sends it), and its
// meta reply goes back to the client as the text protocol's value block.
//
//   get k  --> mg k v f\r\n     VA 3 f5\r\nabc\r\n --> VALUE k 5 3\r\nabc\r\n
//   gets k --> mg k v f c\r\n   VA 3 f5 c9\r\nabc\r\n --> VALUE k 5 3 9\r\nabc\r\n
//   a miss: EN\r\n, nothing of the key in the client's reply (END follows)

import { findLF, type Outbox } from '../io/buffers.js';

const SP = 0x20;

export const MG = Buffer.from('mg ');
/** what follows the key of a get or gets sent as mg: the value and its client flags (and cas) */
export const MG_GET_FLAGS = Buffer.from(' v f\r\n');
export const MG_GETS_FLAGS = Buffer.from(' v f c\r\n');

/**
 * Writes the value of a meta reply, b[start, end) = "VA <size> <flag>*\r\n<data>\r\n"
 * as read() found it, as the text protocol's value block
 * "VALUE <key> <flags> <size>[ <cas>]\r\n<data>\r\n": the flags from its f token
 * (0 without one), the cas from its c token if `withCas`, the key key[ks, ke).
 */
export function addTextValue(out: Outbox, b: Buffer, start: number, end: number, key: Buffer, ks: number, ke: number, withCas: boolean): void {
  const cr = findLF(b, start, end) - 1;
  let i = start + 3;
  const sizeStart = i;
  while (i < cr && b[i] !== SP) i++;
  const sizeEnd = i;
  let fs = 0;
  let fe = 0;
  let cs = 0;
  let ce = 0;
  while (i < cr) {
    const t = ++i;
    while (i < cr && b[i] !== SP) i++;
    if (b[t] === 0x66) { fs = t + 1; fe = i; } else if (b[t] === 0x63) { cs = t + 1; ce = i; }
  }
  out.addAll(VALUE_SP);
  out.add(key, ks, ke);
  out.addAll(SPACE);
  if (fe > fs) out.add(b, fs, fe);
  else out.addAll(ZERO);
  out.addAll(SPACE);
  out.add(b, sizeStart, sizeEnd);
  if (withCas && ce > cs) { out.addAll(SPACE); out.add(b, cs, ce); }
  // "\r\n<data>\r\n"
  out.add(b, cr, end);
}

const VALUE_SP = Buffer.from('VALUE ');
const SPACE = Buffer.from(' ');
const ZERO = Buffer.from('0');
