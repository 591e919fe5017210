// Runs one of bench/'s scripts the way a reader does (node --import tsx bench/NAME.ts ARGS...), for the tests of
// their command lines: exit status and both outputs, whatever the status.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** The outcome of `node --import tsx bench/<name> ...args` (60 s at most). */
export async function runBench(name: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const script = join(import.meta.dirname, '../../bench', name);
  try {
    const r = await promisify(execFile)(process.execPath, ['--import', 'tsx', script, ...args], { timeout: 60000 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, out: x.stdout ?? '', err: x.stderr ?? '' };
  }
}
