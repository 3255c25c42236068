// A client's authentication (auth_file): memcached's ASCII authentication, as
// memcached -Y reads it (proto_text.c, try_read_command_asciiauth).
//
//   "set <any key> <flags> <exptime> <n>[ noreply]\r\n" + "<user> <password>\r\n" (n + 2 bytes)
//     --> STORED: authenticated, the rest of the input is parsed as usual
//     --> CLIENT_ERROR authentication failure / unauthenticated / ...: refused
//
// Where mcrelay departs from memcached 1.6, on purpose: a refused client is
// closed once its answer is written (memcached keeps the connection and lets
// it try again, so one connection could try passwords forever), and a binary
// request gets the binary AUTH_ERROR status and a close (memcached -Y speaks no
// binary at all). Nothing of what the client sent is ever logged.
//
// Credentials are compared in time that does not depend on where they differ.

import { timingSafeEqual } from 'node:crypto';
import type { AuthFile } from '../config/auth-file.js';
import { MAGIC_REQUEST } from '../protocol/binary-request.js';
import { errorResponse, HEADER_LENGTH, Status } from '../protocol/binary-reply.js';
import * as wire from '../protocol/wire.js';

/** memcached's limits: a first line with no newline after this many bytes is dropped; a token longer is refused. */
export const MAX_AUTH_LINE = 2048;
export const MAX_AUTH_TOKEN = 16384;

export const Auth = {
  /** wait for more bytes */
  NEED_MORE: 0,
  /** STORED: authenticated; `next` is where the input goes on */
  OK: 1,
  /** refused: answer `reply` (null: nothing) and close */
  REFUSED: 2,
} as const;

const SET = Buffer.from('set');

export class PasswordGate {
  private readonly users: ReadonlyArray<{ user: Buffer; password: Buffer }>;
  /** the longest password: every check compares this many bytes */
  private readonly width: number;
  /** after read(): where the input goes on (OK), and the answer */
  next = 0;
  reply: Buffer | null = null;
  /** after read() REFUSED: why, for a debug line (never what was sent) */
  reason = '';

  constructor(file: AuthFile) {
    this.users = file.users.map((u) => ({ user: Buffer.from(u.user, 'utf8'), password: Buffer.from(u.password, 'utf8') }));
    this.width = Math.max(1, ...this.users.map((u) => u.password.length));
  }

  /** Reads the auth `set` at buf[pos, end). */
  read(buf: Buffer, pos: number, end: number): number {
    this.reply = null;
    if (end === pos) return Auth.NEED_MORE;
    if (buf[pos] === MAGIC_REQUEST) {
      // A binary request: the status a binary client library knows, for its opcode and opaque.
      if (end - pos < HEADER_LENGTH) return Auth.NEED_MORE;
      return this.refuse(errorResponse(buf[pos + 1]!, buf.readUInt32BE(pos + 12), Status.AUTH_ERROR), 'a binary request before authenticating');
    }
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0 || nl >= end) {
      if (end - pos <= MAX_AUTH_LINE) return Auth.NEED_MORE;
      this.reason = 'a first line too long';
      return Auth.REFUSED;
    }
    const size = authSize(buf, pos, nl);
    if (size < 0) return this.refuse(wire.CLIENT_ERROR_UNAUTHENTICATED);
    if (size > MAX_AUTH_TOKEN) return this.refuse(wire.CLIENT_ERROR_AUTH_TOO_LONG);
    const data = nl + 1;
    if (end - data < size + 2) return Auth.NEED_MORE;
    const dataEnd = data + size;
    if (buf[dataEnd] !== 0x0d || buf[dataEnd + 1] !== 0x0a) return this.refuse(wire.CLIENT_ERROR_LINE_TERMINATION);
    const space = buf.indexOf(0x20, data);
    if (space < 0 || space >= dataEnd) return this.refuse(wire.CLIENT_ERROR_AUTH_FORMAT);
    if (!this.check(buf, data, space, space + 1, dataEnd)) return this.refuse(wire.CLIENT_ERROR_AUTH_FAILURE, 'wrong user or password');
    this.reply = wire.STORED;
    this.next = dataEnd + 2;
    return Auth.OK;
  }

  /** why: for a reply of memcached's, the reply's own words */
  private refuse(reply: Buffer, why = reply.toString('latin1', 13, reply.length - 2)): number {
    this.reply = reply;
    this.reason = why;
    return Auth.REFUSED;
  }

  /** Whether user:password is in the file; every entry is compared, each in full. */
  check(buf: Buffer, userStart: number, userEnd: number, passStart: number, passEnd: number): boolean {
    const user = buf.subarray(userStart, userEnd);
    const given = Buffer.alloc(this.width);
    const passLength = passEnd - passStart;
    buf.copy(given, 0, passStart, passStart + Math.min(passLength, this.width));
    let found = false;
    for (const u of this.users) {
      const expected = Buffer.alloc(this.width);
      u.password.copy(expected);
      const samePassword = timingSafeEqual(given, expected) && passLength === u.password.length;
      const sameUser = user.length === u.user.length && timingSafeEqual(user, u.user);
      if (samePassword && sameUser) found = true;
    }
    return found;
  }
}

/**
 * The data size of an auth `set` line buf[pos, nl) (CR, if any, included), or
 * -1 when the line is not one: memcached tokenizes it at spaces and wants at
 * least five tokens, the first `set`, the fifth a number.
 */
function authSize(buf: Buffer, pos: number, nl: number): number {
  let end = nl;
  if (end > pos && buf[end - 1] === 0x0d) end--;
  let token = 0;
  let i = pos;
  let size = -1;
  while (i < end) {
    while (i < end && buf[i] === 0x20) i++;
    if (i >= end) break;
    const start = i;
    while (i < end && buf[i] !== 0x20) i++;
    if (token === 0 && (i - start !== 3 || buf.compare(SET, 0, 3, start, i) !== 0)) return -1;
    if (token === 4) size = digits(buf, start, i);
    token++;
  }
  return token >= 5 ? size : -1;
}

/** A decimal number, or -1 (as safe_strtoul: digits only, within 32 bits). */
function digits(buf: Buffer, start: number, end: number): number {
  if (end - start > 10) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n > 0xffffffff ? -1 : n;
}
