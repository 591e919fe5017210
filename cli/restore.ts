/**
 * `tsvisor restore --netns NAME|PATH --dev IFACE`: gives the kernel back an interface that a `serve` or `run`
 * killed outright (SIGKILL, a crash) left taken, from the record it wrote before changing anything
 * (lib/takeover.ts). The next `serve` on the interface does the same by itself; this is for leaving it unserved.
 */
import { rmSync } from 'node:fs';
import { TakeoverBusy, restoreInterface } from '../lib/takeover.ts';
import { parseArgs } from './args.ts';
import { CliError } from './main.ts';
import { statsSocketPath } from './stats.ts';

/** The `restore` command. */
export async function restoreCommand(argv: string[]): Promise<number> {
  const { options: o } = parseArgs(argv, { netns: { value: true, required: true }, dev: { value: true, required: true } });
  const netns = o.netns as string;
  const dev = o.dev as string;
  let what: string | null;
  try {
    what = restoreInterface(netns, dev);
  } catch (e) {
    if (e instanceof TakeoverBusy) throw new CliError(`${e.message}: stop it instead (it restores the interface on SIGTERM)`);
    throw new CliError((e as Error).message);
  }
  // The killed serve could not remove its stats socket; with its record restored nobody serves the interface.
  if (what !== null) rmSync(statsSocketPath(netns, dev), { force: true });
  process.stdout.write(`tsvisor: ${what ?? `nothing to restore: no record of a takeover of '${dev}' in '${netns}'`}\n`);
  return 0;
}
