// Preloaded with `node --import` before mcrelay: process.binding('tcp_wrap')
// answers without its TCP constructor, as a Node that renamed or dropped it
// would. For the start-up check of src/io/internals.ts (test/integration/io.test.ts).
const binding = (process as unknown as { binding: (name: string) => Record<string, unknown> }).binding.bind(process);
(process as unknown as { binding: (name: string) => unknown }).binding = (name: string) => {
  const b = binding(name);
  return name === 'tcp_wrap' ? { ...b, TCP: undefined } : b;
};
