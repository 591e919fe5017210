/**
 * TCP keep-alives (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6) with Linux's knobs: after SO_KEEPALIVE's idle time
 * (TCP_KEEPIDLE) without a received segment, probe every TCP_KEEPINTVL and give up with ETIMEDOUT after
 * TCP_KEEPCNT unanswered probes, or, when TCP_USER_TIMEOUT is set, once it has passed since the peer was last
 * heard (TCP_KEEPCNT then does not count, as in Linux's tcp_keepalive_timer).
 * Giving up sends a RST first, as Linux's tcp_keepalive_timer does (RFC 9293 §3.10.5 ABORT).
 */
import { Err } from '../../errors.ts';
import type { TcpEndpoint } from './endpoint.ts';
import { sendReset, sendWindowProbe } from './output.ts';
import { State } from './state.ts';
import { LazyTimer } from './timer.ts';

/** The keep-alive timer of one connection. */
export class Keepalive {
  /** Probes sent since the peer was last heard. */
  probes = 0;
  private lastHeard = 0;
  /** Built when SO_KEEPALIVE first arms it: most connections never set it. */
  private timer: LazyTimer | null = null;

  constructor(private readonly ep: TcpEndpoint) {}

  private armed(): LazyTimer {
    return (this.timer ??= new LazyTimer(this.ep.clock, () => this.fire()));
  }

  /** The peer was heard from: restart the idle period. */
  touch(): void {
    this.lastHeard = this.ep.clock.now();
    if (!this.ep.keepalive) return;
    this.probes = 0;
    this.armed().set(this.ep.keepIdle * 1000);
  }

  /** SO_KEEPALIVE or TCP_KEEPIDLE changed: re-arm or stop. */
  update(): void {
    const ep = this.ep;
    if (ep.keepalive && (ep.state === State.Established || ep.state === State.CloseWait)) {
      this.armed().set(ep.keepIdle * 1000);
    } else this.timer?.cancel();
  }

  /** Stops the timer. */
  cancel(): void {
    this.timer?.cancel();
  }

  private fire(): void {
    const ep = this.ep;
    if (!ep.keepalive || !(ep.state === State.Established || ep.state === State.CloseWait)) return;
    if (ep.snd.max !== ep.snd.una || ep.snd.buf.length > 0) {
      // Data in flight or queued: the retransmission timer watches the peer (Linux tcp_keepalive_timer).
      this.armed().set(ep.keepIdle * 1000);
      return;
    }
    const silent = ep.clock.now() - this.lastHeard;
    const over = ep.userTimeout > 0 ? this.probes > 0 && silent >= ep.userTimeout : this.probes >= ep.keepCnt;
    if (over) {
      // The peer may only be unreachable, not gone: the RST tells it, should it come back, that this
      // connection is over (Linux tcp_keepalive_timer; the retransmission timer's give-up sends none).
      ep.stats.resetsSent++;
      sendReset(ep);
      ep.fail(Err.TimedOut);
      return;
    }
    this.probes++;
    ep.stats.keepaliveProbes++;
    sendWindowProbe(ep);
    this.armed().set(ep.keepIntvl * 1000);
  }
}
