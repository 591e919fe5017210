import t from 'tap';
import { SYS, SYSCALL_LIMIT, syscallName, syscallNumber } from '../../../sentry/seccomp/sysno.ts';

t.test('x86-64 numbers ↔ names', (t) => {
  t.equal(SYS.read, 0);
  t.equal(SYS.socket, 41);
  t.equal(SYS.accept4, 288);
  t.equal(SYS.recvmmsg, 299);
  t.equal(SYS.sendmmsg, 307);
  t.equal(SYS.seccomp, 317);
  t.equal(SYS.uprobe, 336);
  t.equal(SYS.pidfd_send_signal, 424);
  t.equal(SYS.io_uring_setup, 425);
  t.equal(SYS.pidfd_open, 434);
  t.equal(SYS.pidfd_getfd, 438);
  t.equal(SYS.file_setattr, 469);
  t.equal(SYSCALL_LIMIT, 470);
  t.equal(syscallName(400), 'syscall_400', 'the gap');
  t.equal(syscallName(-1), 'syscall_-1');
  t.equal(syscallNumber('connect'), 42);
  t.equal(syscallNumber('toString'), undefined, 'no prototype names');
  for (let nr = 0; nr < SYSCALL_LIMIT; nr++) {
    const name = syscallName(nr);
    if (!name.startsWith('syscall_')) t.equal(syscallNumber(name), nr);
  }
  t.end();
});
