// The FUSE server's HANDLE_KILLPRIV_V2 (set-id bits cleared by the server on write, truncate and chown) and its
// answers from what the Gofer said within the validity (LOOKUP, negative LOOKUP, GETATTR), with the coherence
// they must keep: changes through the mount are seen at once, changes on the host once the validity has passed.
import { chmodSync, mkdirSync, statSync, writeFileSync, unlinkSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { mountScratch, sh } from './fuse-helpers.ts';

/** Runs `cmd` as host uid/gid 65534 without capabilities (no CAP_FSETID, CAP_CHOWN, CAP_FOWNER). */
const nobody = (cmd: string) => sh(`setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all sh -c '${cmd}'`);

/** A scratch root with a world-writable `w/` the unprivileged writer may use, its parents searchable. */
function fill(root: string): void {
  mkdirSync(join(root, 'w'));
  chmodSync(join(root, 'w'), 0o777);
  for (const [name, mode] of [
    ['suid', 0o4777],
    ['sgid-x', 0o2777],
    ['sgid-nox', 0o2766],
    ['rootw', 0o4777],
    ['trunc', 0o6777],
    ['plain', 0o666],
  ] as const) {
    writeFileSync(join(root, 'w', name), 'old contents\n');
    chmodSync(join(root, 'w', name), mode);
  }
}

const modeOf = (p: string) => statSync(p).mode & 0o7777;

for (const passthrough of [false, true]) {
  const io = passthrough ? 'passthrough' : '9P I/O';

  t.test(`${io}: KILLPRIV_V2: a write or truncate by a writer without CAP_FSETID clears S_ISUID (and S_ISGID with g+x), as a local file system does; root's write keeps them`, async (t) => {
    const m = await mountScratch(t, fill, { passthrough });
    chmodSync(m.dir, 0o755);
    const w = `${m.mnt}/w`;
    const r = await nobody(`echo more >> ${w}/suid && echo more >> ${w}/sgid-x && echo more >> ${w}/sgid-nox && truncate -s 3 ${w}/trunc && stat -c %a ${w}/suid ${w}/sgid-x ${w}/sgid-nox ${w}/trunc`);
    t.equal(r.code, 0, r.err);
    t.ok(m.server.killprivV2, 'the kernel agreed to FUSE_HANDLE_KILLPRIV_V2');
    const dir = join(m.root, 'w');
    t.equal(modeOf(join(dir, 'suid')), 0o777, 'S_ISUID gone on DIR\'s file after a write');
    t.equal(modeOf(join(dir, 'sgid-x')), 0o777, 'S_ISGID of a group-executable file gone');
    t.equal(modeOf(join(dir, 'sgid-nox')), 0o2766, 'S_ISGID without group execute stays (it marks mandatory locking, not set-gid)');
    t.equal(modeOf(join(dir, 'trunc')), 0o777, 'truncate clears both');
    t.equal(r.out, '777\n777\n2766\n777\n', 'the mount shows the same modes at once');
    t.equal(readFileSync(join(dir, 'suid'), 'utf8'), 'old contents\nmore\n', 'the write landed');
    t.equal(statSync(join(dir, 'trunc')).size, 3);
    // Root in the host's namespace holds CAP_FSETID: its write keeps the bits, as on a local file system.
    const root = await sh(`echo more >> ${w}/rootw`);
    t.equal(root.code, 0, root.err);
    t.equal(modeOf(join(dir, 'rootw')), 0o4777, 'a privileged writer keeps S_ISUID');
  });

  t.test(`${io}: KILLPRIV_V2: repeated writes to a file without set-id bits ask no security.capability after the inode's first`, async (t) => {
    const m = await mountScratch(t, fill, { passthrough });
    chmodSync(m.dir, 0o755);
    const before = m.server.counts.get('GETXATTR') ?? 0;
    // Ten processes, each opening the file and writing once (tar, logs, build outputs write this way).
    const r = await nobody(`for i in 1 2 3 4 5 6 7 8 9 10; do echo $i >> ${m.mnt}/w/plain; done`);
    t.equal(r.code, 0, r.err);
    const asked = (m.server.counts.get('GETXATTR') ?? 0) - before;
    // Without KILLPRIV_V2 the kernel asks before every write(2): 10.
    t.ok(asked <= 2, `${asked} GETXATTRs for 10 writes`);
    t.equal(readFileSync(join(m.root, 'w/plain'), 'utf8'), 'old contents\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n');
  });

  t.test(`${io}: changes through the mount are seen at once though lookups and attributes are answered from the server's cache`, async (t) => {
    const m = await mountScratch(t, fill, { passthrough });
    chmodSync(m.dir, 0o755);
    const script = [
      `cd ${m.mnt}/w`,
      'echo abc > f && stat -c %s f', // a write, then its size
      'echo abcdef >> f && stat -c %s f',
      'ln f g && stat -c %h f', // links: 2
      'rm g && stat -c %h f', // 1: the unlink reached an inode known by another name
      'chmod 640 f && stat -c %a f',
      'touch -d 2001-02-03T04:05:06Z f && stat -c %Y f',
      'mv f h && cat h && ls f 2>/dev/null; echo ls=$?',
      'mkdir d && ls -ld d | cut -c1 && rmdir d && ls d 2>/dev/null; echo ls=$?',
      'ls nothere 2>/dev/null; echo ls=$?; echo now > nothere && cat nothere', // a missing name, then made
    ].join(' && ');
    const r = await sh(script);
    t.equal(r.code, 0, r.err);
    t.equal(r.out, ['4', '11', '2', '1', '640', '981173106', 'abc', 'abcdef', 'ls=2', 'd', 'ls=2', 'ls=2', 'now', ''].join('\n'));
  });

  t.test(`${io}: a name made or removed on the host behind the mount, and a host change of attributes, show once the validity (1 s) has passed`, async (t) => {
    const m = await mountScratch(t, fill, { passthrough });
    const first = await sh(`ls ${m.mnt}/w/late 2>&1; stat -c %a ${m.mnt}/w/plain; cat ${m.mnt}/w/suid`);
    t.match(first.out, /No such file/);
    t.match(first.out, /^666$/m);
    writeFileSync(join(m.root, 'w/late'), 'made on the host\n');
    chmodSync(join(m.root, 'w/plain'), 0o600);
    unlinkSync(join(m.root, 'w/suid'));
    await new Promise((r) => setTimeout(r, 1500));
    const later = await sh(`cat ${m.mnt}/w/late; stat -c %a ${m.mnt}/w/plain; cat ${m.mnt}/w/suid 2>&1`);
    t.equal(later.out.split('\n').slice(0, 2).join('\n'), 'made on the host\n600');
    t.match(later.out, /No such file/, 'the name removed on the host is gone through the mount');
  });

  t.test(`${io}: a directory made through the mount: names missing from it are answered without the Gofer while it is young; every way a name is made in it through the mount is seen, also after the kernel forgot the entries`, async (t) => {
    // maxNodes 16: the server offers the least recently used nodes back (FUSE_NOTIFY_PRUNE), so the kernel forgets
    // the entries made below and looks each name up again, from this server's cache or the Gofer.
    const m = await mountScratch(t, fill, { passthrough, maxNodes: 16, validity: { entry: 5, attr: 5 } });
    chmodSync(m.dir, 0o755);
    const sent = m.client.sent;
    const hits = m.server.cacheHits;
    // One shell: `[ -e ]` is a builtin, each a LOOKUP of a name that is not there.
    const probe = await sh(`mkdir ${m.mnt}/w/n && cd ${m.mnt}/w/n && for i in $(seq 40); do [ -e x$i ] && echo found x$i; done; echo done`);
    t.equal(probe.out, 'done\n', probe.err);
    const asked = m.client.sent - sent;
    t.ok(m.server.cacheHits - hits >= 40, `${m.server.cacheHits - hits} answers from the cache for 40 missing names`);
    // Without the directory's history each costs a Twalk and a Tgetattr (80 or more); the mkdir itself costs ~5.
    t.ok(asked < 20, `${asked} 9P requests for the mkdir and 40 missing names`);
    const make = [
      `cd ${m.mnt}/w/n`,
      'echo made > a', // CREATE
      'ln a b', // LINK
      'ln -s a s', // SYMLINK
      'mkfifo f', // MKNOD
      'mkdir d', // MKDIR
      'mv ../plain p', // RENAME into it
      'echo gone > g && rm g', // made, then UNLINK
      'echo moved > r1 && mv r1 r2', // RENAME inside it
      // Past maxNodes: the kernel is offered the entries above back and forgets those it does not hold.
      'for i in $(seq 40); do echo $i > y$i; done',
      'ls -d a b s f d p r2 y1 y40 | tr "\\n" " "; ls g r1 2>&1 | wc -l; cat a b s r2',
    ].join(' && ');
    const r = await sh(make);
    t.equal(r.code, 0, r.err);
    t.equal(r.out, 'a b d f p r2 s y1 y40 2\nmade\nmade\nmade\nmoved\n');
    t.ok(m.server.forgotten > 0, `${m.server.forgotten} nodes forgotten by the kernel, whose names were looked up again`);
  });

  t.test(`${io}: a name the host makes behind the mount in a directory just made through it shows once the validity (1 s) has passed`, async (t) => {
    const m = await mountScratch(t, fill, { passthrough });
    chmodSync(m.dir, 0o755);
    const first = await sh(`mkdir ${m.mnt}/w/n && ls ${m.mnt}/w/n/late 2>&1`);
    t.match(first.out, /No such file/);
    writeFileSync(join(m.root, 'w/n/late'), 'made on the host\n');
    await new Promise((r) => setTimeout(r, 1500));
    const later = await sh(`cat ${m.mnt}/w/n/late`);
    t.equal(later.out, 'made on the host\n', later.err);
  });
}

t.test('busybox tar -x through the mount: lookups the kernel repeats and the attributes it asks again are answered without the Gofer; the tree lands whole', async (t) => {
  const FILES = 200;
  const m = await mountScratch(t, (root) => {
    fill(root);
    const src = join(root, 'src');
    for (let i = 0; i < FILES; i++) {
      const d = join(src, `d${Math.floor(i / 50)}`);
      if (i % 50 === 0) mkdirSync(d, { recursive: true });
      writeFileSync(join(d, `f${i % 50}`), `file ${i}\n`.repeat(1 + (i % 5)));
    }
  }, { passthrough: true, owner: 65534 }); // attached as the writer, as `run --rootfs` attaches as its program's user
  chmodSync(m.dir, 0o755);
  const tar = join(m.dir, 'files.tar');
  t.equal((await sh(`tar -cf ${tar} -C ${m.root}/src .`)).code, 0);
  const fuse0 = [...m.server.counts.values()].reduce((a, b) => a + b, 0);
  const p9 = m.client.sent;
  const hits = m.server.cacheHits;
  const behind = m.server.writtenBehind;
  // As the program of `run --rootfs` is: an unprivileged host user (its uid 0 is mapped to 65534 there).
  const r = await nobody(`mkdir ${m.mnt}/w/u && busybox tar -xf ${tar} -C ${m.mnt}/w/u`);
  t.equal(r.code, 0, r.err);
  const fuse = ([...m.server.counts.values()].reduce((a, b) => a + b, 0) - fuse0) / FILES;
  const sent = (m.client.sent - p9) / FILES;
  const cached = (m.server.cacheHits - hits) / FILES;
  t.comment(`per file: ${fuse.toFixed(2)} FUSE requests, ${sent.toFixed(2)} 9P requests, ${cached.toFixed(2)} answered from the cache`);
  // Each file: the O_EXCL open's second LOOKUP of the name just found missing, and the directory's attributes
  // after the create, come from the cache (without it: 0, and about 4 more 9P requests per file).
  t.ok(cached >= 1, 'at least one request per file answered from the cache');
  // CREATE is answered with a file made ahead (a Tmktmp asked for in batches, and the Tlinktmp naming it held to go
  // out with later requests: none waited for), else one Tlcreateat (the dialect's create, lookup and attributes of
  // file and directory; in plain 9P2000.L five requests: 7.2 per file): no chown for the attaching user.
  const ahead = m.server.createdAhead / FILES;
  t.ok(ahead >= 0.9, `${(ahead * 100).toFixed(0)} % of the CREATEs answered with a file made ahead`);
  t.ok(sent <= 5, `${sent.toFixed(2)} 9P requests per file (7.2 with CREATE's five requests, 16 or more without the cache)`);
  // tar's utimes after each close (as this unprivileged user it neither chowns nor needs a chmod) is answered
  // before the Gofer did it: a Tsetattr held to go out with the next file's create, instead of a Tsetattr and a
  // Tgetattr waited for.
  const wb = (m.server.writtenBehind - behind) / FILES;
  t.ok(wb >= 1, `${wb.toFixed(2)} SETATTRs written behind per file`);
  t.equal(m.server.lateErrors, 0);
  const cmp = await sh(`cd ${m.root}/src && find . -type f | sort | xargs stat -c '%n %s %a %Y' > ${m.dir}/a && cd ${m.root}/w/u && find . -type f | sort | xargs stat -c '%n %s %a %Y' > ${m.dir}/b && cmp ${m.dir}/a ${m.dir}/b && wc -l < ${m.dir}/a`);
  t.equal(cmp.out.trim(), String(FILES), `every file with its size, mode and mtime: ${cmp.err}`);
  const owners = await sh(`find ${m.root}/w/u -mindepth 1 | xargs stat -c '%u:%g' | sort -u`);
  t.equal(owners.out, '65534:65534\n', 'every file and directory made belongs to the writer, without a chown');
  t.notOk(existsSync(join(m.root, 'w/u/nothing')));
});
