import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { UsageError } from '../../cli/args.ts';
import { conformanceCommand } from '../../cli/conformance.ts';

t.test('tsvisor conformance: exit 0 when all pass, 1 otherwise, --json written; usage errors', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tsv-pd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out: string[] = [];
  const io = { out: (s: string) => void out.push(s), err: () => {} };
  {
    const json = join(dir, 'r.json');
    t.equal(await conformanceCommand(['--dut', 'tsvisor', '--json', json, 'test/conformance/team/udp-connected-echo.pkt'], io), 0);
    const doc = JSON.parse(readFileSync(json, 'utf8'));
    t.match(doc, { results: [{ script: 'test/conformance/team/udp-connected-echo.pkt', dut: 'tsvisor', verdict: 'pass', line: null }] });
    t.equal(await conformanceCommand(['--dut=tsvisor', '--tolerance-ms', '100', 'test/conformance/must-fail'], io), 1);
    t.match(out.join(''), /FAIL \[tsvisor\] test\/conformance\/must-fail\/accept_ack_drop-broken\.pkt:27/);
    t.match(out.join(''), /TOTAL\s+tsvisor\s+0\s+1/);
  }
  const usage = async (argv: string[], re: RegExp) => {
    let err: unknown;
    try {
      await conformanceCommand(argv, io);
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof UsageError, `${argv.join(' ')} → UsageError`);
    t.match((err as Error | undefined)?.message, re);
  };
  await usage(['--dut', 'bsd', 'test/conformance/team'], /--dut: 'bsd' is not tsvisor, linux, sandbox or both/);
  await usage(['--dut', 'tsvisor,bsd', 'test/conformance/team'], /--dut: 'bsd' is not/);
  await usage([], /give at least one script or folder/);
  await usage(['/nonexistent/x.pkt'], /no such file or folder/);
  await usage(['--profile', 'lax', 'test/conformance/team'], /--profile: 'lax'/);
});
