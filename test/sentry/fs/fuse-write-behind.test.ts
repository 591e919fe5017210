// Write-behind SETATTR: a chmod, chown or utimes of a file made or opened through the mount is answered before the
// Gofer has done it; later requests see the settled state, and a failure the Gofer meets reaches the program at
// close(2) (FLUSH), at the next request that opens or changes the file, never lost silently.
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { within } from '../../lib/wait.ts';
import { goferServer, mountScratch, sh } from './fuse-helpers.ts';

/** Sends `sig` to the Gofer's serving process (stopping the bwraps too would end the confinement). */
const signalTree = (pid: number, sig: NodeJS.Signals) => process.kill(goferServer(pid), sig);

/** Runs a Python program (the calls it makes are exactly the ones written). */
const py = (src: string) => sh(`python3 -c '${src}'`);

for (const passthrough of [false, true]) {
  const io = passthrough ? 'passthrough' : '9P I/O';

  t.test(`${io}: chmod, chown and utimes of a file made through the mount complete while the Gofer is stopped; stat then shows the values the host file settled on`, async (t) => {
    // A validity of 5 s: the attributes the create brought stay known through the stop (the write-behind's base).
    const m = await mountScratch(t, () => {}, { passthrough, validity: { entry: 5, attr: 5 } });
    const f = `${m.mnt}/f`;
    // Made without a write (a write through 9P leaves size and times to be read again: no write-behind base).
    const made = await sh(`touch ${f}`);
    t.equal(made.code, 0, made.err);
    const gofer = m.gofer.pid!;
    signalTree(gofer, 'SIGSTOP');
    let stopped = true;
    t.teardown(() => {
      if (stopped) signalTree(gofer, 'SIGCONT');
    });
    // Without write-behind each call waits for the stopped Gofer: the program never finishes while it is stopped.
    const calls = py(`import os; p="${f}"; os.chmod(p, 0o640); os.chown(p, 1234, 5678); os.utime(p, ns=(981173106000000001, 981173106123456789)); print("done")`);
    const r = await within(calls, 30000, 'the calls while the Gofer is stopped').catch(() => 'timeout' as const);
    signalTree(gofer, 'SIGCONT');
    stopped = false;
    if (r === 'timeout') {
      t.fail('the calls waited for the stopped Gofer');
      await calls;
      return;
    }
    t.equal(r.out, 'done\n', r.err);
    t.ok(m.server.writtenBehind >= 3, `${m.server.writtenBehind} SETATTRs written behind`);
    // The replies were valid for no time: this stat asks the server, which waits for the calls, then the Gofer.
    const st = await sh(`stat -c '%a %u %g %Y %y' ${f}`);
    t.equal(st.out, '640 1234 5678 981173106 2001-02-03 04:05:06.123456789 +0000\n', st.err);
    const host = statSync(join(m.root, 'f'), { bigint: true });
    t.equal(Number(host.mode & 0o7777n), 0o640, 'the host file took the mode');
    t.equal([host.uid, host.gid].join(':'), '1234:5678', 'and the owner');
    t.equal(host.mtimeNs, 981173106123456789n, 'and the modification time, to the nanosecond');
    t.equal(host.atimeNs, 981173106000000001n);
    t.equal(m.server.lateErrors, 0);
  });

  t.test(`${io}: a written-behind chmod the host refuses (the file made immutable underneath) fails the close(2) of the descriptor it was made through; the file keeps its mode`, async (t) => {
    const m = await mountScratch(t, () => {}, { passthrough, validity: { entry: 5, attr: 5 } });
    const host = join(m.root, 'f');
    t.teardown(() => sh(`chattr -i ${host}`));
    const r = await py(
      [
        'import os, subprocess',
        `fd = os.open("${m.mnt}/f", os.O_WRONLY | os.O_CREAT, 0o644)`,
        `subprocess.run(["chattr", "+i", "${host}"], check=True)`,
        'os.fchmod(fd, 0o600)',
        'print("fchmod ok")',
        'try:',
        '  os.close(fd); print("close ok")',
        'except OSError as e:',
        '  print("close", e.strerror)',
      ].join('\n'),
    );
    t.equal(r.out, 'fchmod ok\nclose Operation not permitted\n', r.err);
    t.equal(m.server.lateErrors, 1, 'the Gofer failed the written-behind Tsetattr');
    t.equal(statSync(host).mode & 0o7777, 0o644, 'the host file kept its mode');
    const st = await sh(`stat -c %a ${m.mnt}/f`);
    t.equal(st.out, '644\n', 'stat through the mount shows the settled mode, not the one answered');
  });

  t.test(`${io}: a written-behind chmod of a closed file the host refuses is reported by the next call that changes the file, once; reads and stat see the settled state`, async (t) => {
    const m = await mountScratch(t, (root) => writeFileSync(join(root, 'seed'), ''), { passthrough, validity: { entry: 5, attr: 5 } });
    const host = join(m.root, 'f');
    t.teardown(() => sh(`chattr -i ${host}`));
    const r = await py(
      [
        'import os, subprocess',
        `p = "${m.mnt}/f"`,
        'fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644); os.close(fd)',
        `subprocess.run(["chattr", "+i", "${host}"], check=True)`,
        'os.chmod(p, 0o600); print("chmod ok")',
        'print("stat", oct(os.stat(p).st_mode & 0o7777))',
        'try:',
        '  os.utime(p, (1, 1)); print("utime ok")',
        'except OSError as e:',
        '  print("utime", e.strerror)',
        'print("stat", oct(os.stat(p).st_mode & 0o7777), os.stat(p).st_mtime != 1)',
        'os.close(os.open(p, os.O_RDONLY)); print("open ok")',
      ].join('\n'),
    );
    // The stat waited for the chmod and shows the mode the host kept; the utime (a change) reports the chmod's
    // failure instead of being done; after that report nothing is left to report: the open succeeds.
    t.equal(r.out, 'chmod ok\nstat 0o644\nutime Operation not permitted\nstat 0o644 True\nopen ok\n', r.err);
    t.equal(m.server.lateErrors, 1);
  });
}

t.test('write-behind off (writeBehind: false): the same chmod waits for the Gofer, and a refusal is the call\'s own error', async (t) => {
  const m = await mountScratch(t, () => {}, { passthrough: true, writeBehind: false });
  const host = join(m.root, 'f');
  t.teardown(() => sh(`chattr -i ${host}`));
  const r = await py(`import os, subprocess\nfd = os.open("${m.mnt}/f", os.O_WRONLY | os.O_CREAT, 0o644)\nsubprocess.run(["chattr", "+i", "${host}"], check=True)\ntry:\n  os.fchmod(fd, 0o600)\nexcept OSError as e:\n  print("fchmod", e.strerror)\nos.close(fd)`);
  t.equal(r.out, 'fchmod Operation not permitted\n', r.err);
  t.equal(m.server.writtenBehind, 0);
});

t.test('a chown to the owner and group a file made through the mount already has costs no Tsetattr; to another owner, or of a set-id file (whose bits a chown clears), it does', async (t) => {
  const m = await mountScratch(t, () => {}, { passthrough: true, validity: { entry: 5, attr: 5 } });
  const setattrs = () => m.client.sentByType.get('Tsetattr') ?? 0;
  const made = await sh(`: > ${m.mnt}/f && : > ${m.mnt}/g && : > ${m.mnt}/s && chmod 4755 ${m.mnt}/s`);
  t.equal(made.code, 0, made.err);
  await m.server.settle();
  const before = setattrs();
  const same = await py(`import os; os.chown("${m.mnt}/f", 0, 0); os.chown("${m.mnt}/f", -1, 0); print("done")`);
  t.equal(same.out, 'done\n', same.err);
  await m.server.settle();
  t.equal(setattrs() - before, 0, 'chown(0, 0) and chown(-1, 0) of a file root made: nothing sent');
  t.equal(m.server.sameOwnerChowns, 2);
  const other = await py(`import os; os.chown("${m.mnt}/g", 1234, 5678); os.chown("${m.mnt}/s", 0, 0); print("done")`);
  t.equal(other.out, 'done\n', other.err);
  await m.server.settle();
  t.equal(setattrs() - before, 2, 'a new owner, and the set-id file: one Tsetattr each');
  const host = (p: string) => {
    const st = statSync(join(m.root, p));
    return `${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)}`;
  };
  t.same([host('f'), host('g'), host('s')], ['0:0 644', '1234:5678 644', '0:0 755'], 'owners as asked; the chown cleared S_ISUID');
  const st = await sh(`stat -c '%u:%g %a' ${m.mnt}/f ${m.mnt}/g ${m.mnt}/s`);
  t.equal(st.out, '0:0 644\n1234:5678 644\n0:0 755\n', st.err);
});

t.test('a written-behind chmod and the utime after it go to the Gofer as one Tsetattr: both land on the host file; refused, the failure is reported once and neither lands', async (t) => {
  // Held Tsetattrs wait up to a minute for the next request (5 ms by default, which a loaded machine can pass
  // between python's chmod and its utime): the merge is then the client's doing alone, and settle or the next
  // request on the file sends it.
  const m = await mountScratch(t, () => {}, { passthrough: true, validity: { entry: 5, attr: 5 }, holdMs: 60_000 });
  const setattrs = () => m.client.sentByType.get('Tsetattr') ?? 0;
  const made = await sh(`: > ${m.mnt}/f && : > ${m.mnt}/g`);
  t.equal(made.code, 0, made.err);
  await m.server.settle();
  let before = setattrs();
  const r = await py(`import os; os.chmod("${m.mnt}/f", 0o600); os.utime("${m.mnt}/f", (1000, 2000)); print("done")`);
  t.equal(r.out, 'done\n', r.err);
  await m.server.settle();
  t.equal(setattrs() - before, 1, 'one Tsetattr');
  const st = statSync(join(m.root, 'f'));
  t.same([st.mode & 0o7777, st.atimeMs, st.mtimeMs], [0o600, 1000000, 2000000], 'mode and times on the host file');

  const host = join(m.root, 'g');
  t.teardown(() => sh(`chattr -i ${host}`));
  const mode = statSync(host).mode;
  const mtime = statSync(host).mtimeMs;
  before = setattrs();
  const late = m.server.lateErrors;
  const refused = await py(
    [
      'import os, subprocess',
      `p = "${m.mnt}/g"`,
      `subprocess.run(["chattr", "+i", "${host}"], check=True)`,
      'os.chmod(p, 0o600); os.utime(p, (1000, 2000)); print("chmod, utime ok")',
      'for flags in (os.O_RDONLY | os.O_TRUNC, os.O_RDONLY):',
      '  try:',
      '    os.close(os.open(p, flags)); print("open ok")',
      '  except OSError as e:',
      '    print("open", e.strerror)',
    ].join('\n'),
  );
  // The first open (a change: O_TRUNC) reports the failure instead of being done; then nothing is left to report.
  t.equal(refused.out, 'chmod, utime ok\nopen Operation not permitted\nopen ok\n', refused.err);
  t.equal(setattrs() - before, 1, 'one Tsetattr');
  t.equal(m.server.lateErrors - late, 2, 'both written-behind calls failed (one request)');
  t.same([statSync(host).mode, statSync(host).mtimeMs], [mode, mtime], 'neither mode nor times changed');
});
