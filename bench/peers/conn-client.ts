/**
 * Opens N idle TCP connections to HOST:PORT from inside a namespace and holds them:
 *   node --import tsx bench/peers/conn-client.ts HOST PORT N
 * Connects with a bounded number in flight, prints "open <count> failed <count>" once every attempt has settled,
 * then keeps the connections until SIGTERM, when it destroys them and exits.
 */
import net from 'node:net';

const [host, portText, countText] = process.argv.slice(2);
const port = Number(portText);
const total = Number(countText);
const IN_FLIGHT = 256;
const sockets: net.Socket[] = [];
let started = 0;
let settled = 0;
let failed = 0;

function next(): void {
  while (started < total && started - settled < IN_FLIGHT) {
    started++;
    const s = net.connect({ host, port });
    let done = false;
    const settle = (ok: boolean) => {
      if (done) return;
      done = true;
      settled++;
      if (!ok) failed++;
      if (settled === total) process.stdout.write(`open ${total - failed} failed ${failed}\n`);
      else next();
    };
    s.setTimeout(10000, () => {
      s.destroy();
      settle(false);
    });
    s.once('connect', () => {
      s.setTimeout(0);
      settle(true);
    });
    s.on('error', () => settle(false));
    sockets.push(s);
  }
}

const stop = () => {
  for (const s of sockets) s.destroy();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
next();
