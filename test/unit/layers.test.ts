// The layers as DESIGN.md's "Layout" draws them, checked on the sources: every
// relative import of every .ts file under src/ (import, import type, export ...
// from, import(), import('...').T in a type), read with TypeScript's own parser.
//
//   cli, ctl, plan, index  ->  main/  ->  worker/  ->  backend/  ->  protocol/ routing/ io/  ->  config/ shared/
//                        (main takes only types of worker/: the messages between threads)
//
// Type-only imports count: a cycle of types is still two files that cannot be
// understood, or moved, one without the other.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

// compiled to dist/test/unit/
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const SRC = path.join(ROOT, 'src');

interface Edge {
  /** the file imported, relative to src/ ('worker/request.ts') */
  to: string;
  /** nothing of it exists at run time: import type, export type, an import('...') type */
  typeOnly: boolean;
}

/** The relative imports of one source text, in the order written; specifiers as written. */
function importsOf(text: string): Array<{ spec: string; typeOnly: boolean }> {
  const file = ts.createSourceFile('x.ts', text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: Array<{ spec: string; typeOnly: boolean }> = [];
  const add = (node: ts.Node | undefined, typeOnly: boolean): void => {
    if (node !== undefined && ts.isStringLiteralLike(node) && node.text.startsWith('.')) out.push({ spec: node.text, typeOnly });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause;
      // import { type A, type B } from: erased too, like import type
      const allTypes = clause !== undefined && (clause.isTypeOnly || (clause.name === undefined && clause.namedBindings !== undefined &&
        ts.isNamedImports(clause.namedBindings) && clause.namedBindings.elements.length > 0 && clause.namedBindings.elements.every((e) => e.isTypeOnly)));
      add(node.moduleSpecifier, allTypes);
    } else if (ts.isExportDeclaration(node)) {
      const named = node.exportClause;
      const allTypes = node.isTypeOnly || (named !== undefined && ts.isNamedExports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly));
      add(node.moduleSpecifier, allTypes);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node.arguments[0], false);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal, true);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return out;
}

/** Every .ts file under src/, relative to it, with its imports resolved to files relative to src/. */
function graph(): Map<string, Edge[]> {
  const files = (fs.readdirSync(SRC, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => f.split(path.sep).join('/'))
    .sort();
  const g = new Map<string, Edge[]>();
  for (const f of files) {
    const edges: Edge[] = [];
    for (const { spec, typeOnly } of importsOf(fs.readFileSync(path.join(SRC, f), 'utf8'))) {
      const to = path.posix.normalize(path.posix.join(path.posix.dirname(f), spec)).replace(/\.js$/, '.ts');
      edges.push({ to, typeOnly });
    }
    g.set(f, edges);
  }
  return g;
}

const G = graph();

/** The folder of a file under src/, or '' for the top-level files (cli.ts, errors.ts...). */
function layer(file: string): string {
  const slash = file.indexOf('/');
  return slash < 0 ? '' : file.slice(0, slash);
}

/** Imports from files of `from` (a folder) into files of a folder `to` lists; as "a.ts -> b.ts" lines. */
function crossing(from: string, to: (layer: string) => boolean, keep: (e: Edge) => boolean = () => true): string[] {
  const out: string[] = [];
  for (const [f, edges] of G) {
    if (layer(f) !== from) continue;
    for (const e of edges) if (to(layer(e.to)) && keep(e)) out.push(`src/${f} -> src/${e.to}${e.typeOnly ? ' (type)' : ''}`);
  }
  return out;
}

/** The strongly connected components of more than one file (or a file importing itself), Tarjan's. */
function cycles(g: Map<string, Edge[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const connect = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const { to: w } of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (g.get(v) ?? []).some((e) => e.to === v)) out.push(scc.sort());
    }
  };
  for (const v of g.keys()) if (!index.has(v)) connect(v);
  return out;
}

/** The shortest way from `start` back to itself inside `within` (breadth first), as "a -> b -> a". */
function shortestCycle(g: Map<string, Edge[]>, start: string, within: Set<string>): string {
  const from = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i]!;
    for (const { to: w } of g.get(v) ?? []) {
      if (!within.has(w)) continue;
      if (w === start) {
        const route = [start];
        for (let u: string | undefined = v; u !== undefined && u !== start; u = from.get(u)) route.unshift(u);
        route.unshift(start);
        return route.map((f) => `src/${f}`).join(' -> ');
      }
      if (!from.has(w)) {
        from.set(w, v);
        queue.push(w);
      }
    }
  }
  return `src/${start}`;
}

test('the import reader finds every form: import, import type, export from, import(), an import type, across lines; not in comments', () => {
  const text = [
    "import { a } from './a.js';",
    "import type { B } from '../b.js';",
    "import {\n  type C,\n  type D,\n} from './c.js';",
    "import { type E, f } from './e.js';",
    "import './side.js';",
    "export { g } from './g.js';",
    "export type { H } from './h.js';",
    "export * from './star.js';",
    "import fs from 'node:fs';",
    "// import { no } from './comment.js';",
    "/* export { no } from './block.js'; */",
    "const s = \"import { no } from './string.js'\";",
    "type T = import('./t.js').T;",
    "async function f(): Promise<void> { await import('./lazy.js'); }",
  ].join('\n');
  assert.equal(importsOf(text), [
    { spec: './a.js', typeOnly: false },
    { spec: '../b.js', typeOnly: true },
    { spec: './c.js', typeOnly: true },
    { spec: './e.js', typeOnly: false },
    { spec: './side.js', typeOnly: false },
    { spec: './g.js', typeOnly: false },
    { spec: './h.js', typeOnly: true },
    { spec: './star.js', typeOnly: false },
    { spec: './t.js', typeOnly: true },
    { spec: './lazy.js', typeOnly: false },
  ]);
});

test('every relative import under src/ names a .ts file under src/ (the graph below is the real one)', () => {
  const missing: string[] = [];
  let count = 0;
  for (const [f, edges] of G) {
    for (const e of edges) {
      count++;
      if (!G.has(e.to)) missing.push(`src/${f} -> ${e.to}`);
    }
  }
  assert.equal(missing, []);
  assert.ok(G.size > 50 && count > 200, `read ${G.size} files and ${count} imports: src/ not found whole?`);
});

test('no import cycle in src/, type-only imports included', () => {
  const found = cycles(G).map((scc) => {
    const within = new Set(scc);
    const routes = [...new Set(scc.map((f) => shortestCycle(G, f, within)))];
    return `${scc.length} files: ${scc.map((f) => `src/${f}`).join(', ')}\n    ${routes.join('\n    ')}`;
  });
  assert.ok(found.length === 0, `import cycles:\n  ${found.join('\n  ')}`);
});

test('worker/ never imports main/ (the worker runs without the main thread\'s modules)', () => {
  assert.equal(crossing('worker', (l) => l === 'main'), []);
});

test('backend/ imports neither worker/ nor main/ (the pending-op interface is its own)', () => {
  assert.equal(crossing('backend', (l) => l === 'worker' || l === 'main'), []);
});

test('shared/ imports only shared/ and the error codes its per-code slots are laid out by (SharedArrayBuffer layouts only)', () => {
  const out = crossing('shared', (l) => l !== 'shared').filter((e) => !e.endsWith(' -> src/errors.ts'));
  assert.equal(out, []);
  // errors.ts stays a leaf, so shared/ still reaches nothing else through it.
  assert.equal(G.get('errors.ts')?.map((e) => e.to) ?? [], [], 'errors.ts imports nothing');
});

test('main/ takes only types from worker/ (the messages between threads): no data-path code runs on the main thread', () => {
  assert.equal(crossing('main', (l) => l === 'worker', (e) => !e.typeOnly), []);
});

test('the layers under the worker (protocol/, routing/, io/, config/) import nothing of main/, worker/ or backend/', () => {
  const above = (l: string): boolean => l === 'main' || l === 'worker' || l === 'backend';
  assert.equal(['protocol', 'routing', 'io', 'config'].flatMap((l) => crossing(l, above)), []);
});

test('nothing imports the entry points (cli.ts, ctl.ts, plan.ts, index.ts) but cli.ts itself (ctl and plan, loaded on demand)', () => {
  const entries = new Set(['cli.ts', 'ctl.ts', 'plan.ts', 'index.ts']);
  const out: string[] = [];
  for (const [f, edges] of G) {
    for (const e of edges) if (entries.has(e.to) && !(f === 'cli.ts' && (e.to === 'ctl.ts' || e.to === 'plan.ts'))) out.push(`src/${f} -> src/${e.to}`);
  }
  assert.equal(out, []);
});

test.run();
