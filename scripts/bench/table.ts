/** Shared helpers of the benchmarks: medians and aligned tables. */

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** Prints rows as columns; the first column left-aligned, the rest right-aligned unless `leftAligned`. */
export function printTable(rows: readonly (readonly string[])[], leftAligned = false): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => (i === 0 || leftAligned ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
}
