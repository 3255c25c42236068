// The start-up check of the Node internals the fast I/O path uses
// (src/io/internals.ts), on fake bindings, and the --io option.
import { test } from 'uvu';
import * as assert from 'uvu/assert';

import { checkInternals } from '../../src/io/internals.js';
import { parseArgv } from '../../src/config/argv.js';
import { parseConfigText } from '../../src/config/file.js';

const real = (process as unknown as { binding: (name: string) => Record<string, unknown> }).binding.bind(process);

/** The real bindings, with `change` applied to the one named. */
function bindingsWith(name: string, change: (b: Record<string, unknown>) => Record<string, unknown>): (n: string) => unknown {
  return (n) => (n === name ? change({ ...real(n) }) : real(n));
}

test('this Node has every internal the fast path uses', () => {
  const p = checkInternals(real);
  assert.ok(p.ok, p.ok ? '' : p.missing.join(', '));
});

test('a missing constructor is named, not found later as "not a constructor"', () => {
  const p = checkInternals(bindingsWith('tcp_wrap', (b) => ({ ...b, TCP: undefined })));
  assert.equal(p.ok ? [] : p.missing, ['tcp_wrap.TCP']);
});

test('a handle without a method the callers use is named with the method', () => {
  // A Pipe class whose handles lack useUserBuffer and writeUtf8String.
  const Pipe = real('pipe_wrap').Pipe as new (t: number) => Record<string, unknown>;
  class Thin {
    private readonly h: Record<string, unknown>;
    constructor(t: number) { this.h = new Pipe(t); }
    readStart(): void {} readStop(): void {} writeBuffer(): void {} writev(): void {} shutdown(): void {}
    connect(): void {} bind(): void {} listen(): void {} open(): void {}
    close(): void { (this.h.close as () => void).call(this.h); }
  }
  const p = checkInternals(bindingsWith('pipe_wrap', (b) => ({ ...b, Pipe: Thin })));
  assert.equal(p.ok ? [] : p.missing, ['pipe_wrap.Pipe#useUserBuffer', 'pipe_wrap.Pipe#writeUtf8String']);
});

test('a refused binding (node --permission) and no process.binding at all', () => {
  const refused = checkInternals((n) => {
    if (n === 'stream_wrap') return real(n);
    throw Object.assign(new Error('Access to this API has been restricted'), { code: 'ERR_ACCESS_DENIED' });
  });
  assert.equal(refused.ok ? [] : refused.missing, ["process.binding('tcp_wrap'): ERR_ACCESS_DENIED", "process.binding('pipe_wrap'): ERR_ACCESS_DENIED"]);
  const none = checkInternals(undefined);
  assert.equal(none.ok ? [] : none.missing, ['process.binding']);
});

test('--io and io: fast (the default) or portable, anything else refused', () => {
  const io = (argv: string[]): unknown => {
    const r = parseArgv(['-s', 'a', ...argv], { cpus: 2 });
    return r.kind === 'run' ? r.config.io : r.kind === 'error' ? r.message : r.kind;
  };
  assert.is(io([]), 'fast');
  assert.is(io(['--io', 'portable']), 'portable');
  assert.is(io(['--io=fast']), 'fast');
  assert.is(io(['--io', 'slow']), "mcrelay: invalid value 'slow' for --io: expected fast or portable");
  assert.equal(parseConfigText('io: portable\n', 'f.yml'), { config: { io: 'portable' } });
  assert.equal(parseConfigText('io: 1\n', 'f.yml'), { error: 'f.yml:1: io: expected fast or portable, got 1' });
});

test.run();
