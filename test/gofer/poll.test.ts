// The Gofer polls a connection for the client's next request after replying, while requests come close together
// (`pollUs`): those requests are then read without a wake-up of its loop. The client runs in a child process, so
// that it can send while this process's loop is held by the poll.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { noYieldCut } from '../lib/yield-cut.ts';
import { scratch, startServer } from './helpers.ts';

const execFileP = promisify(execFile);

// These test what polling takes: the yield cut off.
noYieldCut(t);
const CLIENT = new URL('../../gofer/client/client.ts', import.meta.url).pathname;

/** `n` Tgetattrs of the root one after another from a child process, on the descriptor-donating dialect. */
async function clientRun(sock: string, n: number): Promise<void> {
  const code = `const { Client } = await import('${CLIENT}');
const c = await Client.connect('${sock}', 1 << 20, { donation: true });
const f = c.allocFid();
await c.attach(f, 0);
for (let i = 0; i < ${n}; i++) await c.getattr(f);
c.close();`;
  await execFileP(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { timeout: 60000 });
}

t.test('a client whose requests follow the replies closely → most are taken while polling; pollUs 0 → none', async (t) => {
  for (const pollUs of [5000, 0]) {
    const s = scratch(t);
    // 5 ms: far above a getattr's round trip even on a loaded machine, so the test is about behaviour, not time.
    const server = await startServer(t, s, { pollUs });
    await clientRun(s.sock, 300);
    await new Promise((r) => setTimeout(r, 100)); // the connection's end is seen
    const { polled, pollsCut, pollsSkipped } = server.stats;
    t.comment(`pollUs ${pollUs}: ${polled} of ${server.stats.requests} requests taken while polling, ${pollsCut} polls cut, ${pollsSkipped} held off`);
    if (pollUs) t.ok(polled >= 100, `${polled} of 300 taken while polling (${pollsCut} cut, ${pollsSkipped} held off)`);
    else t.equal(polled + pollsCut + pollsSkipped, 0, 'never with pollUs 0');
  }
});

t.test('a client that goes quiet → the poll runs out at its bound (a timer in the server keeps running)', async (t) => {
  const s = scratch(t);
  const server = await startServer(t, s, { pollUs: 20000 });
  // After the child's last reply the server polls 20 ms at most and finds nothing (the child is exiting); a poll
  // that ran on without bound would stop the 5 ms timer for good.
  let worst = 0;
  let last = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
  }, 5);
  t.teardown(() => clearInterval(tick)); // also when the client fails
  await clientRun(s.sock, 50);
  await new Promise((r) => setTimeout(r, 200));
  clearInterval(tick);
  t.comment(`longest gap between timer runs ${worst.toFixed(1)} ms`);
  t.ok(server.stats.polled >= 1, `${server.stats.polled} of 50 taken while polling`);
  t.ok(worst < 100, `timer gap ${worst.toFixed(1)} ms (bound 20 ms a poll)`);
});
