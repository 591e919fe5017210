/** The package's version, read from its package.json (found walking up: cli/ in a checkout, dist/cli/ installed). */
import { readFileSync } from 'node:fs';

/** The `version` field of tsvisor's package.json. */
export function packageVersion(): string {
  for (let dir = new URL('.', import.meta.url); ; dir = new URL('..', dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'tsvisor' && pkg.version) return pkg.version;
    } catch {
      // no package.json here: keep walking up
    }
    if (dir.pathname === '/') throw new Error("tsvisor's package.json not found");
  }
}
