// One load connection: keeps exactly `pipeline` requests outstanding, parses the
// memcache text replies byte by byte (or the binary protocol's 24-byte headers)
// out of the thread's shared read buffer, and records one latency sample per reply. Nothing on this path allocates per request:
// requests are written into a shared slab, the FIFO of outstanding requests is a
// set of typed-array rings, and replies are never turned into strings.
// Over TLS (--tls) replies come as the TLS socket's 'data' chunks instead of
// into the shared read buffer; the parser is the same.
import net from 'node:net';
import type tls from 'node:tls';
import type { Histogram } from 'hdr-histogram-js';
import { KeyGenerator } from './keygen.js';
import type { LoadOptions } from './options.js';
import { connectTls } from './tls.js';

const LF = 10;
const SP = 32;
const CH_0 = 48;
const CH_C = 67;
const CH_E = 69;
const CH_N = 78;
const CH_R = 82;
const CH_S = 83;
const CH_T = 84;
const CH_V = 86;

const T_SET = 0;
const T_GET = 1;

// The binary protocol (memcached's protocol_binary.h): a request header, then extras, key, value.
const BIN_HEADER = 24;
const BIN_REQUEST = 0x80;
const BIN_RESPONSE = 0x81;
const BIN_SET = 0x01;
const BIN_GETK = 0x0c;
const BIN_OK = 0x00;
const BIN_NOT_FOUND = 0x01;

/** Counters of one worker thread; every connection of the thread adds into it. */
export class ThreadStats {
  setOps = 0;
  getOps = 0;
  hits = 0;
  misses = 0;
  setBytes = 0;
  getBytes = 0;
  /** ERROR / CLIENT_ERROR / SERVER_ERROR replies. */
  errors = 0;
  connectionErrors = 0;
  constructor(readonly setHist: Histogram, readonly getHist: Histogram) {}
}

/**
 * Output bytes for all connections of a thread. Each flush hands the socket a view
 * of the region written since the last flush and the cursor moves on; a region is
 * never rewritten, so a socket may hold on to it as long as it likes. When the slab
 * runs out a new one is started and the old one is freed by GC with its last view.
 */
export class WriteSlab {
  buf: Buffer;
  off = 0;
  constructor(private readonly size: number) {
    this.buf = Buffer.allocUnsafeSlow(size);
  }
  reserve(n: number): void {
    if (this.buf.length - this.off < n) {
      this.buf = Buffer.allocUnsafeSlow(Math.max(this.size, n));
      this.off = 0;
    }
  }
}

/** Request fragments built once per thread from the options. */
export class Wire {
  readonly setHead: Uint8Array; // "set <prefix>"
  readonly getHead: Uint8Array; // "get <prefix>"
  readonly mgetKeyHead: Uint8Array; // " <prefix>"
  readonly setTail: Uint8Array; // " 0 0 <size>\r\n<value>\r\n"
  readonly expiryHead: Uint8Array; // " 0 "
  readonly setTailAfterExpiry: Uint8Array; // " <size>\r\n<value>\r\n"
  /** Upper bounds of one request's size, to reserve slab space for a batch. */
  readonly maxRequest: number;
  readonly binary: boolean;
  readonly prefix: Uint8Array;
  readonly value: Uint8Array;

  constructor(o: LoadOptions) {
    const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
    const value = 'x'.repeat(o.dataSize); // memtier's non-random data
    this.binary = o.protocol === 'memcache_binary';
    this.prefix = enc(o.keyPrefix);
    this.value = enc(value);
    this.setHead = enc(`set ${o.keyPrefix}`);
    this.getHead = enc(`get ${o.keyPrefix}`);
    this.mgetKeyHead = enc(` ${o.keyPrefix}`);
    this.setTail = enc(` 0 0 ${o.dataSize}\r\n${value}\r\n`);
    this.expiryHead = enc(' 0 ');
    this.setTailAfterExpiry = enc(` ${o.dataSize}\r\n${value}\r\n`);
    const maxKey = 17;
    const maxSet = this.setHead.length + maxKey + this.expiryHead.length + 11 + this.setTailAfterExpiry.length;
    const maxGet = 3 + Math.max(1, o.multiKeyGet) * (this.mgetKeyHead.length + maxKey) + 2;
    const maxBinary = BIN_HEADER + 8 + this.prefix.length + maxKey + o.dataSize;
    this.maxRequest = this.binary ? maxBinary : Math.max(o.ratioSet > 0 ? maxSet : 0, o.ratioGet > 0 ? maxGet : 0);
  }
}

/** What connections of one thread share: options, wire fragments, buffers, stop flag. */
export class ThreadContext {
  stopping = false;
  /** Connections still running; the thread ends its run when it reaches 0. */
  running = 0;
  onIdle: () => void = () => {};
  constructor(
    readonly options: LoadOptions,
    readonly wire: Wire,
    readonly slab: WriteSlab,
    readonly readBuffer: Buffer,
    readonly stats: ThreadStats,
    /** --tls: the thread's context (loadSecureContext); null for plain connections */
    readonly secureContext: tls.SecureContext | null = null,
  ) {}
}

function decimalLength(n: number): number {
  if (n < 100000) return n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 10000 ? 4 : 5;
  if (n < 10000000000) return n < 1000000 ? 6 : n < 10000000 ? 7 : n < 100000000 ? 8 : n < 1000000000 ? 9 : 10;
  let len = 11;
  for (let p = 100000000000; n >= p; p *= 10) len++;
  return len;
}

function writeDecimal(b: Buffer, o: number, n: number): number {
  const end = o + decimalLength(n);
  let i = end;
  if (n <= 0x7fffffff) {
    while (n >= 10) {
      const q = (n / 10) | 0;
      b[--i] = CH_0 + n - q * 10;
      n = q;
    }
  } else {
    while (n >= 10) {
      const q = Math.floor(n / 10);
      b[--i] = CH_0 + n - q * 10;
      n = q;
    }
  }
  b[--i] = CH_0 + n;
  return end;
}

function copyBytes(dst: Buffer, o: number, src: Uint8Array): number {
  const n = src.length;
  if (n > 32) {
    dst.set(src, o);
    return o + n;
  }
  for (let i = 0; i < n; i++) dst[o + i] = src[i]!;
  return o + n;
}

export class LoadConnection {
  readonly socket: net.Socket;
  private readonly ctx: ThreadContext;
  private readonly keys: KeyGenerator;
  private readonly cap: number;
  private readonly limit: number;
  private readonly ratioSet: number;
  private readonly ratioGet: number;
  private readonly multi: number;
  private readonly expiryMin: number;
  private readonly expiryMax: number;

  // FIFO of outstanding requests
  private readonly sentAt: Float64Array;
  private readonly types: Uint8Array;
  private readonly nkeys: Uint16Array;
  private readonly reqSize: Uint32Array;
  private head = 0;
  private tail = 0;
  outstanding = 0;

  generated = 0;
  processed = 0;
  private setRatioCount = 0;
  private getRatioCount = 0;

  // reply parser state
  private skip = 0;
  private curHits = 0;
  private respBytes = 0;
  private line: Buffer = Buffer.allocUnsafe(512);
  private lineLen = 0;
  // binary: the response header read so far, and its status while its body is skipped
  private readonly header = Buffer.allocUnsafe(BIN_HEADER);
  private headerLen = 0;
  private status = -1;

  private connected = false;
  finished = false;

  constructor(ctx: ThreadContext, clientIndex: number) {
    const o = ctx.options;
    this.ctx = ctx;
    this.keys = new KeyGenerator(o, clientIndex);
    this.cap = o.pipeline;
    this.limit = o.requests;
    this.ratioSet = o.ratioSet;
    this.ratioGet = o.ratioGet;
    this.multi = o.multiKeyGet;
    this.expiryMin = o.expiryMin;
    this.expiryMax = o.expiryMax;
    this.sentAt = new Float64Array(this.cap);
    this.types = new Uint8Array(this.cap);
    this.nkeys = new Uint16Array(this.cap);
    this.reqSize = new Uint32Array(this.cap);
    if (ctx.secureContext !== null) {
      this.socket = connectTls(o, ctx.secureContext);
      this.socket.on('data', (chunk: Buffer) => this.onRead(chunk.length, chunk));
      return;
    }
    this.socket = net.connect({
      host: o.server,
      port: o.port,
      noDelay: true,
      onread: {
        buffer: ctx.readBuffer,
        callback: (nread: number, buf: Uint8Array): boolean => {
          this.onRead(nread, buf as Buffer);
          return true;
        },
      },
    });
  }

  /** Resolves once connected (over TLS: once the handshake is done); rejects with the connect or handshake error. */
  ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.socket.once('error', onError);
      this.socket.once(this.ctx.secureContext !== null ? 'secureConnect' : 'connect', () => {
        this.socket.off('error', onError);
        this.connected = true;
        this.socket.on('error', () => this.fail());
        this.socket.on('close', () => this.fail());
        resolve();
      });
    });
  }

  /** Starts the connection: fills its pipeline. ctx.running must already count it. */
  start(now: number): void {
    this.fill(now);
  }

  /** Called by the thread when it starts stopping, for connections that are idle. */
  stopIfIdle(): void {
    if (!this.finished && this.outstanding === 0) this.finish();
  }

  close(): void {
    this.finished = true;
    this.socket.removeAllListeners('close');
    this.socket.removeAllListeners('error');
    this.socket.on('error', () => {});
    this.socket.destroy();
  }

  private fail(): void {
    if (this.finished) return;
    if (this.connected) this.ctx.stats.connectionErrors++;
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (--this.ctx.running === 0) this.ctx.onIdle();
  }

  private onRead(n: number, buf: Buffer): void {
    if (this.finished) return;
    if (this.ctx.wire.binary) {
      this.onReadBinary(n, buf);
      return;
    }
    const now = performance.now();
    let p = 0;
    while (p < n) {
      const skip = this.skip;
      if (skip > 0) {
        const avail = n - p;
        if (avail < skip) {
          this.skip = skip - avail;
          this.respBytes += avail;
          break;
        }
        p += skip;
        this.respBytes += skip;
        this.skip = 0;
        continue;
      }
      let i = p;
      while (i < n && buf[i] !== LF) i++;
      if (i === n) {
        this.carry(buf, p, n);
        break;
      }
      if (this.lineLen > 0) {
        this.carry(buf, p, i + 1);
        const len = this.lineLen;
        this.lineLen = 0;
        if (!this.onLine(this.line, 0, len, now)) return;
      } else if (!this.onLine(buf, p, i + 1, now)) {
        return;
      }
      p = i + 1;
    }
    this.fill(now);
  }

  /** onRead for the binary protocol: a header, then its body skipped; each complete response ends a request. */
  private onReadBinary(n: number, buf: Buffer): void {
    const now = performance.now();
    let p = 0;
    while (p < n) {
      if (this.status < 0) {
        const take = Math.min(BIN_HEADER - this.headerLen, n - p);
        buf.copy(this.header, this.headerLen, p, p + take);
        this.headerLen += take;
        p += take;
        if (this.headerLen < BIN_HEADER) break;
        this.headerLen = 0;
        const h = this.header;
        if (h[0] !== BIN_RESPONSE || this.outstanding === 0) {
          this.protocolError();
          return;
        }
        this.status = h.readUInt16BE(6);
        this.skip = h.readUInt32BE(8);
        this.respBytes += BIN_HEADER;
      }
      const take = Math.min(this.skip, n - p);
      this.skip -= take;
      this.respBytes += take;
      p += take;
      if (this.skip > 0) break;
      const status = this.status;
      this.status = -1;
      const type = this.types[this.head]!;
      if (type === T_GET) {
        if (status === BIN_OK) this.curHits++;
        else if (status !== BIN_NOT_FOUND) this.ctx.stats.errors++;
      } else if (status !== BIN_OK) {
        this.ctx.stats.errors++;
      }
      this.complete(type, now);
    }
    this.fill(now);
  }

  /** Keeps the start of a line that continues in the next read. */
  private carry(buf: Buffer, from: number, to: number): void {
    const need = this.lineLen + (to - from);
    if (need > this.line.length) {
      if (need > 1 << 20) {
        // no reply line of ours is this long: the stream is not what we think it is
        this.protocolError();
        return;
      }
      const bigger = Buffer.allocUnsafe(need * 2);
      this.line.copy(bigger, 0, 0, this.lineLen);
      this.line = bigger;
    }
    buf.copy(this.line, this.lineLen, from, to);
    this.lineLen = need;
  }

  /** One reply line [s, e) including its LF. Returns false if the connection was dropped. */
  private onLine(b: Buffer, s: number, e: number, now: number): boolean {
    if (this.outstanding === 0) {
      this.protocolError();
      return false;
    }
    this.respBytes += e - s;
    const c = b[s];
    if (this.types[this.head] === T_GET) {
      if (c === CH_V) {
        // VALUE <key> <flags> <bytes> [<cas>]
        let j = s + 6;
        while (j < e && b[j] !== SP) j++;
        j++;
        while (j < e && b[j] !== SP) j++;
        j++;
        let len = 0;
        let d = (b[j] ?? 0) - CH_0;
        if (j >= e || d < 0 || d > 9) {
          this.protocolError();
          return false;
        }
        while (d >= 0 && d <= 9) {
          len = len * 10 + d;
          j++;
          d = (j < e ? b[j]! : 0) - CH_0;
        }
        this.skip = len + 2;
        this.curHits++;
        return true;
      }
      if (c !== CH_E || b[s + 1] !== CH_N) this.ctx.stats.errors++; // not END
      this.complete(T_GET, now);
      return true;
    }
    // set: STORED / NOT_STORED are answers; ERROR, CLIENT_ERROR, SERVER_ERROR are errors
    if ((c === CH_E && b[s + 1] === CH_R) || c === CH_C || (c === CH_S && b[s + 1] !== CH_T)) {
      this.ctx.stats.errors++;
    }
    this.complete(T_SET, now);
    return true;
  }

  private complete(type: number, now: number): void {
    const h = this.head;
    const st = this.ctx.stats;
    let lat = Math.round((now - this.sentAt[h]!) * 1000); // µs
    if (lat < 0) lat = 0;
    const bytes = this.reqSize[h]! + this.respBytes;
    this.respBytes = 0;
    if (type === T_GET) {
      const hits = this.curHits;
      this.curHits = 0;
      st.getOps++;
      st.getBytes += bytes;
      st.hits += hits;
      st.misses += this.nkeys[h]! - hits;
      st.getHist.recordValue(lat);
    } else {
      st.setOps++;
      st.setBytes += bytes;
      st.setHist.recordValue(lat);
    }
    this.head = h + 1 === this.cap ? 0 : h + 1;
    this.outstanding--;
    this.processed++;
  }

  private protocolError(): void {
    this.ctx.stats.errors++;
    this.fail();
    this.socket.destroy();
  }

  /** Tops the pipeline up to `cap` outstanding requests with one socket write. */
  private fill(now: number): void {
    const free = this.cap - this.outstanding;
    const ctx = this.ctx;
    if (free > 0 && !ctx.stopping && (this.limit === 0 || this.generated < this.limit)) {
      const slab = ctx.slab;
      slab.reserve(free * ctx.wire.maxRequest);
      const start = slab.off;
      const limit = this.limit;
      do {
        this.request(slab, now);
      } while (this.outstanding < this.cap && (limit === 0 || this.generated < limit));
      this.socket.write(slab.buf.subarray(start, slab.off));
      return;
    }
    if (this.outstanding === 0) this.finish();
  }

  /** Writes the next request of the set:get cycle into the slab and queues it. */
  private request(slab: WriteSlab, now: number): void {
    for (;;) {
      if (this.setRatioCount < this.ratioSet) {
        this.setRatioCount++;
        this.writeSet(slab, now);
        return;
      }
      if (this.getRatioCount < this.ratioGet) {
        if (this.multi > 0) {
          let n = this.ratioGet - this.getRatioCount;
          if (n > this.multi) n = this.multi;
          this.getRatioCount += n;
          this.writeMultiGet(slab, n, now);
        } else {
          this.getRatioCount++;
          this.writeGet(slab, now);
        }
        return;
      }
      this.setRatioCount = 0;
      this.getRatioCount = 0;
    }
  }

  /** A binary request header for `op` with a key of `keyLen` bytes, extras and value of the given sizes. */
  private binaryHeader(b: Buffer, o: number, op: number, extras: number, keyLen: number, valueLen: number): void {
    b.fill(0, o, o + BIN_HEADER);
    b[o] = BIN_REQUEST;
    b[o + 1] = op;
    b.writeUInt16BE(keyLen, o + 2);
    b[o + 4] = extras;
    b.writeUInt32BE(extras + keyLen + valueLen, o + 8);
  }

  private writeBinary(slab: WriteSlab, type: number, now: number): void {
    const w = this.ctx.wire;
    const b = slab.buf;
    const o0 = slab.off;
    const extras = type === T_SET ? 8 : 0;
    // The key first (its length is in the header), then the header in front of it.
    const keyAt = o0 + BIN_HEADER + extras;
    let o = copyBytes(b, keyAt, w.prefix);
    o = writeDecimal(b, o, type === T_SET ? this.keys.setKey() : this.keys.getKey());
    const keyLen = o - keyAt;
    const valueLen = type === T_SET ? w.value.length : 0;
    this.binaryHeader(b, o0, type === T_SET ? BIN_SET : BIN_GETK, extras, keyLen, valueLen);
    if (type === T_SET) {
      b.writeUInt32BE(0, o0 + BIN_HEADER); // flags
      b.writeUInt32BE(this.expiryMax > 0 ? this.keys.rng.range(this.expiryMin, this.expiryMax) : 0, o0 + BIN_HEADER + 4);
      o = copyBytes(b, o, w.value);
    }
    slab.off = o;
    this.push(type, 1, o - o0, now);
  }

  private writeSet(slab: WriteSlab, now: number): void {
    const w = this.ctx.wire;
    if (w.binary) {
      this.writeBinary(slab, T_SET, now);
      return;
    }
    const b = slab.buf;
    const o0 = slab.off;
    let o = copyBytes(b, o0, w.setHead);
    o = writeDecimal(b, o, this.keys.setKey());
    if (this.expiryMax > 0) {
      o = copyBytes(b, o, w.expiryHead);
      o = writeDecimal(b, o, this.keys.rng.range(this.expiryMin, this.expiryMax));
      o = copyBytes(b, o, w.setTailAfterExpiry);
    } else {
      o = copyBytes(b, o, w.setTail);
    }
    slab.off = o;
    this.push(T_SET, 1, o - o0, now);
  }

  private writeGet(slab: WriteSlab, now: number): void {
    if (this.ctx.wire.binary) {
      this.writeBinary(slab, T_GET, now);
      return;
    }
    const b = slab.buf;
    const o0 = slab.off;
    let o = copyBytes(b, o0, this.ctx.wire.getHead);
    o = writeDecimal(b, o, this.keys.getKey());
    b[o++] = 13;
    b[o++] = LF;
    slab.off = o;
    this.push(T_GET, 1, o - o0, now);
  }

  private writeMultiGet(slab: WriteSlab, n: number, now: number): void {
    const b = slab.buf;
    const o0 = slab.off;
    const head = this.ctx.wire.mgetKeyHead;
    b[o0] = 103; // g
    b[o0 + 1] = 101; // e
    b[o0 + 2] = 116; // t
    let o = o0 + 3;
    for (let i = 0; i < n; i++) {
      o = copyBytes(b, o, head);
      o = writeDecimal(b, o, this.keys.getKey());
    }
    b[o++] = 13;
    b[o++] = LF;
    slab.off = o;
    this.push(T_GET, n, o - o0, now);
  }

  private push(type: number, keys: number, size: number, now: number): void {
    const t = this.tail;
    this.sentAt[t] = now;
    this.types[t] = type;
    this.nkeys[t] = keys;
    this.reqSize[t] = size;
    this.tail = t + 1 === this.cap ? 0 : t + 1;
    this.outstanding++;
    this.generated++;
  }
}
