/**
 * The kernel-side peers of the benchmark, run inside a namespace (`ip netns exec NS node --import tsx ...`):
 * node:http on port 80 running tsvisor's `http` service's own request listener (cli/services/http-app.ts: the same
 * page, headers and framing, so both sides run the same Node HTTP code and differ only in the stack beneath; a
 * page of its own here once answered chunked where tsvisor's sent a length), and a hold service on port 9 that
 * accepts connections, reads and discards, and keeps them open (for the idle-connection memory figure), and echo
 * on port 7 (the syn-flood row's legitimate connections). Prints "ready".
 */
import http from 'node:http';
import net from 'node:net';
import { httpApp, httpStats } from '../../cli/services/http-app.ts';

const web = http.createServer({ requestTimeout: 0 }, httpApp(httpStats()));
const held = new Set<net.Socket>();
const hold = net.createServer((s) => {
  held.add(s);
  s.on('data', () => {});
  s.on('error', () => {});
  s.on('close', () => held.delete(s));
});
const echo = net.createServer((s) => {
  held.add(s);
  s.on('error', () => {});
  s.on('close', () => held.delete(s));
  s.pipe(s);
});
let pending = 3;
const ready = () => {
  if (--pending === 0) process.stdout.write('ready\n');
};
web.listen({ port: 80, backlog: 4096 }, ready);
hold.listen({ port: 9, backlog: 4096 }, ready);
echo.listen({ port: 7, backlog: 4096 }, ready);
const stop = () => {
  for (const s of held) s.destroy();
  web.close();
  hold.close();
  echo.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
