import t from 'tap';
import { ip } from './helpers.ts';
import { pingSocketError, udpSocketError } from '../../../../netstack/transport/udp/icmperr.ts';
import type { ControlMessage } from '../../../../netstack/transport/protocol.ts';

const msg = (family: 4 | 6, type: number, code: number): ControlMessage => ({
  kind: 'host-unreachable',
  type,
  code,
  family,
  from: ip(family === 4 ? '198.18.0.9' : 'fd74:7376::9'),
  mtu: 0,
});

// [family, type, code, udp errno/hard, ping errno/hard] ('-' = ignored)
const table: [4 | 6, number, number, string, string][] = [
  [4, 3, 0, '101/soft', '113/hard'],
  [4, 3, 1, '113/soft', '113/hard'],
  [4, 3, 3, '111/hard', '113/hard'],
  [4, 3, 4, '90/soft', '90/hard'],
  [4, 3, 5, '95/soft', '113/hard'],
  [4, 3, 99, '113/soft', '113/hard'],
  [4, 11, 0, '113/soft', '113/soft'],
  [4, 12, 0, '71/hard', '71/hard'],
  [4, 4, 0, '-', '-'],
  [4, 5, 0, '-', '-'],
  [6, 1, 4, '111/hard', '111/hard'],
  [6, 1, 5, '13/hard', '13/hard'],
  [6, 1, 9, '71/hard', '71/hard'],
  [6, 2, 0, '90/soft', '90/soft'],
  [6, 3, 0, '113/soft', '113/soft'],
  [6, 4, 1, '71/hard', '71/hard'],
  [6, 137, 0, '-', '-'],
];

const show = (e: ReturnType<typeof udpSocketError>) => (e ? `${e.err.errno}/${e.hard ? 'hard' : 'soft'}` : '-');

for (const [fam, type, code, udp, ping] of table) {
  t.test(`ICMPv${fam} type ${type} code ${code} → udp ${udp}, ping ${ping}`, async (t) => {
    t.equal(show(udpSocketError(msg(fam, type, code))), udp);
    t.equal(show(pingSocketError(msg(fam, type, code))), ping);
  });
}
