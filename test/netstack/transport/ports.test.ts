import t from 'tap';
import { parseAddress } from '../../../netstack/addr.ts';
import { Err } from '../../../netstack/errors.ts';
import { FakeNetwork } from '../../../netstack/transport/fake.ts';
import {
  EPHEMERAL_HIGH,
  EPHEMERAL_LOW,
  PortManager,
  type PortRequest,
  isV4Mapped,
  mapV4,
  unmapV4,
} from '../../../netstack/transport/ports.ts';

const net = new FakeNetwork();
const host = net.addHost(['198.18.0.1/24', 'fd74:7376::1/64']);

const ip = (s: string) => parseAddress(s)!;

interface Sock {
  addr: string;
  family?: 4 | 6;
  v6only?: boolean;
  reuseAddr?: boolean;
  reusePort?: boolean;
  listening?: boolean;
  nicId?: number;
  remote?: string;
}

function req(protocol: number, s: Sock, port = 5000): PortRequest {
  const address = ip(s.addr);
  return {
    protocol,
    address,
    port,
    family: s.family ?? (address.length === 4 ? 4 : 6),
    v6only: s.v6only,
    reuseAddr: s.reuseAddr,
    reusePort: s.reusePort,
    listening: s.listening,
    nicId: s.nicId,
    remote: s.remote ? { address: ip(s.remote), port: 80 } : undefined,
    owner: {},
  };
}

// [name, protocol, first, second, second succeeds?]
const table: [string, number, Sock, Sock, boolean][] = [
  ['udp same specific address', 17, { addr: '198.18.0.1' }, { addr: '198.18.0.1' }, false],
  ['udp different specific addresses', 17, { addr: '198.18.0.1' }, { addr: '198.18.0.2' }, true],
  ['udp wildcard then specific', 17, { addr: '0.0.0.0' }, { addr: '198.18.0.1' }, false],
  ['udp specific then wildcard', 17, { addr: '198.18.0.1' }, { addr: '0.0.0.0' }, false],
  ['udp wildcard twice', 17, { addr: '0.0.0.0' }, { addr: '0.0.0.0' }, false],
  ['udp both SO_REUSEADDR', 17, { addr: '0.0.0.0', reuseAddr: true }, { addr: '198.18.0.1', reuseAddr: true }, true],
  ['udp only first SO_REUSEADDR', 17, { addr: '0.0.0.0', reuseAddr: true }, { addr: '0.0.0.0' }, false],
  ['udp only second SO_REUSEADDR', 17, { addr: '0.0.0.0' }, { addr: '0.0.0.0', reuseAddr: true }, false],
  ['udp both SO_REUSEPORT', 17, { addr: '0.0.0.0', reusePort: true }, { addr: '0.0.0.0', reusePort: true }, true],
  ['udp only first SO_REUSEPORT', 17, { addr: '0.0.0.0', reusePort: true }, { addr: '0.0.0.0' }, false],
  ['udp v4 and v6 specific', 17, { addr: '198.18.0.1' }, { addr: 'fd74:7376::1' }, true],
  ['udp v6 same specific', 17, { addr: 'fd74:7376::1' }, { addr: 'fd74:7376::1' }, false],
  ['udp v6 wildcard dual-stack then v4 wildcard', 17, { addr: '::' }, { addr: '0.0.0.0' }, false],
  ['udp v6 wildcard dual-stack then v4 specific', 17, { addr: '::' }, { addr: '198.18.0.1' }, false],
  ['udp v4 wildcard then v6 wildcard dual-stack', 17, { addr: '0.0.0.0' }, { addr: '::' }, false],
  ['udp v6 wildcard v6only then v4 wildcard', 17, { addr: '::', v6only: true }, { addr: '0.0.0.0' }, true],
  ['udp v4 wildcard then v6 wildcard v6only', 17, { addr: '0.0.0.0' }, { addr: '::', v6only: true }, true],
  ['udp v6 wildcard then v6 specific', 17, { addr: '::', v6only: true }, { addr: 'fd74:7376::1' }, false],
  ['udp v4-mapped counts as v4', 17, { addr: '::ffff:198.18.0.1', family: 6 }, { addr: '198.18.0.1' }, false],
  ['udp v4-mapped vs other v4', 17, { addr: '::ffff:198.18.0.1', family: 6 }, { addr: '198.18.0.2' }, true],
  ['udp v4-mapped vs v6only wildcard', 17, { addr: '::ffff:198.18.0.1', family: 6 }, { addr: '::', v6only: true }, true],
  ['udp different NICs', 17, { addr: '0.0.0.0', nicId: 1 }, { addr: '0.0.0.0', nicId: 2 }, true],
  ['udp one NIC-bound one not', 17, { addr: '0.0.0.0', nicId: 1 }, { addr: '0.0.0.0' }, false],
  ['tcp both SO_REUSEADDR, neither listening', 6, { addr: '0.0.0.0', reuseAddr: true }, { addr: '0.0.0.0', reuseAddr: true }, true],
  ['tcp both SO_REUSEADDR, first listening', 6, { addr: '0.0.0.0', reuseAddr: true, listening: true }, { addr: '198.18.0.1', reuseAddr: true }, false],
  // Linux checks only the existing socket's state (inet_bind_conflict): a new listener may share with it.
  ['tcp both SO_REUSEADDR, second listening', 6, { addr: '0.0.0.0', reuseAddr: true }, { addr: '0.0.0.0', reuseAddr: true, listening: true }, true],
  ['tcp only first SO_REUSEADDR, second listening', 6, { addr: '0.0.0.0', reuseAddr: true }, { addr: '0.0.0.0', listening: true }, false],
  ['tcp both SO_REUSEPORT, first listening', 6, { addr: '0.0.0.0', reusePort: true, listening: true }, { addr: '0.0.0.0', reusePort: true, listening: true }, true],
  ['tcp connected, different remotes', 6, { addr: '198.18.0.1', remote: '198.18.0.2' }, { addr: '198.18.0.1', remote: '198.18.0.3' }, true],
  ['tcp connected, same remote', 6, { addr: '198.18.0.1', remote: '198.18.0.2' }, { addr: '198.18.0.1', remote: '198.18.0.2' }, false],
  ['tcp bound then connected', 6, { addr: '0.0.0.0' }, { addr: '198.18.0.1', remote: '198.18.0.2' }, false],
  ['different protocols', 17, { addr: '0.0.0.0' }, { addr: '0.0.0.0', family: 4 }, true],
];

for (const [name, proto, a, b, ok] of table) {
  t.test(`${name} → ${ok ? 'both bound' : 'EADDRINUSE'}`, async (t) => {
    const pm = new PortManager(host);
    t.equal(pm.reserve(req(proto, a)), 5000);
    const second = req(name === 'different protocols' ? 6 : proto, b);
    t.equal(pm.isAvailable(second), ok);
    t.equal(pm.reserve(second), ok ? 5000 : Err.AddressInUse);
    t.equal(pm.count(second.protocol, 5000), ok && second.protocol === proto ? 2 : 1);
  });
}

t.test('inherit shares a listener\'s port without a conflict check; release by owner ends it', async (t) => {
  const pm = new PortManager(host);
  t.equal(pm.reserve({ protocol: 6, address: ip('0.0.0.0'), port: 80, family: 4, listening: true }), 80);
  const child = {};
  const remote = { address: ip('198.18.0.9'), port: 40000 };
  pm.inherit({ protocol: 6, address: ip('198.18.0.1'), port: 80, family: 4, remote, owner: child });
  t.equal(pm.count(6, 80), 2);
  pm.release(6, ip('0.0.0.0'), 80);
  t.equal(pm.reserve({ protocol: 6, address: ip('198.18.0.1'), port: 80, family: 4 }), Err.AddressInUse, 'the child holds it');
  pm.release(6, ip('198.18.0.1'), 80, child);
  t.equal(pm.reserve({ protocol: 6, address: ip('198.18.0.1'), port: 80, family: 4 }), 80, 'free once released');
  t.throws(() => pm.inherit({ protocol: 6, address: ip('0.0.0.0'), port: 0, family: 4 }), RangeError);
});

t.test('transfer hands a reservation to a new owner as it stands; other options or no reservation change nothing', async (t) => {
  const pm = new PortManager(host);
  const child = {};
  const tw = {};
  const remote = { address: ip('198.18.0.9'), port: 40000 };
  const flags = { v6only: false, reuseAddr: true, reusePort: false };
  pm.inherit({ protocol: 6, address: ip('198.18.0.1'), port: 80, family: 4, reuseAddr: true, remote, owner: child });
  t.notOk(pm.transfer(6, ip('198.18.0.1'), 80, child, tw, { ...flags, reuseAddr: false }), 'made with SO_REUSEADDR');
  t.notOk(pm.transfer(6, ip('198.18.0.2'), 80, child, tw, flags), 'another local address');
  t.notOk(pm.transfer(6, ip('198.18.0.1'), 80, {}, tw, flags), 'an owner holding none');
  t.ok(pm.transfer(6, ip('198.18.0.1'), 80, child, tw, flags));
  t.equal(pm.count(6, 80), 1, 'still one reservation');
  // The same 4-tuple still conflicts, another peer may share the port, as before the transfer.
  t.equal(pm.reserve({ protocol: 6, address: ip('198.18.0.1'), port: 80, family: 4, remote }), Err.AddressInUse);
  const other = pm.reserve({ protocol: 6, address: ip('198.18.0.1'), port: 80, family: 4, remote: { address: ip('198.18.0.9'), port: 40001 } });
  t.equal(other, 80, 'a different peer shares it');
  pm.release(6, ip('198.18.0.1'), 80, child);
  t.equal(pm.count(6, 80), 2, 'the old owner holds nothing any more');
  pm.release(6, ip('198.18.0.1'), 80, tw);
  t.equal(pm.reserve({ protocol: 6, address: ip('198.18.0.1'), port: 80, family: 4, remote }), 80, 'free once the new owner releases it');
});

t.test('release frees the port for a conflicting bind', async (t) => {
  const pm = new PortManager(host);
  const owner = {};
  t.equal(pm.reserve({ protocol: 17, address: ip('0.0.0.0'), port: 53, family: 4, owner }), 53);
  t.equal(pm.reserve({ protocol: 17, address: ip('198.18.0.1'), port: 53, family: 4 }), Err.AddressInUse);
  pm.release(17, ip('0.0.0.0'), 53, {}); // wrong owner: no effect
  t.equal(pm.count(17, 53), 1);
  pm.release(17, ip('0.0.0.0'), 53, owner);
  t.equal(pm.count(17, 53), 0);
  t.equal(pm.reserve({ protocol: 17, address: ip('198.18.0.1'), port: 53, family: 4 }), 53);
});

t.test('release without owner removes one reservation with that address', async (t) => {
  const pm = new PortManager(host);
  pm.reserve({ protocol: 17, address: ip('0.0.0.0'), port: 7, family: 4, reuseAddr: true });
  pm.reserve({ protocol: 17, address: ip('198.18.0.1'), port: 7, family: 4, reuseAddr: true });
  pm.release(17, ip('198.18.0.1'), 7);
  t.equal(pm.count(17, 7), 1);
  t.equal(pm.isAvailable({ protocol: 17, address: ip('198.18.0.1'), port: 7, family: 4 }), false);
});

t.test('ephemeral bind picks distinct ports in 32768–60999', async (t) => {
  const pm = new PortManager(host);
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const p = pm.reserve({ protocol: 17, address: ip('0.0.0.0'), port: 0, family: 4 });
    t.type(p, 'number');
    const n = p as number;
    if (n < EPHEMERAL_LOW || n > EPHEMERAL_HIGH || seen.has(n)) t.fail(`bad port ${n}`);
    seen.add(n);
  }
  t.equal(seen.size, 200);
  t.equal(EPHEMERAL_LOW, 32768);
  t.equal(EPHEMERAL_HIGH, 60999);
});

t.test('ephemeral range exhausted → NoPortAvailable (EAGAIN)', async (t) => {
  const pm = new PortManager(host, { low: 40000, high: 40003 });
  const got = new Set<number>();
  for (let i = 0; i < 4; i++) got.add(pm.reserve({ protocol: 17, address: ip('0.0.0.0'), port: 0, family: 4 }) as number);
  t.same([...got].sort(), [40000, 40001, 40002, 40003]);
  const r = pm.reserve({ protocol: 17, address: ip('0.0.0.0'), port: 0, family: 4 });
  t.equal(r, Err.NoPortAvailable);
  t.equal((r as typeof Err.NoPortAvailable).errno, 11);
  // Ephemeral selection never shares, even among SO_REUSEADDR sockets.
  t.equal(pm.reserve({ protocol: 17, address: ip('0.0.0.0'), port: 0, family: 4, reuseAddr: true }), Err.NoPortAvailable);
  // Another protocol has its own space.
  t.type(pm.reserve({ protocol: 6, address: ip('0.0.0.0'), port: 0, family: 4 }), 'number');
});

t.test('ephemeral selection skips explicitly bound ports', async (t) => {
  const pm = new PortManager(host, { low: 40000, high: 40001 });
  t.equal(pm.reserve({ protocol: 17, address: ip('198.18.0.1'), port: 40000, family: 4 }), 40000);
  t.equal(pm.reserve({ protocol: 17, address: ip('0.0.0.0'), port: 0, family: 4 }), 40001);
});

t.test('connect-time selection (RFC 6056 algorithm 4) is per-destination and 4-tuple unique', async (t) => {
  const pm = new PortManager(host, { low: 40000, high: 40009 });
  const conn = (remote: string, port = 80) =>
    pm.reserve({ protocol: 6, address: ip('198.18.0.1'), port: 0, family: 4, remote: { address: ip(remote), port }, owner: {} });
  // Ten connections to one peer use all ten ports; the same ports serve another peer too.
  const a = new Set<number>();
  for (let i = 0; i < 10; i++) a.add(conn('198.18.0.2') as number);
  t.equal(a.size, 10);
  t.equal(conn('198.18.0.2'), Err.NoPortAvailable);
  const b = new Set<number>();
  for (let i = 0; i < 10; i++) b.add(conn('198.18.0.3') as number);
  t.equal(b.size, 10);
  // Successive ports to one destination step by one from a keyed offset.
  const pm2 = new PortManager(host);
  const p1 = pm2.reserve({ protocol: 6, address: ip('198.18.0.1'), port: 0, family: 4, remote: { address: ip('198.18.0.9'), port: 443 }, owner: {} }) as number;
  const p2 = pm2.reserve({ protocol: 6, address: ip('198.18.0.1'), port: 0, family: 4, remote: { address: ip('198.18.0.9'), port: 443 }, owner: {} }) as number;
  t.equal(p2 - EPHEMERAL_LOW, (p1 - EPHEMERAL_LOW + 1) % (EPHEMERAL_HIGH - EPHEMERAL_LOW + 1));
});

t.test('an ephemeral share → bind and connect take only ports of the shard\'s residue class, all of them, then EAGAIN', async (t) => {
  // 40001–40010 holds 40001, 40004, 40007 and 40010 for shard 2 of 3 (≡ 2 mod 3).
  const pm = new PortManager(host, { low: 40001, high: 40010 });
  pm.setEphemeralShare(3, 2);
  t.same(pm.ephemeralShare, { of: 3, index: 2 });
  const bound = new Set<number>();
  for (let i = 0; i < 4; i++) bound.add(pm.reserve({ protocol: 17, address: ip('0.0.0.0'), port: 0, family: 4 }) as number);
  t.same([...bound].sort(), [40001, 40004, 40007, 40010]);
  t.equal(pm.reserve({ protocol: 17, address: ip('0.0.0.0'), port: 0, family: 4 }), Err.NoPortAvailable);
  // Ports asked for by number are anyone's.
  t.equal(pm.reserve({ protocol: 17, address: ip('0.0.0.0'), port: 40003, family: 4 }), 40003);
  const conn = () =>
    pm.reserve({ protocol: 6, address: ip('198.18.0.1'), port: 0, family: 4, remote: { address: ip('198.18.0.2'), port: 80 }, owner: {} });
  const connected = new Set<number>();
  for (let i = 0; i < 4; i++) connected.add(conn() as number);
  t.same([...connected].sort(), [40001, 40004, 40007, 40010], 'RFC 6056 selection walks the same class');
  t.equal(conn(), Err.NoPortAvailable);
  // Over the whole default range, shard 0 of 4 gets only multiples of 4, spread over it.
  const wide = new PortManager(host);
  wide.setEphemeralShare(4, 0);
  const ports = Array.from({ length: 500 }, () => wide.reserve({ protocol: 17, address: ip('0.0.0.0'), port: 0, family: 4 }) as number);
  t.ok(ports.every((p) => p % 4 === 0 && p >= EPHEMERAL_LOW && p <= EPHEMERAL_HIGH), 'all ≡ 0 mod 4, in range');
  t.equal(new Set(ports).size, 500);
  t.ok(Math.max(...ports) - Math.min(...ports) > 10000, 'spread over the range');
  // A class with no port in the range, and bad shares.
  const tiny = new PortManager(host, { low: 40001, high: 40001 });
  tiny.setEphemeralShare(2, 0);
  t.equal(tiny.reserve({ protocol: 17, address: ip('0.0.0.0'), port: 0, family: 4 }), Err.NoPortAvailable);
  t.throws(() => pm.setEphemeralShare(3, 3), RangeError);
  t.throws(() => pm.setEphemeralShare(0, 0), RangeError);
});

t.test('explicit port out of range → InvalidArgument', async (t) => {
  const pm = new PortManager(host);
  t.equal(pm.reserve({ protocol: 17, address: ip('0.0.0.0'), port: 65536, family: 4 }), Err.InvalidArgument);
  t.equal(pm.reserve({ protocol: 17, address: ip('0.0.0.0'), port: -1, family: 4 }), Err.InvalidArgument);
});

t.test('v4-mapped helpers', async (t) => {
  t.ok(isV4Mapped(ip('::ffff:198.18.0.1')));
  t.notOk(isV4Mapped(ip('fd74:7376::1')));
  t.notOk(isV4Mapped(ip('198.18.0.1')));
  t.same(unmapV4(ip('::ffff:198.18.0.1')), ip('198.18.0.1'));
  t.same(mapV4(ip('198.18.0.1')), ip('::ffff:198.18.0.1'));
});
