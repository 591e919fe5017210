/**
 * How a script ends early: a `Mismatch` is a difference between what the script expects and what the DUT did
 * (verdict fail); a `ScriptError` is a script the runner cannot execute (verdict error).
 */

/** The DUT did something other than the script expects. */
export class Mismatch extends Error {}

/** The script cannot be run as written (unknown constant, unsupported call, bad argument). */
export class ScriptError extends Error {}
