/**
 * The OCI runtime's front (cli/oci/native/oci-front.c): the executable an engine is given, which answers create,
 * start and delete itself and hands every other call to the Node entry. Each Node start-up an engine's call costs
 * is tens of ms quiet and several times that under load; the front leaves one Node per container, its Sentry,
 * which it starts ahead of need (a warm Sentry, cli/oci/warm.ts) for the next create.
 * It is built with the paths of this Node and this entry fixed in it, into the helpers' cache directory.
 */
import { chmodSync, copyFileSync, renameSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileCached } from '../../sentry/sandbox/native/build.ts';
import { CliError } from '../errors.ts';

const HERE = dirname(fileURLToPath(import.meta.url));

/** The entry the front hands calls to: the compiled bin.js, or from a checkout the source launcher. */
export function defaultCli(): string {
  return import.meta.url.endsWith('.ts') ? join(HERE, '../tsvisor.js') : join(HERE, '../bin.js');
}

/** The path of the front that runs `cli` with `node`, building it first if needed. */
export function frontPath(o: { node?: string; cli?: string; dir?: string; cc?: string } = {}): string {
  const node = o.node ?? process.execPath;
  const cli = resolve(o.cli ?? defaultCli());
  for (const p of [node, cli]) {
    // They become C string literals.
    if (/["\\\n]/.test(p)) throw new CliError(`cannot build the OCI front for a path holding quotes or backslashes: ${p}`);
  }
  return compileCached({
    source: join(HERE, 'native/oci-front.c'),
    flags: ['-O2', '-Wall', '-Wextra', '-static', `-DTSVISOR_NODE="${node}"`, `-DTSVISOR_CLI="${cli}"`],
    name: 'oci-front',
    what: 'the OCI runtime front',
    dir: o.dir,
    cc: o.cc,
  });
}

/** `tsvisor install-runtime PATH`: puts the front at PATH (replacing what is there at once), for engines to call. */
export function installRuntime(path: string): string {
  const front = frontPath();
  const dest = resolve(path);
  const tmp = join(dirname(dest), `.${process.pid}.tsvisor.tmp`);
  copyFileSync(front, tmp);
  chmodSync(tmp, 0o755);
  renameSync(tmp, dest);
  return dest;
}
