// Messages between the main thread (run.ts) and the load threads (worker.ts).
import type { LoadOptions } from './options.js';

export interface WorkerInit {
  options: LoadOptions;
  threadIndex: number;
}

export type ToWorker = { type: 'go' } | { type: 'abort' };

export interface ThreadResult {
  /** Epoch milliseconds (sub-ms precision) of the first request and the last reply. */
  startTime: number;
  endTime: number;
  setOps: number;
  getOps: number;
  hits: number;
  misses: number;
  setBytes: number;
  getBytes: number;
  errors: number;
  connectionErrors: number;
  interrupted: boolean;
  /** HdrHistogram V2 compressed base64, microseconds. */
  setHistogram: string;
  getHistogram: string;
}

export type FromWorker =
  | { type: 'ready' }
  | { type: 'error'; message: string }
  | { type: 'progress'; ops: number; bytes: number }
  | { type: 'done'; result: ThreadResult };
