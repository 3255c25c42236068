// Reading V8 .cpuprofile files (what `node --cpu-prof` writes, one per thread):
// how busy a thread was, which functions took the most self time, and the
// nested-tree form the `flamegraph` package renders (the older DevTools format,
// `head` with children, that predates the flat `nodes` list).

export interface CallFrame {
  functionName: string;
  url: string;
  /** 0-based */
  lineNumber: number;
  columnNumber: number;
}

export interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  /** µs before each sample */
  timeDeltas: number[];
}

/** The tree the flamegraph package's fromCpuProfile() walks. */
export interface TreeNode {
  functionName: string;
  url: string;
  lineNumber: number;
  hitCount: number;
  children: TreeNode[];
}

const IDLE = '(idle)';

/** µs attributed to each node id: a sample owns the time up to the next one. */
export function selfMicros(p: CpuProfile): Map<number, number> {
  const out = new Map<number, number>();
  const n = p.samples.length;
  for (let i = 0; i < n; i++) {
    const dt = i + 1 < n ? p.timeDeltas[i + 1]! : 0;
    out.set(p.samples[i]!, (out.get(p.samples[i]!) ?? 0) + Math.max(dt, 0));
  }
  return out;
}

export interface Busy {
  totalMicros: number;
  idleMicros: number;
  busyMicros: number;
}

export function busy(p: CpuProfile): Busy {
  const self = selfMicros(p);
  let total = 0;
  let idle = 0;
  for (const node of p.nodes) {
    const t = self.get(node.id) ?? 0;
    total += t;
    if (node.callFrame.functionName === IDLE) idle += t;
  }
  return { totalMicros: total, idleMicros: idle, busyMicros: total - idle };
}

/** "name file:line", with file paths shortened to the repository (or node_modules). */
export function frameName(f: CallFrame, root: string): string {
  const name = f.functionName === '' ? '(anonymous)' : f.functionName;
  if (f.url === '') return name;
  return `${name} ${shortUrl(f.url, root)}:${f.lineNumber + 1}`;
}

function shortUrl(url: string, root: string): string {
  let u = url.startsWith('file://') ? decodeURIComponent(url.slice(7)) : url;
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) u = u.slice(nm + 1);
  else if (u.startsWith(root)) u = u.slice(root.length).replace(/^\//, '');
  return u;
}

export interface SelfTime {
  name: string;
  micros: number;
  /** % of the thread's busy (non-idle) time */
  percentOfBusy: number;
}

/** Functions by self time (all call sites of one function added up), idle excluded. */
export function topSelfTime(p: CpuProfile, root: string, count: number): SelfTime[] {
  const self = selfMicros(p);
  const byName = new Map<string, number>();
  for (const node of p.nodes) {
    if (node.callFrame.functionName === IDLE) continue;
    const t = self.get(node.id) ?? 0;
    if (t === 0) continue;
    const name = frameName(node.callFrame, root);
    byName.set(name, (byName.get(name) ?? 0) + t);
  }
  const { busyMicros } = busy(p);
  return [...byName.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, micros]) => ({ name, micros, percentOfBusy: (100 * micros) / busyMicros }));
}

/**
 * The nested tree, weighted in µs of self time (so stalls between samples are
 * not lost), without the idle node: the graph shows where the busy time went.
 */
export function toTree(p: CpuProfile, root: string): TreeNode {
  const self = selfMicros(p);
  const byId = new Map<number, ProfileNode>(p.nodes.map((n) => [n.id, n]));
  // Quotes would end the SVG attribute or the JS string the renderer puts names in.
  const clean = (s: string): string => s.replace(/["']/g, '');
  const build = (node: ProfileNode): TreeNode => ({
    functionName: clean(node.callFrame.functionName === '' ? '(anonymous)' : node.callFrame.functionName),
    url: node.callFrame.url === '' ? '' : clean(shortUrl(node.callFrame.url, root)),
    lineNumber: node.callFrame.lineNumber + 1,
    hitCount: Math.round(self.get(node.id) ?? 0),
    children: (node.children ?? [])
      .map((id) => byId.get(id)!)
      .filter((c) => c.callFrame.functionName !== IDLE)
      .map(build),
  });
  // The root is the node no other node lists as a child.
  const childIds = new Set<number>();
  for (const n of p.nodes) for (const c of n.children ?? []) childIds.add(c);
  const top = p.nodes.find((n) => !childIds.has(n.id));
  if (top === undefined) throw new Error('profile has no root node');
  return build(top);
}
