import { execFileSync } from 'node:child_process';
import t from 'tap';
import { createLinuxDut, linuxDutNetnsPrefix } from '../packetdrill/dut-linux.ts';
import { type DutFactory, runAll } from '../packetdrill/runner.ts';

const PREFIX = 'tsv-pd-t';
const linux: DutFactory = { name: 'linux', create: (cfg) => createLinuxDut(PREFIX, cfg) };
const G = '/work/shared/conformance/gvisor';

const leftovers = () => execFileSync('ip', ['netns', 'list']).toString().split('\n').filter((l) => l.startsWith(`${linuxDutNetnsPrefix(PREFIX)}-`));

t.test('Linux DUT: gVisor scripts and the team scripts pass, the broken copy fails, nothing is left behind', async (t) => {
  t.teardown(() => {
    for (const l of leftovers()) execFileSync('ip', ['netns', 'del', l.split(' ')[0]!]);
  });
  const rows = await runAll(
    [
      `${G}/sanity_test.pkt`,
      `${G}/reset_for_ack_when_no_syn_cookies_in_use.pkt`,
      `${G}/no_rst_to_rst.pkt`,
      `${G}/listen_close_before_handshake_complete.pkt`,
      `${G}/accept_ack_drop.pkt`,
      'test/conformance/team',
    ],
    // Real time on a shared 2-vCPU machine: a loaded host can delay a wake-up by tens of ms, so this test
    // widens every script's tolerance (the CLI keeps the scripts' own).
    { duts: [linux], toleranceMs: 200 },
  );
  t.ok(rows.length >= 9);
  for (const r of rows) t.equal(r.verdict, 'pass', `${r.script}: ${r.detail}`);
  const broken = await runAll(['test/conformance/must-fail'], { duts: [linux] });
  t.equal(broken[0]!.verdict, 'fail');
  t.match(broken[0]!.detail, 'read() = 4, expected 5');
  t.same(leftovers(), [], 'every namespace removed');
});
