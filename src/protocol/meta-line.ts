// A client's meta request as the proxy sends it on: without its q flag (the proxy
// keeps one reply per request and does the quieting itself, worker/write-pair.ts
// `quieted`) unless the request needs the server to see it, and, for a cas
// replayed on the backup, without its C flag (the backup's cas ids are its own).
//
//   ms k 3 T0 q C9\r\nabc\r\n --> ms k 3 T0 C9\r\nabc\r\n       (to the master)
//                             --> ms k 3 T0\r\nabc\r\n          (to the backup, after the master stored it)

import * as wire from './wire.js';
import type { Outbox } from '../io/buffers.js';

const SP = Buffer.from(' ');
const Q = 0x71;
const C = 0x43;

/**
 * Writes the meta line buf[lineStart, forwardEnd) to out, dropping its q flag
 * (unless keepQ) and, with dropCas, its C flag; then, for ms (isMs), the data
 * block buf[dataStart, dataStart + bytes + 2).
 */
export function writeMetaLine(out: Outbox, buf: Buffer, lineStart: number, forwardEnd: number, isMs: boolean, keepQ: boolean, dropCas: boolean,
  dataStart: number, bytes: number): void {
  let i = lineStart;
  while (buf[i] === 0x20) i++;
  // The command, the key and (ms) the length are kept whatever letter they start with.
  const fixed = isMs ? 3 : 2;
  let t = 0;
  while (i < forwardEnd) {
    const s = i;
    while (i < forwardEnd && buf[i] !== 0x20) i++;
    const c = buf[s];
    if (t < fixed || ((c !== Q || keepQ) && !(dropCas && c === C))) {
      if (t > 0) out.addAll(SP);
      out.add(buf, s, i);
    }
    t++;
    while (i < forwardEnd && buf[i] === 0x20) i++;
  }
  out.addAll(wire.CRLF);
  if (isMs) out.add(buf, dataStart, dataStart + bytes + 2);
}
