import t, { type Test } from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { availableCongestion, busyCpuSeconds, describeMachine, readCpuTimes, readMachine, syscallNs } from '../../bench/machine.ts';

/** A sysfs root holding just `files` (path under the root → content). */
function fakeSys(t: Test, files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'tsv-machine-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text + '\n');
  }
  return root;
}

const DRIVER = 'devices/system/cpu/cpuidle/current_driver';
const POLL = 'module/haltpoll/parameters/guest_halt_poll_ns';

t.test('haltpoll with no polling: read, and the line says idle vCPUs halt at once', async (t) => {
  const m = readMachine(fakeSys(t, { [DRIVER]: 'haltpoll', [POLL]: '0' }));
  t.equal(m.cpuidle, 'haltpoll');
  t.equal(m.haltPollNs, 0);
  t.match(describeMachine(m), /cpuidle haltpoll, guest_halt_poll_ns 0: idle vCPUs halt at once/);
});

t.test('haltpoll polling 200 µs: the line gives the time', async (t) => {
  const m = readMachine(fakeSys(t, { [DRIVER]: 'haltpoll', [POLL]: '200000' }));
  t.equal(m.haltPollNs, 200000);
  t.match(describeMachine(m), /idle vCPUs poll 200 µs before they halt/);
  t.notMatch(describeMachine(m), /halt at once/);
});

t.test('another driver: its name, and no halt-poll figure even where the module file exists', async (t) => {
  const m = readMachine(fakeSys(t, { [DRIVER]: 'intel_idle', [POLL]: '0' }));
  t.equal(m.cpuidle, 'intel_idle');
  t.equal(m.haltPollNs, undefined);
  t.notMatch(describeMachine(m), /halt/);
});

t.test('no cpuidle at all: CPUs and kernel only', async (t) => {
  const m = readMachine(fakeSys(t, {}), fakeSys(t, {}));
  t.equal(m.cpuidle, undefined);
  t.ok(m.cpus >= 1);
  t.match(describeMachine(m), /^machine: \d+ CPUs?, Linux \S+$/);
});

t.test('the default TCP congestion control: read from proc and named in the line; the ones on offer listed', async (t) => {
  const proc = fakeSys(t, { 'sys/net/ipv4/tcp_congestion_control': 'bbr', 'sys/net/ipv4/tcp_available_congestion_control': 'reno bbr cubic' });
  const m = readMachine(fakeSys(t, {}), proc);
  t.equal(m.congestion, 'bbr');
  t.match(describeMachine(m), /; TCP congestion control bbr$/);
  t.same(availableCongestion(proc), ['reno', 'bbr', 'cubic']);
  const none = fakeSys(t, {});
  t.equal(readMachine(none, none).congestion, undefined);
  t.notMatch(describeMachine(readMachine(none, none)), /congestion/);
  t.equal(availableCongestion(none), undefined);
});

t.test('the price of a system call: measured here, and given in µs or ns', async (t) => {
  const ns = syscallNs();
  t.ok(Number.isInteger(ns) && ns > 0 && ns < 1_000_000, `one system call ${ns} ns`);
  const m = readMachine(fakeSys(t, {}), fakeSys(t, {}));
  t.match(describeMachine({ ...m, syscallNs: 1540 }), /; a system call 1\.5 µs$/);
  t.match(describeMachine({ ...m, syscallNs: 120 }), /; a system call 120 ns$/);
});

t.test('CPU time: /proc/stat\'s cpu line split into busy and all ticks; CPU-seconds between two readings', async (t) => {
  // user nice system idle iowait irq softirq steal guest guest_nice, then the per-CPU lines.
  const stat = (fields: string) => fakeSys(t, { stat: `cpu  ${fields}\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 12345` });
  const a = readCpuTimes(stat('100 5 50 800 20 3 7 15 0 0'));
  t.same(a, { busy: 100 + 5 + 50 + 3 + 7 + 15, total: 100 + 5 + 50 + 3 + 7 + 15 + 800 + 20 }, 'idle and iowait are the only ticks not busy');
  const b = readCpuTimes(stat('250 5 100 900 20 3 7 15 0 0'));
  // 300 ticks passed (user +150, system +50, idle +100), 200 of them busy: two thirds of 2 CPUs for 1.4 s.
  t.equal(busyCpuSeconds(a!, b!, 2, 1.4), (200 / 300) * 2 * 1.4);
  t.equal(busyCpuSeconds(a!, a!, 2, 1.4), undefined, 'no tick between the readings: no figure');
  t.equal(readCpuTimes(fakeSys(t, {})), undefined, 'no stat file');
  t.equal(readCpuTimes(stat('100 5 50')), undefined, 'too few fields');
  t.equal(readCpuTimes(fakeSys(t, { stat: 'intr 1 2 3' })), undefined, 'no cpu line');
  const real = readCpuTimes();
  t.ok(real && real.total >= real.busy && real.busy > 0, `this machine: ${JSON.stringify(real)}`);
});
