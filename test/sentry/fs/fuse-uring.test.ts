// FUSE over io_uring (sentry/fs/fuse/uring.ts): with the fuse module's enable_uring set and the server asking for
// it, every request after INIT comes through the ring's entries and is answered there; without either, the same
// calls are served over /dev/fuse. The kernel's switch is global: each test sets what it needs and puts the old
// value back.
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { unmountFuse } from '../../../sentry/fs/fuse/mount.ts';
import { mountScratch, sh, type Mounted } from './fuse-helpers.ts';

const PARAM = '/sys/module/fuse/parameters/enable_uring';

/** Sets the fuse module's enable_uring for this test, restored at its end; false when it cannot be set. */
function enableUring(t: Test, on: boolean): boolean {
  if (!existsSync(PARAM)) return false;
  const old = readFileSync(PARAM, 'latin1').trim();
  try {
    writeFileSync(PARAM, on ? 'Y' : 'N');
  } catch {
    return false;
  }
  t.teardown(() => writeFileSync(PARAM, old));
  return true;
}

const fill = (root: string) => {
  mkdirSync(join(root, 'w'));
  chmodSync(join(root, 'w'), 0o777);
  writeFileSync(join(root, 'hello'), 'hello\n');
};

/** Requests the kernel sends on /dev/fuse whatever the transport. */
const DEVICE_ONLY = ['INIT', 'FORGET', 'BATCH_FORGET', 'INTERRUPT'];
const total = (m: Mounted) => [...m.server.counts].reduce((a, [op, n]) => a + (DEVICE_ONLY.includes(op) ? 0 : n), 0);

/** Makes, reads, lists, changes and removes files through the mount; checks what landed in DIR. */
async function workload(t: Test, m: Mounted): Promise<void> {
  const r = await sh(
    `cd ${m.mnt}/w && for i in $(seq 1 30); do echo "file $i" > f$i; done && chmod 600 f1 && mv f2 g2 && rm f3 && mkdir d && ln -s f4 l4 ` +
      `&& cat f5 ../hello && ls -l | wc -l && dd if=/dev/zero of=big bs=64k count=16 2>/dev/null && wc -c < big`,
  );
  t.equal(r.code, 0, r.err);
  t.match(r.out, /^file 5\nhello\n\d+\n1048576\n$/, 'reads and listings through the mount');
  const names = readdirSync(join(m.root, 'w'));
  t.equal(names.length, 30 - 1 + 3, 'every name made, renamed and removed in DIR (f3 gone; d, l4, big added)');
  t.equal(lstatSync(join(m.root, 'w/f1')).mode & 0o777, 0o600, 'chmod landed');
  t.ok(lstatSync(join(m.root, 'w/l4')).isSymbolicLink(), 'symlink landed');
  t.equal(readFileSync(join(m.root, 'w/g2'), 'latin1'), 'file 2\n', 'renamed file whole');
}

t.test('enable_uring set, server asks → every request after INIT comes through the ring, and changes land in DIR', async (t) => {
  if (!enableUring(t, true)) return t.plan(0, 'enable_uring cannot be set here');
  for (const passthrough of [false, true]) {
    const m = await mountScratch(t, fill, { uring: true, passthrough });
    await workload(t, m);
    t.ok(m.server.overUring, 'the ring was agreed');
    const asked = total(m);
    t.ok(asked > 100, `${asked} requests`);
    t.equal(m.server.ringRequests, asked, `passthrough ${passthrough}: all ${asked} requests (INIT and FORGETs aside) through the ring`);
  }
});

t.test('eight callers at once over the ring → every call answered (several entries per CPU, replies in any order)', async (t) => {
  if (!enableUring(t, true)) return t.plan(0, 'enable_uring cannot be set here');
  const m = await mountScratch(t, fill, { uring: true });
  const loops = Array.from({ length: 8 }, (_, k) => `(mkdir d${k} && for i in $(seq 1 40); do echo $i > d${k}/f$i; cat d${k}/f$i > /dev/null; done) &`).join(' ');
  const r = await sh(`cd ${m.mnt}/w && { ${loops} wait; } && ls d*/ | grep -c '^f'`);
  t.equal(r.code, 0, r.err);
  t.equal(r.out.trim(), '320', 'all 320 files made through the mount');
  for (let k = 0; k < 8; k++) t.equal(readdirSync(join(m.root, 'w', `d${k}`)).length, 40, `d${k} whole on the host`);
  t.equal(m.server.ringRequests, total(m), 'all through the ring');
});

t.test('unmounting a mount served over the ring ends the server', async (t) => {
  if (!enableUring(t, true)) return t.plan(0, 'enable_uring cannot be set here');
  const m = await mountScratch(t, fill, { uring: true });
  t.equal((await sh(`cat ${m.mnt}/hello`)).out, 'hello\n');
  t.ok(m.server.ringRequests > 0, 'served over the ring');
  unmountFuse(m.mnt);
  for (let i = 0; i < 50 && m.closed.why === undefined; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(m.closed.why, 'unmounted');
});

t.test('server does not ask (the default), or the kernel does not offer → the same calls over /dev/fuse', async (t) => {
  for (const [param, ask] of [
    [true, false],
    [true, undefined],
    [false, true],
  ] as const) {
    await t.test(`enable_uring ${param}, server asks ${ask}`, async (t) => {
      if (!enableUring(t, param)) return t.plan(0, 'enable_uring cannot be set here');
      const m = await mountScratch(t, fill, { uring: ask });
      await workload(t, m);
      t.notOk(m.server.overUring, 'no ring');
      t.equal(m.server.ringRequests, 0, 'nothing through a ring');
    });
  }
});
