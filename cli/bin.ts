#!/usr/bin/env node
// The installed `tsvisor` command: the compiled entry point (dist/cli/bin.js). A checkout runs its sources
// through cli/tsvisor.js instead, so nothing there can run a stale build.
import { main } from './main.ts';

process.exit(await main(process.argv.slice(2)));
