/**
 * A small declarative argument parser: every bad argument becomes one line naming the problem, so the CLI can
 * print it and exit non-zero.
 */

/** How one option is parsed. */
export interface OptionSpec {
  /** Takes a value (`--name VALUE` or `--name=VALUE`); otherwise a flag. */
  readonly value?: boolean;
  /** May be given more than once (values collected in order). */
  readonly repeat?: boolean;
  /** Must be given. */
  readonly required?: boolean;
}

/** Parsed arguments: flags as booleans, values as strings or string lists, positionals in order. */
export interface ParsedArgs {
  readonly options: Record<string, string | string[] | boolean | undefined>;
  readonly positional: string[];
}

/** A command-line mistake, reported as one line. */
export class UsageError extends Error {}

/** `--help` or `-h` among a command's options: main.ts prints the command's usage (cli/usage.ts). */
export class HelpRequested extends Error {}

/** Parses `argv` against `spec` (option names without the leading dashes). */
export function parseArgs(argv: string[], spec: Record<string, OptionSpec>, maxPositional = 0): ParsedArgs {
  const options: Record<string, string | string[] | boolean | undefined> = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '--help' || arg === '-h') throw new HelpRequested();
    if (!arg.startsWith('--') || arg === '--') {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const s = spec[name];
    if (!s) throw new UsageError(`unknown option --${name}`);
    let value: string | boolean = true;
    if (s.value) {
      if (eq >= 0) value = arg.slice(eq + 1);
      else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) value = argv[++i]!;
      else throw new UsageError(`option --${name} needs a value`);
      if (value === '') throw new UsageError(`option --${name} needs a value`);
    } else if (eq >= 0) {
      throw new UsageError(`option --${name} takes no value`);
    }
    if (s.repeat) {
      const list = (options[name] as string[] | undefined) ?? [];
      list.push(value as string);
      options[name] = list;
    } else {
      if (options[name] !== undefined) throw new UsageError(`option --${name} given twice`);
      options[name] = value;
    }
  }
  for (const [name, s] of Object.entries(spec)) {
    if (s.required && options[name] === undefined) throw new UsageError(`missing required option --${name}`);
  }
  if (positional.length > maxPositional) {
    throw new UsageError(`unexpected argument '${positional[maxPositional]}'`);
  }
  return { options, positional };
}

/** Parses a decimal integer option within [min, max]. */
export function intOption(name: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`--${name}: '${text}' is not a whole number`);
  const v = Number(text);
  if (v < min || v > max) throw new UsageError(`--${name}: ${v} is outside ${min}..${max}`);
  return v;
}
