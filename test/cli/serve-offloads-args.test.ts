import t from 'tap';
import { parseServeArgs } from '../../cli/serve.ts';

t.test('serve arguments → offloads on by default, off with --no-offloads', (t) => {
  t.equal(parseServeArgs(['--netns', 'n', '--dev', 'd']).offloads, true);
  t.equal(parseServeArgs(['--netns', 'n', '--dev', 'd', '--no-offloads']).offloads, false);
  t.end();
});
