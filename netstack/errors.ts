/**
 * Errors inside the stack are values, never exceptions: each kind is one frozen singleton, compared by identity
 * or by `instanceof NetError`. `ERRNO` is the one table that maps them to Linux errno numbers; the Sentry and the
 * Node adapter both use it.
 */

/** Every kind of error the stack reports, with the Linux errno it becomes. */
export const ERRNO = {
  WouldBlock: 11, // EAGAIN
  ConnectStarted: 115, // EINPROGRESS
  AlreadyConnecting: 114, // EALREADY
  AlreadyConnected: 106, // EISCONN
  NotConnected: 107, // ENOTCONN
  ConnectionRefused: 111, // ECONNREFUSED
  ConnectionReset: 104, // ECONNRESET
  ConnectionAborted: 103, // ECONNABORTED
  TimedOut: 110, // ETIMEDOUT
  AddressInUse: 98, // EADDRINUSE
  AddressNotAvailable: 99, // EADDRNOTAVAIL
  AddressFamilyNotSupported: 97, // EAFNOSUPPORT
  InvalidArgument: 22, // EINVAL
  InvalidEndpointState: 22, // EINVAL
  BadAddress: 14, // EFAULT
  NetworkUnreachable: 101, // ENETUNREACH
  HostUnreachable: 113, // EHOSTUNREACH
  HostDown: 112, // EHOSTDOWN
  NetworkDown: 100, // ENETDOWN
  NoRoute: 101, // ENETUNREACH
  MessageTooLong: 90, // EMSGSIZE
  ClosedForSend: 32, // EPIPE
  ClosedForReceive: 0, // reads return 0 (EOF)
  DestinationRequired: 89, // EDESTADDRREQ
  NotSupported: 95, // EOPNOTSUPP
  NotPermitted: 1, // EPERM
  PermissionDenied: 13, // EACCES
  NoBufferSpace: 105, // ENOBUFS
  NoPortAvailable: 11, // EAGAIN (Linux: no free ephemeral port)
  ProtocolNotAvailable: 92, // ENOPROTOOPT
  UnknownProtocol: 93, // EPROTONOSUPPORT
  ProtocolError: 71, // EPROTO
  DuplicateAddress: 99, // EADDRNOTAVAIL
  Interrupted: 4, // EINTR
  BadFileDescriptor: 9, // EBADF
  Aborted: 103, // ECONNABORTED
  QueueFull: 105, // ENOBUFS
  NoDevice: 19, // ENODEV
  UnknownAlgorithm: 2, // ENOENT (TCP_CONGESTION naming no algorithm this stack has)
} as const;

/** The name of an error kind. */
export type ErrorKind = keyof typeof ERRNO;

/** One kind of stack error; never constructed outside this module. */
export class NetError {
  /** @internal */
  constructor(
    /** The kind, e.g. "WouldBlock". */
    readonly kind: ErrorKind,
    /** The Linux errno this error maps to. */
    readonly errno: number,
  ) {
    Object.freeze(this);
  }

  /** The errno's symbolic name, e.g. "EAGAIN". */
  get code(): string {
    return ERRNO_NAMES[this.errno] ?? `E${this.errno}`;
  }

  toString(): string {
    return `${this.kind} (${this.code})`;
  }
}

/** The singleton for every error kind: `return Err.WouldBlock`. */
export const Err = Object.freeze(
  Object.fromEntries(Object.entries(ERRNO).map(([k, v]) => [k, new NetError(k as ErrorKind, v)])) as {
    [K in ErrorKind]: NetError;
  },
);

/** Whether a value is a stack error. */
export function isError(v: unknown): v is NetError {
  return v instanceof NetError;
}

/** Linux errno numbers to their names, for messages and for the conformance runner. */
export const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: 'EPERM', 2: 'ENOENT', 4: 'EINTR', 9: 'EBADF', 11: 'EAGAIN', 13: 'EACCES', 14: 'EFAULT', 22: 'EINVAL',
  24: 'EMFILE', 32: 'EPIPE', 71: 'EPROTO', 88: 'ENOTSOCK', 89: 'EDESTADDRREQ', 90: 'EMSGSIZE', 91: 'EPROTOTYPE',
  92: 'ENOPROTOOPT', 93: 'EPROTONOSUPPORT', 94: 'ESOCKTNOSUPPORT', 95: 'EOPNOTSUPP', 97: 'EAFNOSUPPORT',
  98: 'EADDRINUSE', 99: 'EADDRNOTAVAIL', 100: 'ENETDOWN', 101: 'ENETUNREACH', 103: 'ECONNABORTED',
  104: 'ECONNRESET', 105: 'ENOBUFS', 106: 'EISCONN', 107: 'ENOTCONN', 110: 'ETIMEDOUT', 111: 'ECONNREFUSED',
  112: 'EHOSTDOWN', 113: 'EHOSTUNREACH', 114: 'EALREADY', 115: 'EINPROGRESS',
};
