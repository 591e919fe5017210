/**
 * What the confined Gofer may do once it serves: the system calls of its seccomp allowlist and the capabilities it
 * keeps. The list was taken from `strace -f` of a serving Gofer (every 9P message, the fuzzer, shutdown), plus
 * the calls Node's runtime makes on paths that run rarely (a new thread, a grown heap, a signal). Everything else
 * fails with EPERM: above all socket, connect, bind (no new endpoints: the one listening socket was made by the
 * launcher), execve, ptrace, mount, pivot_root, unshare, setns, open_by_handle_at and name_to_handle_at (the
 * classic container escape by file handle), io_uring, bpf, keyctl, process_vm_*, userfaultfd, and ioctl but for
 * the three requests of GOFER_IOCTLS.
 * The filter is compiled in cli/gofer.ts with sentry/seccomp's assembler (gofer/ imports only lib/).
 */

/** Allowed calls, grouped by why the Gofer needs them. */
export const GOFER_ALLOWLIST_WHY: Readonly<Record<string, readonly string[]>> = {
  // The 9P operations themselves (gofer/server/ops.ts, lib/fs.ts): descriptor-relative lookups and changes.
  'file operations': [
    'openat', // reopen through /proc/self/fd; "." of a directory; ".." of a walk
    'openat2', // every confined lookup (RESOLVE_BENEATH / RESOLVE_IN_ROOT)
    'close',
    'statx', // Tgetattr, qids, identity checks
    'newfstatat',
    'fstat',
    'fstatfs', // Tstatfs
    'mkdirat', // Tmkdir
    'mknodat', // Tmknod (regular files and fifos; CAP_MKNOD is dropped, so never a device)
    'unlinkat', // Tunlinkat, Tremove
    'renameat', // Trenameat, Trename (glibc's renameat2 with no flags)
    'renameat2',
    'symlinkat', // Tsymlink
    'readlinkat', // Treadlink, symlink resolution of aname
    'linkat', // Tlink (through /proc/self/fd/N: no CAP_DAC_READ_SEARCH needed)
    'fchownat', // Tsetattr uid/gid, owner of created files
    'fchmodat2', // Tsetattr mode on an O_PATH descriptor (Linux 6.6+)
    'fchmodat',
    'fchmod', // Tsetattr mode where fchmodat2 is missing
    'utimensat', // Tsetattr times
    'ftruncate', // Tsetattr size
    'getdents64', // Treaddir
    'lseek', // Treaddir's cookie
    'fcntl', // F_DUPFD_CLOEXEC, F_GETFL, F_OFD_SETLK/GETLK (Tlock, Tgetlock)
    'fgetxattr', // Txattrwalk
    'flistxattr',
    'fsetxattr', // Txattrcreate + Tclunk
    'fremovexattr',
  ],
  // Reads, writes and fsync run on libuv's thread pool through Node's fs.
  'file I/O': ['read', 'write', 'pread64', 'pwrite64', 'readv', 'writev', 'preadv', 'pwritev', 'fsync', 'fdatasync'],
  // Accepting clients on the inherited listening socket, and the event loop.
  'connections and event loop': [
    'accept4',
    'shutdown',
    'recvmsg', // a donating connection's UnixStream reads with it
    'sendmsg', // SCM_RIGHTS descriptor donation
    'sendto', // glibc's send(): the UnixStream's writes (no address: the socket is connected, socket() is denied)
    'epoll_wait',
    'epoll_pwait',
    'epoll_pwait2',
    'epoll_ctl',
    'eventfd2', // libuv's async wake-ups
  ],
  // Node's runtime: memory, threads, time and signals.
  runtime: [
    'mmap',
    'munmap',
    'mprotect',
    'madvise',
    'mremap',
    'brk',
    'futex',
    'clone', // a new thread (V8 and libuv start some lazily); fork is useless with execve denied
    'clone3',
    'set_robust_list', // glibc, at thread start
    'rseq', // glibc, at thread start
    'sched_yield',
    'sched_getaffinity',
    'nanosleep',
    'clock_nanosleep',
    'clock_gettime', // normally the vDSO; the syscall when the vDSO is not used
    'gettimeofday',
    'getrandom',
    'getpid',
    'gettid',
    'tgkill', // V8 and libuv signal their own threads
    'rt_sigaction',
    'rt_sigprocmask',
    'rt_sigreturn',
    'sigaltstack',
    'restart_syscall',
    'exit',
    'exit_group',
    'prctl', // PR_SET_NAME of new threads
    'getrusage',
  ],
};

/**
 * ioctl is allowed for these requests only (its second argument): libuv makes a descriptor non-blocking with
 * FIONBIO when it starts polling it (the UnixStream of a donating connection), and may set close-on-exec with
 * FIOCLEX. Any other request, TIOCSTI on an inherited terminal above all, fails with EPERM.
 */
export const GOFER_IOCTLS: Readonly<Record<string, number>> = { FIONBIO: 0x5421, FIOCLEX: 0x5451, FIONCLEX: 0x5450 };

/** Every allowed call. */
export const GOFER_ALLOWLIST: readonly string[] = Object.values(GOFER_ALLOWLIST_WHY).flat();

/**
 * The capabilities the confined Gofer keeps, all about file ownership: CHOWN (give created files to the client's
 * user), DAC_OVERRIDE (serve files whatever their mode: the Sentry checks permissions, as in gVisor), FOWNER
 * (chmod and utimes on files of other owners), FSETID (keep set-id bits on chown and write). Not DAC_READ_SEARCH:
 * it also grants open_by_handle_at. Not MKNOD: no device node can be made.
 */
export const GOFER_CAPABILITIES: readonly string[] = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_FSETID'];
