/**
 * rtnetlink through koffi, for the few changes a takeover makes at every container's create, without an `ip`
 * process each (RFC 3549; Linux's include/uapi/linux/{netlink,rtnetlink,if_addr}.h for the layouts). The socket
 * belongs to the network namespace of the thread that calls: call inside NetnsHandle.enter for another one.
 */
import { C, SysError, errno, errnoName, sys } from './libc.ts';

const AF_NETLINK = 16;
const NETLINK_ROUTE = 0;
const NLMSG_ERROR = 2;
const RTM_DELADDR = 21;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;

/** An IPv4 address of an interface, as `ip -j addr` lists it: its own address, prefix, and peer if any. */
export interface Ipv4Address {
  local: string;
  prefixlen: number;
  address?: string;
}

function ipv4Bytes(text: string): Uint8Array {
  const parts = text.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !(p >= 0 && p <= 255))) throw new Error(`not an IPv4 address: ${text}`);
  return Uint8Array.from(parts);
}

/**
 * `ip -4 addr flush dev DEV` for the addresses given: one RTM_DELADDR each, acknowledged. An address already
 * gone (a secondary that went with its primary) is not an error; any other failure throws SysError.
 */
export function deleteIpv4Addresses(ifindex: number, addrs: readonly Ipv4Address[]): void {
  if (addrs.length === 0) return;
  const fd = sys.socket(AF_NETLINK, C.SOCK_RAW | C.SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) throw new SysError('socket', errno(), 'AF_NETLINK');
  try {
    const reply = new Uint8Array(4096);
    addrs.forEach((a, seq) => {
      // nlmsghdr (16) + ifaddrmsg (8) + IFA_LOCAL and IFA_ADDRESS attributes (8 each).
      const msg = new Uint8Array(40);
      const v = new DataView(msg.buffer);
      v.setUint32(0, msg.length, true);
      v.setUint16(4, RTM_DELADDR, true);
      v.setUint16(6, NLM_F_REQUEST | NLM_F_ACK, true);
      v.setUint32(8, seq + 1, true);
      msg[16] = C.AF_INET;
      msg[17] = a.prefixlen;
      v.setUint32(20, ifindex, true);
      v.setUint16(24, 8, true);
      v.setUint16(26, IFA_LOCAL, true);
      msg.set(ipv4Bytes(a.local), 28);
      v.setUint16(32, 8, true);
      v.setUint16(34, IFA_ADDRESS, true);
      msg.set(ipv4Bytes(a.address ?? a.local), 36);
      if (sys.send(fd, msg, msg.length, 0) < 0) throw new SysError('send', errno(), 'RTM_DELADDR');
      const n = sys.read(fd, reply, reply.length);
      if (n < 0) throw new SysError('recv', errno(), 'RTM_DELADDR');
      const r = new DataView(reply.buffer, 0, n);
      if (n < 20 || r.getUint16(4, true) !== NLMSG_ERROR) throw new Error('RTM_DELADDR: no acknowledgement from the kernel');
      const e = -r.getInt32(16, true);
      // EADDRNOTAVAIL: gone already (secondaries go with their primary unless promote_secondaries is set).
      if (e !== 0 && errnoName(e) !== 'EADDRNOTAVAIL') throw new SysError('RTM_DELADDR', e, `${a.local}/${a.prefixlen}`);
    });
  } finally {
    sys.close(fd);
  }
}
