// Types for the parts of the `flamegraph` npm package (thlorenz/flamegraph, a
// port of Brendan Gregg's flamegraph.pl) that bench/profile uses; it ships none.
declare module 'flamegraph' {
  interface FlamegraphOptions {
    fonttype?: string;
    fontsize?: number;
    imagewidth?: number;
    frameheight?: number;
    fontwidth?: number;
    /** frames narrower than this many pixels are dropped (with removenarrows) */
    minwidth?: number;
    countname?: string;
    colors?: 'hot' | 'mem' | 'io';
    hash?: boolean;
    titletext?: string;
    nametype?: string;
    removenarrows?: boolean;
  }
  interface CpuProfileTree {
    head: {
      functionName: string;
      url: string;
      lineNumber: number;
      hitCount: number;
      children: CpuProfileTree['head'][];
    };
  }
  interface Flamegraph {
    /** Renders an SVG flame graph of a DevTools-style profile tree. */
    fromCpuProfile(profile: CpuProfileTree, opts?: FlamegraphOptions): string;
  }
  const flamegraph: Flamegraph;
  export = flamegraph;
}
