/**
 * Presenting a benchmark report: the terminal table (each figure with its ratio to kernel from the same run),
 * the UDP echo side-by-side, and a self-contained HTML page with inline SVG bar charts.
 */
import { describeMachine } from './machine.ts';
import { HIGHER_IS_BETTER, TESTS, micros, pairKey, ratiosToKernel, type BenchReport, type BenchResult } from './results.ts';
import { SYSTEMS } from './systems.ts';

/** Side-by-side UDP round trips (sockperf UDP ping-pong). */
export interface UdpRow {
  system: string;
  p50: number;
  p99: number;
}

/** A row label for a result's setting (everything but the system). */
export function settingLabel(r: BenchResult): string {
  switch (r.test) {
    case 'throughput':
      return `throughput MTU ${r.mtu} ${r.streams}×stream ${r.direction}`;
    case 'rr-latency':
      return 'rr-latency TCP 64 B median';
    case 'http-rps':
      return `http-rps new conn (${String(r.connections ?? '?')} concurrent)`;
    case 'http-keepalive':
      return `http-rps keep-alive (${String(r.connections ?? '?')} conns)`;
    case 'conn-memory':
      return `conn-memory per idle conn (${String(r.connections ?? '?')})`;
    case 'syn-flood':
      return `syn-flood: highest SYN/s, all ${String(r.legit ?? '?')} legit conns ok`;
  }
}

function fmt(r: BenchResult): string {
  if (r.test === 'throughput') return `${r.value.toFixed(2)} Gbit/s`;
  if (r.test === 'rr-latency') return `${r.value.toFixed(1)} µs`;
  if (r.test === 'http-rps' || r.test === 'http-keepalive') return `${Math.round(r.value)} req/s`;
  if (r.test === 'syn-flood') return `${Math.round(r.value)} SYN/s`;
  return `${Math.round(r.value)} B`;
}

/** Groups results by setting, in test order, each group's results in system order. */
function groups(results: readonly BenchResult[]): { key: string; label: string; rows: BenchResult[] }[] {
  const out = new Map<string, { key: string; label: string; rows: BenchResult[] }>();
  const sorted = [...results].sort(
    (a, b) =>
      TESTS.indexOf(a.test) - TESTS.indexOf(b.test) ||
      a.mtu - b.mtu ||
      a.streams - b.streams ||
      a.direction.localeCompare(b.direction) * -1 ||
      connectionsOf(a) - connectionsOf(b),
  );
  for (const r of sorted) {
    const k = pairKey(r);
    if (!out.has(k)) out.set(k, { key: k, label: settingLabel(r), rows: [] });
    out.get(k)!.rows.push(r);
  }
  for (const g of out.values()) g.rows.sort((a, b) => SYSTEMS.indexOf(a.system) - SYSTEMS.indexOf(b.system));
  return [...out.values()];
}

function connectionsOf(r: BenchResult): number {
  return typeof r.connections === 'number' ? r.connections : 0;
}

/** The terminal table: one line per setting, one column per system, each cell "value (×ratio)". */
export function formatTable(report: BenchReport, udp: readonly UdpRow[] = []): string {
  const ratios = ratiosToKernel(report.results);
  const systems = SYSTEMS.filter((s) => report.results.some((r) => r.system === s) || udp.some((u) => u.system === s));
  const rows: string[][] = [['', ...systems]];
  const settings = groups(report.results);
  for (const g of settings) {
    const cells = systems.map((s) => {
      const r = g.rows.find((x) => x.system === s);
      if (!r) return '—';
      const ratio = ratios.get(r);
      return s === 'kernel' || ratio === undefined ? fmt(r) : `${fmt(r)} (×${ratio < 0.1 ? ratio.toFixed(3) : ratio.toFixed(2)})`;
    });
    rows.push([g.label, ...cells]);
  }
  const extraRows: string[][] = [];
  // What each throughput figure cost: CPU-seconds of the whole machine per GB received (ratio to the kernel's;
  // lower is better), and the iperf3 client's own CPU (one thread: at 100 % it, not the serving side, is the bound).
  for (const g of settings) {
    if (g.rows[0]!.test !== 'throughput' || !g.rows.some((r) => typeof r.cpu_s_per_gb === 'number' || typeof r.client_cpu_pct === 'number')) continue;
    const kernel = g.rows.find((r) => r.system === 'kernel')?.cpu_s_per_gb;
    extraRows.push([`${g.label}: CPU-s/GB, client CPU`, ...systems.map((s) => {
      const r = g.rows.find((x) => x.system === s);
      if (!r) return '—';
      const perGb = r.cpu_s_per_gb;
      let c = typeof perGb === 'number' ? perGb.toFixed(2) : '?';
      if (typeof perGb === 'number' && s !== 'kernel' && typeof kernel === 'number' && kernel > 0) c += ` (×${(perGb / kernel).toFixed(2)})`;
      return typeof r.client_cpu_pct === 'number' ? `${c}, ${Math.round(r.client_cpu_pct)}%` : c;
    })]);
  }
  const lat = report.results.filter((r) => r.test === 'rr-latency');
  if (lat.length) extraRows.push(['rr-latency TCP 64 B p99', ...systems.map((s) => cell(lat.find((r) => r.system === s)?.p99))]);
  // Latency rows for each keep-alive concurrency measured, fewest connections first.
  const keepAlive = report.results.filter((r) => r.test === 'http-keepalive');
  for (const conns of [...new Set(keepAlive.map(connectionsOf))].sort((a, b) => a - b)) {
    const ka = keepAlive.filter((r) => connectionsOf(r) === conns);
    for (const [key, name] of [['p50_us', 'p50'], ['p99_us', 'p99']] as const) {
      const kernel = ka.find((r) => r.system === 'kernel')?.[key];
      extraRows.push([`http-rps keep-alive (${conns} conns) latency ${name}`, ...systems.map((s) => {
        const v = ka.find((r) => r.system === s)?.[key];
        if (typeof v !== 'number') return '—';
        return s === 'kernel' || typeof kernel !== 'number' || kernel === 0 ? micros(v) : `${micros(v)} (×${(v / kernel).toFixed(2)})`;
      })]);
    }
  }
  if (udp.length) {
    extraRows.push(['UDP echo round trip median', ...systems.map((s) => cell(udp.find((u) => u.system === s)?.p50))]);
    extraRows.push(['UDP echo round trip p99', ...systems.map((s) => cell(udp.find((u) => u.system === s)?.p99))]);
  }
  rows.push(...extraRows);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => [...(r[i] ?? '')].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const out = [line(rows[0]!), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.slice(1).map(line)];
  out.push('', 'ratios are to kernel in the same run; throughput and req/s: higher is better; µs and bytes: lower is better');
  if (report.rounds) out.push(`each figure is the median of ${report.rounds} rounds (every system once per round, in turn)`);
  for (const [system, what] of Object.entries(report.notes)) out.push(`conn-memory ${system}: ${what}`);
  if (report.machine) out.push(describeMachine(report.machine));
  if (report.congestion) out.push(`to-service throughput: the clients' sockets use ${report.congestion} (--congestion)`);
  const threads = report.results.find((r) => r.system === 'tsvisor' && typeof r.threads === 'number')?.threads;
  if (threads) out.push(`tsvisor: serve --threads ${threads} (netstack shards on worker threads)`);
  for (const s of report.skipped) out.push(`skipped: ${s.system}${s.test === '*' ? '' : ` ${s.test}`}${s.mtu ? ` (MTU ${s.mtu})` : ''}: ${s.reason}`);
  return out.join('\n') + '\n';
}

function cell(v: unknown): string {
  return typeof v === 'number' ? `${v.toFixed(1)} µs` : '—';
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

const COLORS: Record<string, string> = { kernel: '#4e79a7', tsvisor: '#e15759', pasta: '#59a14f', slirp4netns: '#f28e2b' };

/** One horizontal bar chart (inline SVG) of a setting's values across systems. */
export function barChart(title: string, rows: readonly { system: string; value: number; text: string }[]): string {
  const barH = 22;
  const labelW = 110;
  const width = 560;
  const max = Math.max(...rows.map((r) => r.value), 1e-9);
  const h = 28 + rows.length * (barH + 6);
  const bars = rows
    .map((r, i) => {
      const y = 24 + i * (barH + 6);
      const w = Math.max(1, ((width - labelW - 150) * r.value) / max);
      return (
        `<text x="0" y="${y + 15}" font-size="13">${esc(r.system)}</text>` +
        `<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${COLORS[r.system] ?? '#888'}"/>` +
        `<text x="${(labelW + w + 6).toFixed(1)}" y="${y + 15}" font-size="12">${esc(r.text)}</text>`
      );
    })
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${h}" role="img" aria-label="${esc(title)}"><text x="0" y="14" font-size="14" font-weight="bold">${esc(title)}</text>${bars}</svg>`;
}

/** The self-contained HTML report (no external resources). */
export function formatHtml(report: BenchReport, udp: readonly UdpRow[] = []): string {
  const ratios = ratiosToKernel(report.results);
  const charts = groups(report.results).map((g) => {
    const better = HIGHER_IS_BETTER[g.rows[0]!.test] ? 'higher is better' : 'lower is better';
    return barChart(
      `${g.label} (${better})`,
      g.rows.map((r) => {
        const ratio = ratios.get(r);
        return { system: r.system, value: r.value, text: fmt(r) + (r.system !== 'kernel' && ratio !== undefined ? ` ×${ratio.toFixed(2)}` : '') };
      }),
    );
  });
  if (udp.length) {
    charts.push(barChart('UDP echo round trip median, sockperf 64 B (lower is better)', udp.map((u) => ({ system: u.system, value: u.p50, text: `${u.p50.toFixed(1)} µs (p99 ${u.p99.toFixed(1)})` }))));
  }
  const table = esc(formatTable(report, udp));
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>tsvisor bench ${esc(report.startedAt)}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1100px}svg{display:block;margin:1.2em 0}pre{background:#f6f6f6;padding:1em;overflow-x:auto}</style>
</head><body>
<h1>tsvisor bench</h1>
<p>${esc(report.startedAt)}, ${report.seconds} s${report.quick ? ', --quick' : ''}${report.rounds ? `, median of ${report.rounds} rounds` : ''}. Clients: stock iperf3, sockperf ping-pong, wrk (Connection: close, and keep-alive), run from a namespace of the bench's own; ratios are to the Linux kernel in the same run.</p>
${charts.join('\n')}
<h2>Table</h2>
<pre>${table}</pre>
</body></html>
`;
}
