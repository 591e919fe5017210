// The package as a new user gets it: `npm pack` (whose prepack script builds dist/), `npm install` of the tarball
// into an empty project with plain node (no tsx, no TypeScript), the README's example run there as written, every
// export imported, and the installed `tsvisor` command. Packing happens in a copy of the checkout, so the test
// neither writes dist/ into the checkout nor races another run doing the same.
import t from 'tap';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

const REPO = join(import.meta.dirname, '../..');
const PKG = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  dependencies: Record<string, string>;
  exports: Record<string, string | { types: string; default: string }>;
};
// Packing compiles the whole package and installing unpacks koffi's prebuilt binaries: seconds when idle, far more
// on a loaded machine. Only a hang reaches these bounds.
const STEP_MS = 300_000;

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; npm's own npm_* variables of an enclosing `npm test` are not passed on. */
function sh(argv: string[], cwd: string): Promise<Ran> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { cwd, env, encoding: 'utf8', timeout: STEP_MS, killSignal: 'SIGKILL', maxBuffer: 1 << 26 }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: unknown }) | null;
      resolve({ code: !e ? 0 : typeof e.code === 'number' ? e.code : 1, stdout, stderr });
    });
  });
}

/** The README's fenced block of `lang` that follows the line `after`. */
function readmeBlock(readme: string, after: string, lang: string): string {
  const from = readme.indexOf(after);
  if (from < 0) throw new Error(`README has no '${after}'`);
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(readme.slice(from));
  if (!m) throw new Error(`README has no \`\`\`${lang} block after '${after}'`);
  return m[1]!;
}

const work = mkdtempSync(join(tmpdir(), 'tpk-pack-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

const app = join(work, 'app');
let info: { filename: string; size: number; unpackedSize: number; files: { path: string }[] };

t.before(async () => {
  // The checkout as it stands (uncommitted files included), without build output, dependencies or test records.
  const src = join(work, 'src');
  const SKIP = new Set(['node_modules', '.git', 'dist', 'out', '.tap']);
  cpSync(REPO, src, { recursive: true, filter: (p) => !SKIP.has(basename(p)) && !p.endsWith('.tgz') });
  symlinkSync(realpathSync(join(REPO, 'node_modules')), join(src, 'node_modules'));

  const packed = await sh(['npm', 'pack', '--json', '--pack-destination', work], src);
  if (packed.code !== 0) throw new Error(`npm pack failed: ${packed.stderr.slice(-2000)}`);
  info = (JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as {
    filename: string;
    size: number;
    unpackedSize: number;
    files: { path: string }[];
  }[])[0]!;
  const tarball = join(work, info.filename);
  t.comment(`${info.filename}: ${info.size} bytes packed, ${info.unpackedSize} unpacked, ${info.files.length} files`);

  // An empty project; dependencies come from npm's cache when they are there (the repository's own install put
  // them there), from the registry otherwise.
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'tpk-app', private: true, type: 'module' }));
  const registry = (await sh(['npm', 'config', 'get', 'registry'], app)).stdout.trim().replace(/\/$/, '');
  const depSpecs = Object.keys(PKG.dependencies).map((name) => {
    const { version } = JSON.parse(readFileSync(join(REPO, 'node_modules', name, 'package.json'), 'utf8')) as { version: string };
    return `${registry}/${name}/-/${name.split('/').pop()}-${version}.tgz`;
  });
  let installed = await sh(['npm', 'install', '--offline', '--no-audit', '--no-fund', ...depSpecs, tarball], app);
  if (installed.code !== 0) {
    t.comment(`offline install failed (${installed.stderr.trim().split('\n')[0]}); installing from the registry`);
    installed = await sh(['npm', 'install', '--prefer-offline', '--no-audit', '--no-fund', tarball], app);
  }
  if (installed.code !== 0) throw new Error(`npm install failed: ${installed.stderr.slice(-2000)}`);
});

t.test('the tarball holds compiled JavaScript with types, not tests or sources', async (t) => {
  const paths = info.files.map((f) => f.path);
  for (const need of ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/bin.js']) t.ok(paths.includes(need), `has ${need}`);
  t.same(paths.filter((p) => /\.test\.|(^|\/)fixtures?\//.test(p)), [], 'no test files');
  t.same(paths.filter((p) => p.endsWith('.ts') && !p.endsWith('.d.ts')), [], 'no TypeScript sources');
  t.same(paths.filter((p) => !p.startsWith('dist/') && !['package.json', 'README.md'].includes(p)), [], 'nothing outside dist/ but the manifest and README');
  // Files the modules read at run time beside themselves (C sources they compile: the sandbox helper, the
  // conformance executor, the Sentry bench's caller): every one that sits next to compiled code must be next to
  // it in dist/ too. Shell scripts are developers' tools, run from a checkout.
  const assets: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(REPO, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(rel);
      else if (!/\.(ts|md|js|sh)$/.test(e.name) && paths.some((p) => p.startsWith(`dist/${dir}/`) && p.endsWith('.js'))) assets.push(rel);
    }
  };
  for (const dir of ['netstack', 'lib', 'sentry', 'gofer', 'cli', 'bench', 'test/packetdrill']) if (existsSync(join(REPO, dir))) walk(dir);
  t.same(assets.filter((a) => !paths.includes(`dist/${a}`)), [], `run-time files beside the code are in dist/ (${assets.join(', ')})`);
  // Every .js has its declarations, and the manifest names files that are there.
  t.same(paths.filter((p) => p.endsWith('.js') && !paths.includes(p.replace(/\.js$/, '.d.ts'))), [], 'a .d.ts beside every .js');
  for (const [sub, target] of Object.entries(PKG.exports)) {
    for (const file of typeof target === 'string' ? [target] : [target.types, target.default]) {
      t.ok(paths.includes(file.replace(/^\.\//, '')), `export '${sub}' → ${file} is in the tarball`);
    }
  }
});

t.test('installs without tsx or TypeScript', async (t) => {
  t.ok(existsSync(join(app, 'node_modules/tsvisor/dist/index.js')));
  for (const dev of ['tsx', 'typescript', 'tap']) t.notOk(existsSync(join(app, 'node_modules', dev)), `no ${dev}`);
});

t.test("the README's example runs as written", async (t) => {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  const example = readmeBlock(readme, '## Using the netstack from Node', 'js');
  const expected = readmeBlock(readme, 'It prints:', '');
  writeFileSync(join(app, 'example.mjs'), example);
  const r = await sh([process.execPath, 'example.mjs'], app);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, expected, 'prints what the README says');
});

t.test('every export imports under plain node and has declarations', async (t) => {
  const pkg = JSON.parse(readFileSync(join(app, 'node_modules/tsvisor/package.json'), 'utf8')) as typeof PKG;
  const want: Record<string, string[]> = {
    '.': ['createNetstack', 'Netstack', 'ChannelEndpoint', 'AfPacketEndpoint', 'TapEndpoint', 'NodeClock', 'parseSubnet'],
    './net': ['bindNet', 'createServer', 'connect', 'Socket', 'Server'],
    './dgram': ['bindDgram', 'createSocket', 'Socket'],
  };
  t.same(Object.keys(pkg.exports).filter((k) => k !== './package.json').sort(), Object.keys(want).sort(), 'the exports this test knows');
  for (const [sub, names] of Object.entries(want)) {
    const spec = sub === '.' ? 'tsvisor' : `tsvisor/${sub.slice(2)}`;
    const code = `const m = await import(${JSON.stringify(spec)}); console.log(JSON.stringify(Object.keys(m)))`;
    const r = await sh([process.execPath, '--input-type=module', '-e', code], app);
    t.equal(r.code, 0, `import '${spec}': ${r.stderr}`);
    const keys = r.code === 0 ? (JSON.parse(r.stdout) as string[]) : [];
    for (const n of names) t.ok(keys.includes(n), `'${spec}' exports ${n}`);
  }
  // The declarations resolve for a TypeScript user (the checker runs from the repository; the project has none).
  writeFileSync(
    join(app, 'check.ts'),
    [
      "import { createNetstack, ChannelEndpoint, NodeClock, parseSubnet, type Netstack } from 'tsvisor';",
      "import { bindNet } from 'tsvisor/net';",
      "import { bindDgram } from 'tsvisor/dgram';",
      'const clock = new NodeClock();',
      'const n: Netstack = createNetstack({ clock });',
      'const nic: number = n.stack.addNic(ChannelEndpoint.pair({ clock })[0]);',
      "n.stack.addAddress(nic, parseSubnet('198.18.0.1/24')!);",
      'const port: number | undefined = undefined;',
      'bindNet(n).createServer((s) => s.end()).listen(port ?? 7);',
      "bindDgram(n).createSocket('udp4').close();",
      // A wrong use must be a type error, so the declarations are not silently `any`.
      '// @ts-expect-error',
      "n.stack.addNic('not a link');",
      '',
    ].join('\n'),
  );
  const tsc = join(REPO, 'node_modules/typescript/bin/tsc');
  const types = join(REPO, 'node_modules/@types');
  const r = await sh([process.execPath, tsc, '--noEmit', '--strict', '--module', 'nodenext', '--target', 'es2022', '--typeRoots', types, '--types', 'node', 'check.ts'], app);
  t.equal(r.code, 0, `tsc on a consumer: ${r.stdout}${r.stderr}`);
});

t.test('the installed tsvisor command', async (t) => {
  const bin = join(app, 'node_modules/.bin/tsvisor');
  const help = await sh([bin, '--help'], app);
  t.equal(help.code, 0, help.stderr);
  t.match(help.stdout, /^usage: tsvisor <command>/);
  const version = await sh([bin, '--version'], app);
  t.equal(version.code, 0, version.stderr);
  t.equal(version.stdout, `tsvisor ${PKG.version}\n`);
  // A command that loads most of the package lazily: the packetdrill runner against the in-process netstack.
  const conf = await sh([bin, 'conformance', '--quiet', join(REPO, 'test/conformance/team')], app);
  t.equal(conf.code, 0, `tsvisor conformance: ${conf.stderr.slice(-1000)}`);
  t.match(conf.stdout, /TOTAL\s+tsvisor\s+\d+\s+0\s+0/, 'every team script passes on the installed build');
  const bad = await sh([bin, 'no-such-command'], app);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^tsvisor: unknown command 'no-such-command'/);
});
