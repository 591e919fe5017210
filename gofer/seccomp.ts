/** Placeholder, replaced below. */
export const GOFER_ALLOWLIST: readonly string[] = [];
export const GOFER_CAPABILITIES: readonly string[] = [];
