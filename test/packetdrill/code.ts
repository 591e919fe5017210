/**
 * `%{ }%` python blocks, run as packetdrill's code.c runs them: at each block the runner takes a TCP_INFO snapshot
 * of the socket under test; when the script's events are done, one python3 program sets the snapshot's `tcpi_*`
 * variables (and the TCP_* / TCP_CA_* / TCPI_OPT_* names) before each block's text, in script order, and a block
 * that raises (a failed assert) fails the script at its line. Without python3 the blocks are reported as skipped.
 */
import { spawnSync } from 'node:child_process';
import { tcpInfoField } from '../../sentry/socket/sockopt.ts';

/** struct tcp_info's fields as code.c names them (Linux 6.x layout, read with the Sentry's table). */
const FIELDS = [
  'tcpi_state', 'tcpi_ca_state', 'tcpi_retransmits', 'tcpi_probes', 'tcpi_backoff', 'tcpi_options', 'tcpi_rto',
  'tcpi_ato', 'tcpi_snd_mss', 'tcpi_rcv_mss', 'tcpi_unacked', 'tcpi_sacked', 'tcpi_lost', 'tcpi_retrans', 'tcpi_fackets',
  'tcpi_last_data_sent', 'tcpi_last_ack_sent', 'tcpi_last_data_recv', 'tcpi_last_ack_recv', 'tcpi_pmtu',
  'tcpi_rcv_ssthresh', 'tcpi_rtt', 'tcpi_rttvar', 'tcpi_snd_ssthresh', 'tcpi_snd_cwnd', 'tcpi_advmss', 'tcpi_reordering',
  'tcpi_rcv_rtt', 'tcpi_rcv_space', 'tcpi_total_retrans', 'tcpi_pacing_rate', 'tcpi_max_pacing_rate', 'tcpi_bytes_acked',
  'tcpi_bytes_received', 'tcpi_segs_out', 'tcpi_segs_in', 'tcpi_notsent_bytes', 'tcpi_min_rtt', 'tcpi_data_segs_in',
  'tcpi_data_segs_out', 'tcpi_delivery_rate', 'tcpi_busy_time', 'tcpi_rwnd_limited', 'tcpi_sndbuf_limited',
  'tcpi_delivered', 'tcpi_delivered_ce', 'tcpi_bytes_sent', 'tcpi_bytes_retrans', 'tcpi_dsack_dups', 'tcpi_reord_seen',
  'tcpi_rcv_ooopack', 'tcpi_snd_wnd', 'tcpi_rcv_wnd', 'tcpi_rehash', 'tcpi_total_rto', 'tcpi_total_rto_recoveries',
  'tcpi_total_rto_time',
] as const;

/** The symbolic names code.c defines before every snapshot (Linux's numbers). */
const SYMBOLS: Readonly<Record<string, number>> = {
  TCP_ESTABLISHED: 1, TCP_SYN_SENT: 2, TCP_SYN_RECV: 3, TCP_FIN_WAIT1: 4, TCP_FIN_WAIT2: 5, TCP_TIME_WAIT: 6,
  TCP_CLOSE: 7, TCP_CLOSE_WAIT: 8, TCP_LAST_ACK: 9, TCP_LISTEN: 10, TCP_CLOSING: 11,
  TCP_CA_Open: 0, TCP_CA_Disorder: 1, TCP_CA_CWR: 2, TCP_CA_Recovery: 3, TCP_CA_Loss: 4,
  TCPI_OPT_TIMESTAMPS: 1, TCPI_OPT_SACK: 2, TCPI_OPT_WSCALE: 4, TCPI_OPT_ECN: 8, TCPI_OPT_ECN_SEEN: 16,
  TCPI_OPT_SYN_DATA: 32, TCPI_OPT_USEC_TS: 64, TCPI_OPT_TFO_CHILD: 128,
  // The runner's extension for the FreeBSD corpus: FreeBSD's TCPI_* state names, in Linux's numbering.
  TCPI_ESTABLISHED: 1, TCPI_SYN_SENT: 2, TCPI_SYN_RECEIVED: 3, TCPI_FIN_WAIT_1: 4, TCPI_FIN_WAIT_2: 5,
  TCPI_TIME_WAIT: 6, TCPI_CLOSED: 7, TCPI_CLOSE_WAIT: 8, TCPI_LAST_ACK: 9, TCPI_LISTEN: 10, TCPI_CLOSING: 11,
};

/** A block and the snapshot taken when its event ran. */
interface Block {
  readonly line: number;
  readonly code: string;
  readonly info: Uint8Array;
}

/** Whether python3 can be run here (checked once). */
let python: boolean | undefined;

/** The blocks of one script run, collected as their events happen. */
export class CodeBlocks {
  private readonly blocks: Block[] = [];

  constructor(private readonly path: string) {}

  /** Whether there is a python3 to run blocks with; without one they are reported as skipped lines. */
  static available(): boolean {
    python ??= spawnSync('python3', ['-c', 'pass'], { stdio: 'ignore' }).status === 0;
    return python;
  }

  /** Records a block with the TCP_INFO bytes of the socket under test at its time. */
  add(line: number, code: string, info: Uint8Array): void {
    this.blocks.push({ line, code, info: info.slice() });
  }

  get size(): number {
    return this.blocks.length;
  }

  /** The program code.c would write. */
  program(): string {
    const out = [
      'import sys',
      'import traceback',
      'def excepthook(etype, value, tb):',
      '  sys.stderr.write("@@%d@@\\n" % _line)',
      '  traceback.print_exception(etype, value, tb)',
      'sys.excepthook = excepthook',
      '',
    ];
    for (const b of this.blocks) {
      for (const [k, v] of Object.entries(SYMBOLS)) out.push(`${k} = ${v}`);
      for (const f of FIELDS) out.push(`${f} = ${tcpInfoField(b.info, f) ?? 0}`);
      out.push(`tcpi_snd_wscale = ${b.info[6]! & 0xf}`, `tcpi_rcv_wscale = ${b.info[6]! >> 4}`, `tcpi_delivery_rate_app_limited = ${b.info[7]! & 1}`, '');
      out.push(`_file = ${JSON.stringify(this.path)}`, `_line = ${b.line}`, b.code, '');
    }
    return out.join('\n') + '\n';
  }

  /** Runs the program; the failing block's line and python's last words, or undefined when all held. */
  run(): { line: number; message: string } | undefined {
    if (!this.blocks.length) return undefined;
    const r = spawnSync('python3', ['-'], { input: this.program(), encoding: 'utf8', timeout: 30_000 });
    if (r.status === 0) return undefined;
    const err = (r.stderr ?? '') + (r.error ? String(r.error) : '');
    const line = Number(/@@(\d+)@@/.exec(err)?.[1] ?? this.blocks[0]!.line);
    const last = err.trim().split('\n').filter((l) => !/^@@\d+@@$/.test(l)).pop() ?? `python3 exit status ${r.status}`;
    const block = this.blocks.find((b) => b.line === line);
    return { line, message: `%{ ${block?.code.replace(/\s+/g, ' ').slice(0, 160) ?? ''} }%: ${last}` };
  }
}
