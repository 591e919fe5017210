/**
 * The addresses of the two ends in every conformance run (never packetdrill's defaults 192.168.0.1 and
 * 192.0.2.1): from the ranges reserved for our tests, 198.18.0.0/15 and fd74:7376::/32.
 */

/** The DUT's IPv4 address. */
export const DUT_V4 = '198.18.0.1';
/** The remote host's IPv4 address (played by the runner). */
export const REMOTE_V4 = '198.18.0.2';
/** The DUT's IPv6 address. */
export const DUT_V6 = 'fd74:7376::1';
/** The remote host's IPv6 address (played by the runner). */
export const REMOTE_V6 = 'fd74:7376::2';

/** upstream run_all.py's addresses, which scripts without --local_ip/--remote_ip were written for. */
export const UPSTREAM_ADDRESSES = { 4: { local: '192.168.0.1', remote: '192.0.2.1' }, 6: { local: 'fd3d:0a0b:17d6::1', remote: 'fd3d:fa7b:d17d::1' } } as const;

/** packetdrill's own default remote addresses (config.c), which a script's shell lines may name. */
export const PACKETDRILL_DEFAULT_REMOTES = ['192.0.2.1', '2001:db8::1'] as const;
