// bench/perf-split.ts: `perf script -F ip,sym,dso` stacks counted for the kernel, tsvisor's JavaScript, Node's, the
// application's, or native code with no JavaScript caller, by the leaf and the first JavaScript frame.
import t from 'tap';
import { classify, perfSamples, split } from '../../bench/perf-split.ts';

const TEXT = `
\t    ffffffff8a0c1234 _raw_spin_unlock_irqrestore ([kernel.kallsyms])
\t    ffffffff8a0c5678 __sys_sendmmsg ([kernel.kallsyms])
\t           12c4d4 __sendmmsg (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t    7f58cc17ae4b JS:*sendHere file:///work/wt-x/dist/lib/packet.js:959:13 (/tmp/perf-1.map)

\t         14d084d Builtins_LoadIC (/usr/bin/node)
\t    7f58cc158c54 JS:*onAck file:///work/wt-x/dist/netstack/transport/tcp/snd.js:321:10 (/tmp/perf-1.map)
\t    7f58cc1648cd JS:*processImmediate node:internal/timers:438:28 (/tmp/perf-1.map)

\t    7f58cc158c54 JS:*parserOnIncoming node:_http_server:1026:26 (/tmp/perf-1.map)
\t    7f58cc158c54 JS:*onAck file:///work/wt-x/dist/netstack/transport/tcp/snd.js:321:10 (/tmp/perf-1.map)

\t          c7e636 v8::internal::ScavengerCollector::CollectGarbage (/usr/bin/node)
\t          7bbbe6 node::SpinEventLoopInternal (/usr/bin/node)

\t    7f58cc158c54 JS:*handle file:///work/wt-x/dist/cli/services/http-app.js:34:16 (/tmp/perf-1.map)
\t    7f58cc158c54 JS:*parserOnIncoming node:_http_server:1026:26 (/tmp/perf-1.map)
`;

t.test('stacks are read leaf first, symbol and object apart', async (t) => {
  const s = perfSamples(TEXT);
  t.equal(s.length, 5);
  t.same(s[0]![0], { sym: '_raw_spin_unlock_irqrestore', dso: '[kernel.kallsyms]' });
  t.same(s[1]![1], { sym: 'JS:*onAck file:///work/wt-x/dist/netstack/transport/tcp/snd.js:321:10', dso: '/tmp/perf-1.map' });
  t.equal(s[3]!.length, 2);
});

t.test('each sample counts for its leaf in the kernel, else its first JavaScript frame', async (t) => {
  const s = perfSamples(TEXT);
  t.same(classify(s[0]!), { part: 'kernel', js: 'sendHere lib/packet.js:959:13' });
  t.same(classify(s[1]!), { part: 'tsvisor JS', js: 'onAck netstack/transport/tcp/snd.js:321:10' });
  // Node's function called from ours is Node's: the frame nearest the leaf decides.
  t.same(classify(s[2]!), { part: 'Node JS', js: 'parserOnIncoming node:_http_server:1026:26' });
  t.same(classify(s[3]!), { part: 'native, no JS caller', js: undefined });
  // The http service's listener runs on both sides of the comparison: it is not the stack's.
  t.equal(classify(s[4]!).part, 'application and other JS');
});

t.test('split counts parts and tsvisor functions', async (t) => {
  const { parts, ours } = split(perfSamples(TEXT));
  t.same(Object.fromEntries(parts), { kernel: 1, 'tsvisor JS': 1, 'Node JS': 1, 'native, no JS caller': 1, 'application and other JS': 1 });
  t.same(Object.fromEntries(ours), { 'onAck netstack/transport/tcp/snd.js:321:10': 1 });
});
