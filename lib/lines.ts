/**
 * Calls `fn` with each whole line `stream` gives (without its newline), decoding it as UTF-8: a pipe may deliver one
 * line in two reads. For the launch's report pipe (sentry/sandbox/launch.ts) and for tests that read their peers'
 * output, where several peers' outputs joined chunk by chunk once cut into each other's lines in CI ("accept
 * 127.0.0.1" + another acceptor's line + " 127.0.0.1\n").
 */
export function onLines(stream: NodeJS.ReadableStream, fn: (line: string) => void): void {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    partial += d;
    for (let nl = partial.indexOf('\n'); nl >= 0; nl = partial.indexOf('\n')) {
      fn(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
    }
  });
}
