/**
 * Prints the functions with the most self time in a V8 `.cpuprofile` (from `node --cpu-prof`), as percentages
 * of all samples: `node --import tsx bench/profile-top.ts FILE [N]`.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

const [file, n] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: profile-top.ts FILE.cpuprofile [N]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples: number[] };
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const self = new Map<string, number>();
for (const id of profile.samples) {
  const f = byId.get(id)!.callFrame;
  const key = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}`;
  self.set(key, (self.get(key) ?? 0) + 1);
}
const total = profile.samples.length;
for (const [key, count] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(n ?? 40))) {
  process.stdout.write(`${((100 * count) / total).toFixed(1).padStart(5)}  ${key}\n`);
}
