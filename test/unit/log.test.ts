// Log lines: one JSON object per line on stderr, in pino's layout (what log
// shippers were set up for before the proxy wrote its own lines).
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatLine } from '../../src/log.js';

test('a line is one JSON object: level, time, pid, hostname, the fields in order, msg last', () => {
  const line = formatLine('warn', 'server marked down', { server: 'a:1', reason: 'say "no"\nnow', count: 3, gone: undefined, list: ['x'] }, new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 6)));
  assert.ok(line.endsWith('}\n'));
  assert.is(line.indexOf('\n'), line.length - 1, 'nothing inside the line breaks it');
  const o = JSON.parse(line) as Record<string, unknown>;
  assert.equal(Object.keys(o), ['level', 'time', 'pid', 'hostname', 'server', 'reason', 'count', 'list', 'msg']);
  assert.equal(o, { level: 'warn', time: '2025-01-02T03:04:05.006Z', pid: process.pid, hostname: os.hostname(), server: 'a:1', reason: 'say "no"\nnow', count: 3, list: ['x'], msg: 'server marked down' });
});

test('log.* writes whole lines to stderr; debug only after setLogLevel(1)', () => {
  const logModule = new URL('../../src/log.js', import.meta.url).href;
  const script = `import(${JSON.stringify(logModule)}).then(({ log, setLogLevel }) => {
    log.info('one', { n: 1 }); log.debug('hidden'); setLogLevel(1); log.debug('two'); log.error('three');
  });`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, '');
  const lines = r.stderr.split('\n');
  assert.is(lines.pop(), '', 'the last line ends with a newline');
  assert.equal(lines.map((l) => { const o = JSON.parse(l) as { level: string; msg: string }; return `${o.level} ${o.msg}`; }), ['info one', 'debug two', 'error three']);
});

test.run();
