/**
 * The CLI's run-time failure, in a module of its own so that a lean entry (the OCI runtime's calls) can throw and
 * recognise it without loading cli/main.ts and the usage text.
 */

/** A failure at run time, reported as one line. */
export class CliError extends Error {}
