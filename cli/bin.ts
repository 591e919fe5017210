#!/usr/bin/env node
// The installed `tsvisor` command: the compiled entry point (dist/cli/bin.js). A checkout runs its sources
// through cli/tsvisor.js instead, so nothing there can run a stale build.
//
// An OCI runtime call goes straight to cli/oci/main.ts: an engine makes four or more of them per container, each a
// fresh Node, so none of them loads cli/main.ts, the usage text or any command it does not run.
import { isOciCall, ociEntry } from './oci/main.ts';

const argv = process.argv.slice(2);
process.exit(isOciCall(argv) ? await ociEntry(argv) : await (await import('./main.ts')).main(argv));
