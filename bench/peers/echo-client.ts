/**
 * The syn-flood row's legitimate client, run inside the client namespace:
 *   node --import tsx bench/peers/echo-client.ts HOST PORT COUNT PARALLEL TIMEOUT_MS [SEED [DEADLINE_MS]]
 * Makes COUNT connections to the echo service at HOST:PORT (PARALLEL at a time), each checked for its exact bytes
 * (bench/echo-check.ts), all over within DEADLINE_MS when given, and prints the outcome as one JSON line.
 */
import net from 'node:net';
import { echoCheck } from '../echo-check.ts';

const [host, port, count, parallel, timeoutMs, seed, deadline] = process.argv.slice(2);
const nums = [port, count, parallel, timeoutMs].map(Number);
if (!host || nums.some((n) => !Number.isInteger(n) || n <= 0)) {
  process.stderr.write('usage: echo-client HOST PORT COUNT PARALLEL TIMEOUT_MS [SEED [DEADLINE_MS]]\n');
  process.exit(2);
}
const r = await echoCheck((o) => net.connect(o), {
  host,
  port: nums[0]!,
  count: nums[1]!,
  parallel: nums[2]!,
  timeoutMs: nums[3]!,
  seed: Number(seed ?? 1),
  deadlineMs: deadline === undefined ? undefined : Number(deadline),
});
process.stdout.write(`${JSON.stringify(r)}\n`);
