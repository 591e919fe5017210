/** Real frames and capture-file helpers shared by the pcap, pcapng and sniffer tests. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const hex = (s: string): Uint8Array => Uint8Array.from(s.match(/../g)!.map((b) => parseInt(b, 16)));
export const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// Made with scapy: ARP who-has 198.18.0.2 / is-at, ICMP echo request / reply with a 17-byte payload.
export const ARP_REQ = hex('ffffffffffff02000000000108060001080006040001020000000001c6120001000000000000c6120002');
export const ARP_REP = hex('02000000000102000000000208060001080006040002020000000002c6120002020000000001c6120001');
export const ECHO_REQ = hex(
  '02000000000202000000000108004500002d000100004001eea7c6120001c6120002' +
    '0800a81f1234000174737669736f722d70696e672d30303031',
);
export const ECHO_REP = hex(
  '02000000000102000000000208004500002d000200004001eea6c6120002c6120001' +
    '0000b01f1234000174737669736f722d70696e672d30303031',
);

export function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** Why tshark tests are skipped, or false when tshark is installed. */
export const noTshark: string | false = (() => {
  try {
    execFileSync('tshark', ['--version'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'tshark is not installed';
  }
})();

export function tmpFile(t: { teardown(fn: () => void): void }, name: string, bytes: Uint8Array): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsv-link-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

export function runTshark(args: string[]): string {
  return execFileSync('tshark', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

/** Length, protocol stack and epoch time of each frame of a capture file, tab-separated, as tshark sees them. */
export function frameFields(path: string): string[][] {
  const out = runTshark(['-r', path, '-T', 'fields', '-e', 'frame.len', '-e', 'frame.protocols', '-e', 'frame.time_epoch']);
  return out
    .trim()
    .split('\n')
    .map((l) => l.split('\t'));
}

export const READ_BY_TSHARK = 'tshark reads the capture: every frame, right protocols, nothing malformed';
