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

/** Allowed calls, grouped by why the Gofer needs them, each with its own reason. */
export const GOFER_ALLOWLIST_WHY: Readonly<Record<string, readonly string[]>> = {
  // The 9P operations themselves (gofer/server/ops.ts, lib/fs.ts): descriptor-relative lookups and changes.
  'file operations': [
    'openat', // reopen through /proc/self/fd; "." of a directory; ".." of a walk
    'openat2', // every confined lookup (RESOLVE_BENEATH / RESOLVE_IN_ROOT)
    'close', // a fid's descriptors at Tclunk; a donated descriptor once sent
    'statx', // Tgetattr, qids, identity checks
    'newfstatat', // glibc's fstat() since 2.33 (fstatat with AT_EMPTY_PATH): libuv's fallback from statx
    'fstat', // the same through an older glibc, or code calling it directly
    'fstatfs', // Tstatfs
    'mkdirat', // Tmkdir
    'mknodat', // Tmknod (regular files and fifos; CAP_MKNOD is dropped, so never a device)
    'unlinkat', // Tunlinkat, Tremove
    'renameat', // Trenameat, Trename (glibc's renameat2 with no flags)
    'renameat2', // the same where glibc issues renameat2 itself (lib/fs.renameat2)
    'symlinkat', // Tsymlink
    'readlinkat', // Treadlink, symlink resolution of aname
    'linkat', // Tlink (through /proc/self/fd/N: no CAP_DAC_READ_SEARCH needed)
    'fchownat', // Tsetattr uid/gid, owner of created files
    'fchmodat2', // Tsetattr mode on an O_PATH descriptor (Linux 6.6+)
    'fchmodat', // lib/fs.fchmodat; no handler calls it today (fchmodat2 or fchmod do), so it could go
    'fchmod', // Tsetattr mode where fchmodat2 is missing
    'utimensat', // Tsetattr times
    'ftruncate', // Tsetattr size
    'getdents64', // Treaddir
    'lseek', // Treaddir's cookie
    'fcntl', // F_DUPFD_CLOEXEC, F_GETFL, F_OFD_SETLK/GETLK (Tlock, Tgetlock)
    'fgetxattr', // Txattrwalk
    'flistxattr', // Txattrwalk with an empty name: the list of names
    'fsetxattr', // Txattrcreate + Tclunk
    'fremovexattr', // Txattrcreate of size 0 + Tclunk: removal
  ],
  // Reads, writes and fsync run on libuv's thread pool through Node's fs.
  'file I/O': [
    'read', // the listening and connected sockets (Node's net); libuv's wake-up eventfd
    'write', // replies on a plain connection; libuv's wake-ups
    'pread64', // Tread at an offset
    'pwrite64', // Twrite at an offset
    'readv', // libuv's fs.read with more than one buffer, and its stream reads
    'writev', // Node's net writes several queued replies at once
    'preadv', // libuv's fs.read at an offset with more than one buffer
    'preadv2', // Tread of cached bytes at once (RWF_NOWAIT, lib/fs.preadNowait), the thread pool taking the rest
    'pwritev', // libuv's fs.write at an offset with more than one buffer
    'fsync', // Tfsync
    'fdatasync', // Tfsync with its datasync flag
  ],
  // Accepting clients on the inherited listening socket, and the event loop.
  'connections and event loop': [
    'accept4', // a new client on the inherited listening socket
    'shutdown', // Node ends a connection's writing side once the client has ended its own
    'recvmsg', // a donating connection's UnixStream reads with it
    'sendmsg', // SCM_RIGHTS descriptor donation
    'sendto', // glibc's send(): the UnixStream's writes (no address: the socket is connected, socket() is denied)
    'epoll_wait', // libuv's event loop
    'epoll_pwait', // the same with a signal mask (libuv, glibc's epoll_wait on newer kernels)
    'epoll_pwait2', // the same with a nanosecond timeout (newer libuv)
    'epoll_ctl', // adding and removing the sockets libuv polls
    'eventfd2', // libuv's async wake-ups
  ],
  // Node's runtime: memory, threads, time and signals.
  runtime: [
    'mmap', // V8's heap, thread stacks, malloc's large blocks
    'munmap', // giving them back
    'mprotect', // V8's code pages (write, then execute) and stack guard pages
    'madvise', // V8 and malloc returning unused pages (MADV_DONTNEED)
    'mremap', // glibc's realloc of a large block
    'brk', // malloc's main arena
    'futex', // locks and condition variables between the threads
    'clone', // a new thread (V8 and libuv start some lazily); fork is useless with execve denied
    'clone3', // the same through newer glibc's pthread_create
    'set_robust_list', // glibc, at thread start
    'rseq', // glibc, at thread start
    'sched_yield', // V8's spin locks, and UnixStream's poll yielding the CPU
    'sched_getaffinity', // libuv and V8 sizing their thread pools from the CPUs
    'nanosleep', // short sleeps of V8's platform threads
    'clock_nanosleep', // glibc's nanosleep() and usleep()
    'clock_gettime', // normally the vDSO; the syscall when the vDSO is not used
    'gettimeofday', // the same, for callers of the older call
    'getrandom', // V8's hash seeds and Math.random, glibc's malloc
    'getpid', // Node's process.pid, libuv, tgkill's first argument
    'gettid', // V8's and glibc's ids of the running thread
    'tgkill', // V8 and libuv signal their own threads
    'rt_sigaction', // Node's and libuv's signal handlers (SIGTERM, SIGCHLD, SIGPIPE ignored)
    'rt_sigprocmask', // signals blocked on new threads and around libuv's signal handling
    'rt_sigreturn', // the return from any signal handler
    'sigaltstack', // the stack Node's fatal-signal handler runs on
    'restart_syscall', // a sleep interrupted by a signal, resumed by the kernel
    'exit', // a thread ending
    'exit_group', // the process ending (SIGTERM, its socket gone)
    'prctl', // PR_SET_NAME of new threads
    'getrusage', // process.resourceUsage and V8's CPU time checks
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
