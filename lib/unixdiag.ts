/**
 * Looking up a unix socket by inode with NETLINK_SOCK_DIAG (Linux's include/uapi/linux/{sock_diag,unix_diag}.h):
 * a socket is found while any file still refers to it, in any process, and not once the last close released it
 * (unix_release_sock takes it out of the namespace's table first). One request and one reply, where a scan of a
 * process's /proc/<pid>/fd takes a readlink per descriptor and sees only that process.
 */
import { sys } from './libc.ts';
import * as ux from './unix.ts';

const SOCK_DIAG_BY_FAMILY = 20;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 1;
const AF_UNIX = 1;
const MSG_DONTWAIT = 0x40;
const ENOENT = 2;
const REQ_LEN = 16 + 24;

const req = new Uint8Array(REQ_LEN);
const reqView = new DataView(req.buffer);
const reply = new Uint8Array(512);
const replyView = new DataView(reply.buffer);
let seq = 0;

/**
 * Whether the unix socket of inode `ino`, made in the network namespace of the NETLINK_SOCK_DIAG socket `nlfd`,
 * still exists (a descriptor of some process refers to it): true or false, or undefined when the lookup itself
 * failed (the caller then asks another way).
 */
export function unixSocketExists(nlfd: number, ino: number): boolean | undefined {
  if (nlfd < 0 || ino <= 0 || ino > 0xffffffff) return undefined;
  const s = (seq = (seq + 1) >>> 0);
  // nlmsghdr: length, type, flags, sequence, port (0: the kernel).
  reqView.setUint32(0, REQ_LEN, true);
  reqView.setUint16(4, SOCK_DIAG_BY_FAMILY, true);
  reqView.setUint16(6, NLM_F_REQUEST, true);
  reqView.setUint32(8, s, true);
  reqView.setUint32(12, 0, true);
  // unix_diag_req: family, protocol, pad, states (all), inode, what to show (nothing more), cookie (none).
  req[16] = AF_UNIX;
  req[17] = 0;
  reqView.setUint16(18, 0, true);
  reqView.setUint32(20, 0xffffffff, true);
  reqView.setUint32(24, ino, true);
  reqView.setUint32(28, 0, true);
  reqView.setUint32(32, 0xffffffff, true);
  reqView.setUint32(36, 0xffffffff, true);
  if (sys.send(nlfd, req, REQ_LEN, 0) !== REQ_LEN) return undefined;
  // The kernel answers within the send: the reply is queued before it returns. Anything older (a reply whose
  // reader gave up) is skipped by its sequence number.
  for (;;) {
    const n = ux.recv(nlfd, reply, MSG_DONTWAIT);
    if (n < 16) return undefined;
    if (replyView.getUint32(8, true) !== s) continue;
    const type = replyView.getUint16(4, true);
    if (type === SOCK_DIAG_BY_FAMILY) return n >= 16 + 8 && replyView.getUint32(16 + 4, true) === ino;
    if (type === NLMSG_ERROR && n >= 20) return -replyView.getInt32(16, true) === ENOENT ? false : undefined;
    return undefined;
  }
}
