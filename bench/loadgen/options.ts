// memtier_benchmark-compatible options for the memcache protocols: the same
// option names, defaults and validation messages, so `npm run bench` can pass one
// argument list to either tool.
//
// Deliberate differences from memtier_benchmark (documented in usage()):
// - --protocol defaults to memcache_text (memtier: redis); memcache_binary is the
//   other one accepted (gets as GetK, sets as Set; no multi-key gets);
// - -p/--port defaults to 11211 (memtier: 6379, the redis port);
// - --safety-cap=SECS is ours: the hard upper bound of any run;
// - the TLS options (--cacert, --cert, --key, --tls-skip-verify, --sni) are
//   refused without --tls, and --key without --cert (memtier ignores them);
//   without --cacert the server's certificate is checked against Node's root
//   CAs (memtier loads none).

export type KeyPattern = 'R' | 'S' | 'G' | 'P';
export type Protocol = 'memcache_text' | 'memcache_binary';

export interface LoadOptions {
  server: string;
  port: number;
  protocol: Protocol;
  /** Connections per thread (memtier's "clients"). */
  clients: number;
  threads: number;
  /** Requests each connection keeps outstanding. */
  pipeline: number;
  /** --ratio=S:G, sets then gets per cycle, per connection. */
  ratioSet: number;
  ratioGet: number;
  dataSize: number;
  keyPrefix: string;
  keyMinimum: number;
  keyMaximum: number;
  keyPatternSet: KeyPattern;
  keyPatternGet: KeyPattern;
  /** Gaussian parameters; 0 means memtier's default (range/6, centre of the range). */
  keyStddev: number;
  keyMedian: number;
  /** Seconds; 0 when the run is bounded by requests instead. */
  testTime: number;
  /** Requests per connection; 0 when the run is bounded by testTime instead. */
  requests: number;
  /** 0: single-key gets; N: gets carry up to N keys. */
  multiKeyGet: number;
  expiryMin: number;
  expiryMax: number;
  /** Every connection gets its own random seed (memtier: all share one). */
  distinctClientSeed: boolean;
  /** Base random seed; memtier uses a constant unless --randomize. */
  randomSeed: number;
  hideHistogram: boolean;
  jsonOutFile: string | null;
  /** Hard limit on the whole run, in seconds (connect + run + drain). */
  safetyCapSeconds: number;
  /** --tls: every connection speaks TLS (bench/loadgen/tls.ts). */
  tls: boolean;
  /** --cacert: PEM file of the CAs the server's certificate must chain to (its name is not checked, as memtier does not). */
  tlsCacert: string | null;
  /** --cert / --key: a client certificate (chain) and its key; the key defaults to the --cert file, as memtier's. */
  tlsCert: string | null;
  tlsKey: string | null;
  /** --tls-skip-verify: accept any server certificate. */
  tlsSkipVerify: boolean;
  /** --sni: the server name sent in the hello; none without it. */
  tlsSni: string | null;
}

export class LoadOptionsError extends Error {
  override name = 'LoadOptionsError';
}

export const DEFAULTS: Readonly<LoadOptions> = Object.freeze({
  server: '127.0.0.1',
  port: 11211,
  protocol: 'memcache_text',
  clients: 50,
  threads: 4,
  pipeline: 1,
  ratioSet: 1,
  ratioGet: 10,
  dataSize: 32,
  keyPrefix: 'memtier-',
  keyMinimum: 0,
  keyMaximum: 10_000_000,
  keyPatternSet: 'R',
  keyPatternGet: 'R',
  keyStddev: 0,
  keyMedian: 0,
  testTime: 0,
  requests: 0,
  multiKeyGet: 0,
  expiryMin: 0,
  expiryMax: 0,
  distinctClientSeed: false,
  randomSeed: 0,
  hideHistogram: false,
  jsonOutFile: null,
  safetyCapSeconds: 0,
  tls: false,
  tlsCacert: null,
  tlsCert: null,
  tlsKey: null,
  tlsSkipVerify: false,
  tlsSni: null,
});

/** memtier's default run when neither --test-time nor --requests is given. */
const DEFAULT_REQUESTS = 10_000;
const DEFAULT_CAP_FOR_REQUESTS_S = 600;
const CAP_SLACK_S = 30;

function fail(msg: string): never {
  throw new LoadOptionsError(msg);
}

function isPositiveInt(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0;
}

/** Fills defaults, derives what memtier derives, and validates. */
export function resolveOptions(input: Partial<LoadOptions> = {}): LoadOptions {
  const o: LoadOptions = { ...DEFAULTS };
  for (const [k, v] of Object.entries(input)) {
    if (v !== undefined) (o as unknown as Record<string, unknown>)[k] = v;
  }
  if (o.protocol !== 'memcache_text' && o.protocol !== 'memcache_binary') {
    fail(`protocol '${String(o.protocol)}' is not supported: this load generator speaks memcache_text and memcache_binary`);
  }
  if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) fail('port must be a number in the range [1-65535].');
  if (!isPositiveInt(o.clients)) fail('clients must be greater than zero.');
  if (!isPositiveInt(o.threads)) fail('threads must be greater than zero.');
  if (!isPositiveInt(o.pipeline)) fail('pipeline must be greater than zero.');
  if (o.pipeline > 65535) fail('pipeline must be at most 65535.');
  if (!Number.isInteger(o.ratioSet) || !Number.isInteger(o.ratioGet) || o.ratioSet < 0 || o.ratioGet < 0 ||
      o.ratioSet + o.ratioGet === 0) {
    fail('ratio must be expressed as [0-n]:[0-n].');
  }
  if (!isPositiveInt(o.dataSize)) fail('data-size must be greater than zero.');
  if (!Number.isSafeInteger(o.keyMinimum) || o.keyMinimum < 0) fail('key-minimum must be greater than zero.');
  if (!isPositiveInt(o.keyMaximum)) fail('key-maximum must be greater than zero.');
  if (o.keyMaximum < o.keyMinimum) fail('key-maximum must not be smaller than key-minimum.');
  for (const p of [o.keyPatternSet, o.keyPatternGet]) {
    if (p !== 'R' && p !== 'S' && p !== 'G' && p !== 'P') fail('key-pattern must be in the format of [S/R/G/P]:[S/R/G/P].');
  }
  if ((o.keyStddev > 0 || o.keyMedian > 0) && o.keyPatternSet !== 'G' && o.keyPatternGet !== 'G') {
    fail('key-stddev and key-median are only allowed together with key-pattern set to G.');
  }
  if (o.keyMedian !== 0 && (o.keyMedian < o.keyMinimum || o.keyMedian > o.keyMaximum)) {
    fail('key-median must be between key-minimum and key-maximum.');
  }
  if (o.keyStddev < 0 || o.keyMedian < 0) fail('key-stddev and key-median must be greater than zero.');
  if (!Number.isInteger(o.multiKeyGet) || o.multiKeyGet < 0) fail('multi-key-get must be greater than zero.');
  if (o.multiKeyGet > 10_000) fail('multi-key-get must be at most 10000.');
  if (o.multiKeyGet > 0 && o.protocol === 'memcache_binary') fail('multi-key-get is not supported with memcache_binary.');
  if (!Number.isInteger(o.expiryMin) || !Number.isInteger(o.expiryMax) || o.expiryMin < 0 || o.expiryMax < o.expiryMin) {
    fail('expiry-range must be expressed as [0-n]-[1-n].');
  }
  if (o.testTime && o.requests) fail('--test-time and --requests are mutually exclusive.');
  if (!(o.testTime >= 0) || !Number.isFinite(o.testTime)) fail('test time must be greater than zero.');
  if (!Number.isSafeInteger(o.requests) || o.requests < 0) fail('requests must be greater than zero.');
  if (!o.testTime && !o.requests) o.requests = DEFAULT_REQUESTS;
  if (!Number.isInteger(o.randomSeed)) fail('random seed must be an integer.');
  if (!o.safetyCapSeconds) {
    o.safetyCapSeconds = o.testTime ? o.testTime + CAP_SLACK_S : DEFAULT_CAP_FOR_REQUESTS_S;
  }
  if (!(o.safetyCapSeconds > 0)) fail('safety-cap must be greater than zero.');
  if (o.keyPrefix.length > 200 || /[\s\x00-\x1f]/.test(o.keyPrefix)) fail('key-prefix must be at most 200 printable characters without spaces.');
  if (!o.tls && (o.tlsCacert !== null || o.tlsCert !== null || o.tlsKey !== null || o.tlsSkipVerify || o.tlsSni !== null)) {
    fail('--cacert, --cert, --key, --tls-skip-verify and --sni need --tls.');
  }
  if (o.tlsKey !== null && o.tlsCert === null) fail('--key needs --cert.');
  return o;
}

type Setter = (o: Partial<LoadOptions>, value: string) => void;

function uint(name: string, allowZero = false): (v: string) => number {
  return (v) => {
    const n = /^\d+$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || (!allowZero && n === 0)) fail(`${name} must be greater than zero.`);
    return n;
  };
}

function pattern(v: string): [KeyPattern, KeyPattern] {
  const m = /^([RSGP]):([RSGP])$/.exec(v);
  if (!m) fail('key-pattern must be in the format of [S/R/G/P]:[S/R/G/P].');
  return [m[1] as KeyPattern, m[2] as KeyPattern];
}

// Long name -> [short name or '', takes a value, setter]
const OPTIONS: Record<string, [string, boolean, Setter]> = {
  server: ['s', true, (o, v) => { o.server = v; }],
  port: ['p', true, (o, v) => {
    const n = /^\d+$/.test(v) ? Number(v) : NaN;
    if (!(n >= 1 && n <= 65535)) fail('port must be a number in the range [1-65535].');
    o.port = n;
  }],
  protocol: ['P', true, (o, v) => {
    if (v !== 'memcache_text' && v !== 'memcache_binary') {
      if (v === 'redis') fail(`protocol '${v}' is not supported by this load generator: only memcache_text and memcache_binary`);
      fail("supported protocols are 'memcache_text' and 'memcache_binary' (this load generator speaks only memcache).");
    }
    o.protocol = v;
  }],
  requests: ['n', true, (o, v) => {
    if (v === 'allkeys') { o.requests = -1; return; }
    o.requests = uint('requests')(v);
  }],
  clients: ['c', true, (o, v) => { o.clients = uint('clients')(v); }],
  threads: ['t', true, (o, v) => { o.threads = uint('threads')(v); }],
  'test-time': ['', true, (o, v) => { o.testTime = uint('test time')(v); }],
  ratio: ['', true, (o, v) => {
    const m = /^(\d+):(\d+)$/.exec(v);
    if (!m || Number(m[1]) + Number(m[2]) === 0) fail('ratio must be expressed as [0-n]:[0-n].');
    o.ratioSet = Number(m[1]);
    o.ratioGet = Number(m[2]);
  }],
  pipeline: ['', true, (o, v) => { o.pipeline = uint('pipeline')(v); }],
  'data-size': ['d', true, (o, v) => { o.dataSize = uint('data-size')(v); }],
  'expiry-range': ['', true, (o, v) => {
    const m = /^(\d+)-(\d+)$/.exec(v);
    if (!m || Number(m[2]) < Number(m[1])) fail('expiry-range must be expressed as [0-n]-[1-n].');
    o.expiryMin = Number(m[1]);
    o.expiryMax = Number(m[2]);
  }],
  'key-prefix': ['', true, (o, v) => { o.keyPrefix = v; }],
  'key-minimum': ['', true, (o, v) => { o.keyMinimum = uint('key-minimum')(v); }],
  'key-maximum': ['', true, (o, v) => { o.keyMaximum = uint('key-maximum')(v); }],
  'key-pattern': ['', true, (o, v) => { [o.keyPatternSet, o.keyPatternGet] = pattern(v); }],
  'key-stddev': ['', true, (o, v) => {
    const n = Number(v);
    if (!(n > 0)) fail('key-stddev must be greater than zero.');
    o.keyStddev = n;
  }],
  'key-median': ['', true, (o, v) => {
    const n = Number(v);
    if (!(n > 0)) fail('key-median must be greater than zero.');
    o.keyMedian = n;
  }],
  'multi-key-get': ['', true, (o, v) => { o.multiKeyGet = uint('multi-key-get')(v); }],
  'distinct-client-seed': ['', false, (o) => { o.distinctClientSeed = true; }],
  randomize: ['', false, (o) => { o.randomSeed = (Date.now() ^ (process.pid << 16) ^ Math.floor(Math.random() * 0x7fffffff)) | 0; }],
  'hide-histogram': ['', false, (o) => { o.hideHistogram = true; }],
  'json-out-file': ['', true, (o, v) => { o.jsonOutFile = v; }],
  'safety-cap': ['', true, (o, v) => { o.safetyCapSeconds = uint('safety-cap')(v); }],
  tls: ['', false, (o) => { o.tls = true; }],
  cacert: ['', true, (o, v) => { o.tlsCacert = v; }],
  cert: ['', true, (o, v) => { o.tlsCert = v; }],
  key: ['', true, (o, v) => { o.tlsKey = v; }],
  'tls-skip-verify': ['', false, (o) => { o.tlsSkipVerify = true; }],
  sni: ['', true, (o, v) => { o.tlsSni = v; }],
};

const SHORT: Record<string, string> = {};
for (const [long, [short]] of Object.entries(OPTIONS)) if (short) SHORT[short] = long;

export interface ParsedArgs {
  options: LoadOptions;
  help: boolean;
}

/** Parses memtier-style argv (getopt_long: --opt=v, --opt v, -o v, -ov). */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const partial: Partial<LoadOptions> = {};
  let help = false;
  let allKeys = false;
  let sawRequests = false;
  let sawTestTime = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    let name: string;
    let inline: string | undefined;
    if (arg === '-h' || arg === '--help') { help = true; continue; }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
    } else if (arg.startsWith('-') && arg.length >= 2) {
      const long = SHORT[arg[1]!];
      if (!long) fail(`unknown option '${arg}'`);
      name = long;
      inline = arg.length > 2 ? arg.slice(2) : undefined;
    } else {
      fail(`unexpected argument '${arg}'`);
    }
    const spec = OPTIONS[name];
    if (!spec) fail(`unknown or unsupported option '--${name}'`);
    const [, takesValue, set] = spec;
    let value = '';
    if (takesValue) {
      if (inline !== undefined) value = inline;
      else if (i + 1 < argv.length) value = argv[++i]!;
      else fail(`option '--${name}' requires a value`);
    } else if (inline !== undefined) {
      fail(`option '--${name}' takes no value`);
    }
    set(partial, value);
    if (name === 'requests') {
      sawRequests = true;
      if (partial.requests === -1) { allKeys = true; partial.requests = 0; }
    }
    if (name === 'test-time') sawTestTime = true;
    if ((name === 'requests' || name === 'test-time') && sawRequests && sawTestTime) {
      fail('--test-time and --requests are mutually exclusive.');
    }
  }
  if (allKeys) {
    // memtier: -n allkeys covers the key range once (per client, or split across clients with P:P)
    const min = partial.keyMinimum ?? DEFAULTS.keyMinimum;
    const max = partial.keyMaximum ?? DEFAULTS.keyMaximum;
    let n = max - min;
    if (partial.keyPatternSet === 'P' && partial.keyPatternGet === 'P') {
      n = Math.floor(n / ((partial.clients ?? DEFAULTS.clients) * (partial.threads ?? DEFAULTS.threads))) + 1;
    }
    partial.requests = Math.max(1, n);
  }
  return { options: resolveOptions(partial), help };
}

export function usage(): string {
  return `Usage: node dist/bench/loadgen/cli.js [options]
mcrelay's load generator: memtier_benchmark's options and output for the memcache
protocols (used by npm run bench when memtier_benchmark is not installed).

Connection and General Options:
  -s, --server=ADDR              Server address (default: 127.0.0.1)
  -p, --port=PORT                Server port (default: 11211; memtier: 6379)
  -P, --protocol=PROTOCOL        memcache_text (the default here) or memcache_binary
                                 (gets as GetK, sets as Set; no --multi-key-get)
      --json-out-file=FILE       Name of JSON output file, if not set, will not print to json
      --hide-histogram           Don't print detailed latency histogram
      --safety-cap=SECS          Hard limit of the whole run (default: test-time + 30, or 600)
      --tls                      Enable SSL/TLS transport security
      --cert=FILE                Use specified client certificate for TLS
      --key=FILE                 Use specified private key for TLS (default: the --cert file)
      --cacert=FILE              Use specified CA certs bundle for TLS (default: Node's root CAs;
                                 the certificate's chain is checked, not its name, as in memtier)
      --tls-skip-verify          Skip verification of server certificate
      --sni=STRING               Add an SNI header
      --help                     Display this help

Test Options:
  -n, --requests=NUMBER          Number of total requests per client (default: 10000)
                                 use 'allkeys' to run on the entire key-range
  -c, --clients=NUMBER           Number of clients (connections) per thread (default: 50)
  -t, --threads=NUMBER           Number of threads (default: 4)
      --test-time=SECS           Number of seconds to run the test
      --ratio=RATIO              Set:Get ratio (default: 1:10)
      --pipeline=NUMBER          Number of concurrent pipelined requests (default: 1)
      --multi-key-get=NUM        Enable multi-key get commands, up to NUM keys (default: 0)
      --distinct-client-seed     Use a different random seed for each client
      --randomize                random seed based on timestamp (default is constant value)

Object Options:
  -d  --data-size=SIZE           Object data size (default: 32)
      --expiry-range=RANGE       Use random expiry values from the specified range (min-max)

Key Options:
      --key-prefix=PREFIX        Prefix for keys (default: "memtier-")
      --key-minimum=NUMBER       Key ID minimum value (default: 0)
      --key-maximum=NUMBER       Key ID maximum value (default: 10000000)
      --key-pattern=PATTERN      Set:Get pattern (default: R:R)
                                 G for Gaussian distribution.
                                 R for uniform Random.
                                 S for Sequential.
                                 P for Parallel (Sequential were each client has a subset of the key-range).
      --key-stddev               The standard deviation used in the Gaussian distribution
                                 (default is key range / 6)
      --key-median               The median point used in the Gaussian distribution
                                 (default is the center of the key range)
`;
}
