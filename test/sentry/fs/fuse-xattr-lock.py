# Driven by fuse.test.ts: extended attributes and locks on files of a FUSE mount (argv[1]), one result per line.
import errno, fcntl, os, struct, subprocess, sys

mode, m = sys.argv[1], sys.argv[2]

def err(f):
    try:
        f()
        return 'ok'
    except OSError as e:
        return errno.errorcode[e.errno]  # EOPNOTSUPP reads as its alias ENOTSUP, EWOULDBLOCK as EAGAIN

if mode == 'xattr':
    p = m + '/etc/x'
    os.setxattr(p, 'user.color', b'blue')
    print(os.getxattr(p, 'user.color').decode())
    big = bytes(range(256)) * 8
    os.setxattr(p, 'user.big', big)
    print(os.getxattr(p, 'user.big') == big)
    print(' '.join(sorted(os.listxattr(p))))
    print(err(lambda: os.setxattr(p, 'user.color', b'x', os.XATTR_CREATE)))
    print(err(lambda: os.setxattr(p, 'user.none', b'x', os.XATTR_REPLACE)))
    os.removexattr(p, 'user.color')
    print(err(lambda: os.getxattr(p, 'user.color')))
    print(err(lambda: os.removexattr(p, 'user.color')))
    print(err(lambda: os.setxattr(p, 'trusted.t', b'1')))
    print(err(lambda: os.getxattr(p, 'security.s')))
    os.mkdir(m + '/xd')
    os.setxattr(m + '/xd', 'user.dir', b'on a directory')
    print(os.getxattr(m + '/xd', 'user.dir').decode())
elif mode == 'lock':
    p = m + '/etc/x'
    fd = os.open(p, os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)  # F_SETLK, bytes 0-9
    fl = open(m + '/big', 'rb')
    fcntl.flock(fl, fcntl.LOCK_EX | fcntl.LOCK_NB)
    # Another process: the same calls conflict; F_GETLK names the holder.
    child = subprocess.run([sys.executable, __file__, 'lock-child', m, str(os.getpid())], capture_output=True, text=True)
    print(child.stdout.strip(), child.stderr.strip())
    fcntl.lockf(fd, fcntl.LOCK_UN, 10, 0)
    fcntl.flock(fl, fcntl.LOCK_UN)
    child = subprocess.run([sys.executable, __file__, 'lock-child', m, str(os.getpid())], capture_output=True, text=True)
    print(child.stdout.strip(), child.stderr.strip())
elif mode == 'lock-child':
    holder = int(sys.argv[3])
    fd = os.open(m + '/etc/x', os.O_RDWR)
    setlk = err(lambda: fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0))
    r = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack('hhqqi', fcntl.F_WRLCK, os.SEEK_SET, 0, 10, 0))
    t, _, start, length, pid = struct.unpack('hhqqi', r[:28])
    getlk = 'unlocked' if t == fcntl.F_UNLCK else f'held {start}+{length} by {"holder" if pid == holder else pid}'
    fl = open(m + '/big', 'rb')
    flk = err(lambda: fcntl.flock(fl, fcntl.LOCK_EX | fcntl.LOCK_NB))
    print(f'setlk={setlk} getlk={getlk} flock={flk}')
