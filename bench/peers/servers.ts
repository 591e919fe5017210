/**
 * The kernel-side peers of the benchmark, run inside a namespace (`ip netns exec NS node --import tsx ...`):
 * node:http on port 80 serving one short page (the same kind of page as tsvisor's `http` service, so both sides
 * run the same Node HTTP code and differ only in the stack beneath), and a hold service on port 9 that accepts
 * connections, reads and discards, and keeps them open (for the idle-connection memory figure), and echo on port 7
 * (the syn-flood row's legitimate connections). Prints "ready".
 */
import http from 'node:http';
import net from 'node:net';

const PAGE = `<!doctype html>
<html><head><title>kernel</title></head>
<body><h1>kernel</h1><p>This page was served by node:http over the Linux kernel's TCP/IP stack.</p>
<ul><li><a href="/bytes/1024">/bytes/N</a>: N bytes, byte i = i mod 256</li>
<li>POST /sha256: the SHA-256 of the request body</li></ul></body></html>
`;

const web = http.createServer({ requestTimeout: 0 }, (req, res) => {
  req.resume();
  res.writeHead(req.url === '/' ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' });
  res.end(req.url === '/' ? PAGE : 'not found\n');
});
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
