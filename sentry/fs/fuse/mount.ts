/**
 * Opening `/dev/fuse` and mounting a FUSE file system on it with mount(2), through koffi: no libfuse, no fusermount.
 * Needs CAP_SYS_ADMIN in the mount's namespace (tsvisor runs as root).
 */
import koffi from 'koffi';
import { C, SysError, errno, sys } from '../../../lib/libc.ts';

const libc = koffi.load('libc.so.6');
const mountFn = libc.func('int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const char *data)') as (
  src: string,
  target: string,
  fstype: string,
  flags: number,
  data: string,
) => number;
const umount2Fn = libc.func('int umount2(const char *target, int flags)') as (target: string, flags: number) => number;

/** mount(2) flags used here. */
export const MS = { RDONLY: 1, NOSUID: 2, NODEV: 4, NOEXEC: 8, NOATIME: 1024 } as const;
const MNT_DETACH = 2;

/** How to mount. */
export interface FuseMountOptions {
  /** Mount read-only (MS_RDONLY): every change fails EROFS in the kernel, before it reaches us. */
  readOnly?: boolean;
  /** The source name shown in /proc/mounts. */
  source?: string;
  /** The subtype: the fstype is `fuse.<subtype>`. */
  subtype?: string;
  /** Let processes of other users (and of the sandbox's user namespace) in; default true. */
  allowOther?: boolean;
}

/**
 * Opens `/dev/fuse` (non-blocking, close-on-exec) and mounts it at `target` with the kernel checking permissions
 * (default_permissions), set-id bits and device nodes ignored (nosuid, nodev); returns the descriptor.
 */
export function mountFuse(target: string, o: FuseMountOptions = {}): number {
  const fd = sys.open('/dev/fuse', C.O_RDWR | C.O_NONBLOCK | C.O_CLOEXEC, 0);
  if (fd < 0) throw new SysError('open', errno(), '/dev/fuse');
  const data = [`fd=${fd}`, 'rootmode=40000', 'user_id=0', 'group_id=0', 'default_permissions'];
  if (o.allowOther ?? true) data.push('allow_other');
  const flags = MS.NOSUID | MS.NODEV | (o.readOnly ? MS.RDONLY : 0);
  const r = mountFn(o.source ?? 'tsvisor', target, `fuse.${o.subtype ?? 'tsvisor'}`, flags, data.join(','));
  if (r < 0) {
    const e = errno();
    sys.close(fd);
    throw new SysError('mount', e, target);
  }
  return fd;
}

/** mount(2) of any file system (a tmpfs for an overlay's upper layer); throws SysError. */
export function mountFs(source: string, target: string, fstype: string, flags: number, data: string): void {
  if (mountFn(source, target, fstype, flags, data) < 0) throw new SysError('mount', errno(), target);
}

/** Detaches the mount at `target` (lazily: processes still inside keep it until they leave); ignores EINVAL/ENOENT. */
export function unmountFuse(target: string): void {
  if (umount2Fn(target, MNT_DETACH) < 0) {
    const e = errno();
    if (e !== 22 && e !== 2) throw new SysError('umount2', e, target);
  }
}
