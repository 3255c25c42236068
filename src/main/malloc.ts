// glibc's allocator keeps what a worker thread frees inside that thread's malloc
// arena: after a giant get, the tens of megabytes its reply buffers took stay in
// the process's RSS although nothing uses them (the arena shrinks from its top
// only, and glibc raises its own thresholds after large frees). With a fixed
// mmap threshold every allocation above it (large values, a giant reply's
// buffers) is a mapping of its own, returned to the system when it is freed;
// smaller ones stay in the arenas. The threshold is just above one socket read
// (io/buffers.ts reads up to 64 KiB): a large read copied out of the read buffer
// comes from the arena. At 32 KiB each such copy was an mmap, its page faults
// and a munmap whose TLB shootdown interrupts every CPU (4 KiB values: 0.022
// mmap+munmap and 0.24 page faults per request; docs/decisions/slab-size.md). glibc reads the setting from the environment
// when the process starts, so the process replaces itself once (execve: same PID,
// same arguments) with it set. An operator's own MALLOC_MMAP_THRESHOLD_ (any
// value) is left as it is; elsewhere than Linux, on a Node without
// process.execve, or under node --permission without --allow-child-process
// (execve would be refused), nothing changes.

const SETTING = 'MALLOC_MMAP_THRESHOLD_';
const THRESHOLD = String(68 * 1024);

export function restartWithMallocSettings(): void {
  const env = process.env;
  const execve = (process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve;
  if (process.platform !== 'linux' || env[SETTING] !== undefined || typeof execve !== 'function') return;
  if (process.permission?.has('child') === false) return;
  execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], { ...env, [SETTING]: THRESHOLD });
}
