// Text and markdown tables for bench output: the first `leftColumns` columns
// are labels (left-aligned), the rest numbers (right-aligned).

export function textTable(head: readonly string[], body: readonly string[][], leftColumns = 1): string {
  const widths = head.map((h, c) => Math.max(h.length, ...body.map((row) => (row[c] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    head.map((_, c) => {
      const cell = cells[c] ?? '';
      return c < leftColumns ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!);
    }).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n') + '\n';
}

export function markdownTable(head: readonly string[], body: readonly string[][], leftColumns = 1): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const rule = head.map((_, c) => (c < leftColumns ? '---' : '---:'));
  return [head, rule, ...body].map((row) => `| ${row.map(esc).join(' | ')} |`).join('\n') + '\n';
}

/** Fixed decimals, or '-' for a value that was not measured. */
export function num(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '-';
}

const grouped = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function int(x: number): string {
  return Number.isFinite(x) ? grouped.format(x) : '-';
}
