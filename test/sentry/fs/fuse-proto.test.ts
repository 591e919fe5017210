import t from 'tap';
import { attrOut, entryOut, opName, OP, view, type Attr } from '../../../sentry/fs/fuse/proto.ts';

const attr: Attr = {
  ino: 7n,
  size: 3n,
  blocks: 1n,
  atime: 1n,
  mtime: 2n,
  ctime: 3n,
  atimensec: 0,
  mtimensec: 0,
  ctimensec: 0,
  mode: 0o100644,
  nlink: 1,
  uid: 0,
  gid: 0,
  rdev: 0,
  blksize: 4096,
};

t.test('entryOut: fractional validities go out as whole seconds and nanoseconds (fuse_entry_out)', async (t) => {
  const v = view(entryOut(5n, attr, { entry: 0.25, attr: 1.5 }));
  t.equal(v.getBigUint64(0, true), 5n, 'nodeid');
  t.equal(v.getBigUint64(16, true), 0n, 'entry_valid');
  t.equal(v.getBigUint64(24, true), 1n, 'attr_valid');
  t.equal(v.getUint32(32, true), 250_000_000, 'entry_valid_nsec');
  t.equal(v.getUint32(36, true), 500_000_000, 'attr_valid_nsec');
  t.equal(v.getBigUint64(40, true), 7n, 'attr.ino');
});

t.test('attrOut: a validity already spent (negative) is sent as zero; nanoseconds never reach a second', async (t) => {
  const spent = view(attrOut(attr, { entry: 0, attr: -0.2 }));
  t.equal(spent.getBigUint64(0, true), 0n);
  t.equal(spent.getUint32(8, true), 0);
  const almost = view(attrOut(attr, { entry: 0, attr: 0.9999999999 }));
  t.equal(almost.getBigUint64(0, true), 0n);
  t.ok(almost.getUint32(8, true) <= 999_999_999);
  const whole = view(attrOut(attr, { entry: 0, attr: 2 }));
  t.equal(whole.getBigUint64(0, true), 2n);
  t.equal(whole.getUint32(8, true), 0);
});

t.test('opName: every opcode by table, unknown ones by number', async (t) => {
  for (const [name, op] of Object.entries(OP)) t.equal(opName(op), name);
  t.equal(opName(999), 'op999');
});
