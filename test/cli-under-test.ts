// The `tsvisor` command the tests start. By default the sources through tsx (cli/tsvisor.js), as a developer runs
// them; with TSVISOR_TEST_CLI=dist the compiled package's entry (dist/cli/bin.js), which `npm test` sets once it has
// made sure dist/ is built from the current sources (test/run.js). The compiled entry starts in about a third of
// the time (0.5 against 1.2-1.7 s for `run --network=none -- true` here: tsx loads each module through its hooks),
// and the suite starts tsvisor several hundred times. test/cli/args.test.ts always runs the sources' launcher.
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');

export const CLI = process.env.TSVISOR_TEST_CLI === 'dist' ? join(ROOT, 'dist/cli/bin.js') : join(ROOT, 'cli/tsvisor.js');
