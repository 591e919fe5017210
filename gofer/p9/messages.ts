/**
 * The 9P2000.L messages as Linux's v9fs (net/9p, include/net/9p/9p.h) and diod speak them: one table of message
 * ids and field layouts from which the codec and the message types both come, so a field is described once. It
 * also holds the two messages of our own dialect, 9P2000.L.tsvisor (Tlcreateat, Rlcreateat).
 *
 * Fields keep the names of Linux's protocol description, except that a field called `type` there (Rstatfs's file
 * system type, the lock type of Tlock/Tgetlock/Rgetlock) is `fsType` / `lockType` here, since `type` names the message.
 * Every message is `size[4] type[1] tag[2]` followed by its fields, little-endian; a string is `len[2]` and that
 * many bytes; a qid is `type[1] version[4] path[8]`; `data` is `count[4]` and that many bytes.
 */

/** The kinds of field a message carries, each with its wire encoding. */
export type FieldKind =
  | 'u8' // 1 byte
  | 'u16' // 2 bytes
  | 'u32' // 4 bytes
  | 'u64' // 8 bytes, a BigInt
  | 'str' // len[2] bytes[len], kept as bytes: Linux file names need not be UTF-8
  | 'qid' // type[1] version[4] path[8]
  | 'qids' // n[2] qid[13]*n
  | 'strs' // n[2] str*n
  | 'data' // count[4] bytes[count]
  | 'attr'; // a file's attributes, laid out as Rgetattr's body (153 bytes; the dialect's replies only)

/** A qid: the server's unique identity of a file. */
export interface Qid {
  /** QTDIR, QTSYMLINK, QTFILE ... (the file type's top bits). */
  type: number;
  /** Changes when the file changes (we send 0, as diod does for most files). */
  version: number;
  /** Unique per file on the server: the inode number. */
  path: bigint;
}

type FieldType<K> = K extends 'u64'
  ? bigint
  : K extends 'str' | 'data'
    ? Uint8Array
    : K extends 'qid'
      ? Qid
      : K extends 'qids'
        ? Qid[]
        : K extends 'strs'
          ? Uint8Array[]
          : K extends 'attr'
            ? Attrs
            : number;

type Layout = readonly (readonly [string, FieldKind])[];

/**
 * A file's attributes as Rgetattr carries them (its whole body): one list, so that the dialect's replies that
 * carry attributes (field kind `attr`) lay them out exactly as Rgetattr does.
 */
const ATTR_FIELDS = [
  ['valid', 'u64'],
  ['qid', 'qid'],
  ['mode', 'u32'],
  ['uid', 'u32'],
  ['gid', 'u32'],
  ['nlink', 'u64'],
  ['rdev', 'u64'],
  ['size', 'u64'],
  ['blksize', 'u64'],
  ['blocks', 'u64'],
  ['atimeSec', 'u64'],
  ['atimeNsec', 'u64'],
  ['mtimeSec', 'u64'],
  ['mtimeNsec', 'u64'],
  ['ctimeSec', 'u64'],
  ['ctimeNsec', 'u64'],
  ['btimeSec', 'u64'],
  ['btimeNsec', 'u64'],
  ['gen', 'u64'],
  ['dataVersion', 'u64'],
] as const;

/** A file's attributes in Rgetattr's layout: the body of Rgetattr, and an `attr` field of the dialect's replies. */
export type Attrs = {
  -readonly [P in (typeof ATTR_FIELDS)[number] as P[0]]: P[1] extends 'u64' ? bigint : P[1] extends 'qid' ? Qid : number;
};


/** Message id and field layout of every 9P2000.L message this project speaks, T and R. */
export const MESSAGES = {
  Tlerror: [6, []],
  Rlerror: [7, [['ecode', 'u32']]],
  Tstatfs: [8, [['fid', 'u32']]],
  Rstatfs: [
    9,
    [
      ['fsType', 'u32'],
      ['bsize', 'u32'],
      ['blocks', 'u64'],
      ['bfree', 'u64'],
      ['bavail', 'u64'],
      ['files', 'u64'],
      ['ffree', 'u64'],
      ['fsid', 'u64'],
      ['namelen', 'u32'],
    ],
  ],
  Tlopen: [12, [['fid', 'u32'], ['flags', 'u32']]],
  Rlopen: [13, [['qid', 'qid'], ['iounit', 'u32']]],
  Tlcreate: [14, [['fid', 'u32'], ['name', 'str'], ['flags', 'u32'], ['mode', 'u32'], ['gid', 'u32']]],
  Rlcreate: [15, [['qid', 'qid'], ['iounit', 'u32']]],
  Tsymlink: [16, [['fid', 'u32'], ['name', 'str'], ['symtgt', 'str'], ['gid', 'u32']]],
  Rsymlink: [17, [['qid', 'qid']]],
  Tmknod: [18, [['dfid', 'u32'], ['name', 'str'], ['mode', 'u32'], ['major', 'u32'], ['minor', 'u32'], ['gid', 'u32']]],
  Rmknod: [19, [['qid', 'qid']]],
  Trename: [20, [['fid', 'u32'], ['dfid', 'u32'], ['name', 'str']]],
  Rrename: [21, []],
  Treadlink: [22, [['fid', 'u32']]],
  Rreadlink: [23, [['target', 'str']]],
  Tgetattr: [24, [['fid', 'u32'], ['requestMask', 'u64']]],
  Rgetattr: [25, ATTR_FIELDS],
  Tsetattr: [
    26,
    [
      ['fid', 'u32'],
      ['valid', 'u32'],
      ['mode', 'u32'],
      ['uid', 'u32'],
      ['gid', 'u32'],
      ['size', 'u64'],
      ['atimeSec', 'u64'],
      ['atimeNsec', 'u64'],
      ['mtimeSec', 'u64'],
      ['mtimeNsec', 'u64'],
    ],
  ],
  Rsetattr: [27, []],
  Txattrwalk: [30, [['fid', 'u32'], ['newfid', 'u32'], ['name', 'str']]],
  Rxattrwalk: [31, [['size', 'u64']]],
  Txattrcreate: [32, [['fid', 'u32'], ['name', 'str'], ['attrSize', 'u64'], ['flags', 'u32']]],
  Rxattrcreate: [33, []],
  Treaddir: [40, [['fid', 'u32'], ['offset', 'u64'], ['count', 'u32']]],
  Rreaddir: [41, [['data', 'data']]],
  Tfsync: [50, [['fid', 'u32'], ['datasync', 'u32']]],
  Rfsync: [51, []],
  Tlock: [
    52,
    [
      ['fid', 'u32'],
      ['lockType', 'u8'],
      ['flags', 'u32'],
      ['start', 'u64'],
      ['length', 'u64'],
      ['procId', 'u32'],
      ['clientId', 'str'],
    ],
  ],
  Rlock: [53, [['status', 'u8']]],
  Tgetlock: [
    54,
    [['fid', 'u32'], ['lockType', 'u8'], ['start', 'u64'], ['length', 'u64'], ['procId', 'u32'], ['clientId', 'str']],
  ],
  Rgetlock: [55, [['lockType', 'u8'], ['start', 'u64'], ['length', 'u64'], ['procId', 'u32'], ['clientId', 'str']]],
  Tlink: [70, [['dfid', 'u32'], ['fid', 'u32'], ['name', 'str']]],
  Rlink: [71, []],
  Tmkdir: [72, [['dfid', 'u32'], ['name', 'str'], ['mode', 'u32'], ['gid', 'u32']]],
  Rmkdir: [73, [['qid', 'qid']]],
  Trenameat: [74, [['olddirfid', 'u32'], ['oldname', 'str'], ['newdirfid', 'u32'], ['newname', 'str']]],
  Rrenameat: [75, []],
  Tunlinkat: [76, [['dirfid', 'u32'], ['name', 'str'], ['flags', 'u32']]],
  Runlinkat: [77, []],
  Tversion: [100, [['msize', 'u32'], ['version', 'str']]],
  Rversion: [101, [['msize', 'u32'], ['version', 'str']]],
  Tauth: [102, [['afid', 'u32'], ['uname', 'str'], ['aname', 'str'], ['nUname', 'u32']]],
  Rauth: [103, [['aqid', 'qid']]],
  Tattach: [104, [['fid', 'u32'], ['afid', 'u32'], ['uname', 'str'], ['aname', 'str'], ['nUname', 'u32']]],
  Rattach: [105, [['qid', 'qid']]],
  Tflush: [108, [['oldtag', 'u16']]],
  Rflush: [109, []],
  Twalk: [110, [['fid', 'u32'], ['newfid', 'u32'], ['wnames', 'strs']]],
  Rwalk: [111, [['wqids', 'qids']]],
  Tread: [116, [['fid', 'u32'], ['offset', 'u64'], ['count', 'u32']]],
  Rread: [117, [['data', 'data']]],
  Twrite: [118, [['fid', 'u32'], ['offset', 'u64'], ['data', 'data']]],
  Rwrite: [119, [['count', 'u32']]],
  Tclunk: [120, [['fid', 'u32']]],
  Rclunk: [121, []],
  Tremove: [122, [['fid', 'u32']]],
  Rremove: [123, []],
  // The 9P2000.L.tsvisor dialect's own messages, numbered after 9P2000's last (Rwstat, 127); a server answers them
  // only in that dialect (gofer/README.md, "One request per created file").
  Tlcreateat: [
    128,
    [['dfid', 'u32'], ['newfid', 'u32'], ['nodefid', 'u32'], ['name', 'str'], ['flags', 'u32'], ['mode', 'u32'], ['gid', 'u32']],
  ],
  Rlcreateat: [129, [['qid', 'qid'], ['iounit', 'u32'], ['attr', 'attr'], ['dirAttr', 'attr']]],
  // A file made ahead of its name (O_TMPFILE in the directory `dfid`), open as `newfid` and unopened as `nodefid`,
  // then given its name by Tlinktmp (gofer/README.md, "Files made ahead of their names").
  Tmktmp: [130, [['dfid', 'u32'], ['newfid', 'u32'], ['nodefid', 'u32'], ['mode', 'u32'], ['gid', 'u32']]],
  Rmktmp: [131, [['qid', 'qid'], ['attr', 'attr']]],
  Tlinktmp: [
    132,
    [
      ['fid', 'u32'],
      ['openfid', 'u32'],
      ['dfid', 'u32'],
      ['name', 'str'],
      ['mode', 'u32'],
      ['timeSec', 'u64'],
      ['timeNsec', 'u64'],
    ],
  ],
  Rlinktmp: [133, [['attr', 'attr'], ['dirAttr', 'attr']]],
} as const satisfies Record<string, readonly [number, Layout]>;

/** The name of a message, e.g. "Twalk". */
export type MessageName = keyof typeof MESSAGES;

type FieldsOf<L extends Layout> = { -readonly [P in L[number] as P[0]]: FieldType<P[1]> };

/** One message as a plain record: its name, its tag, and its fields by name. */
export type Message<N extends MessageName = MessageName> = N extends MessageName
  ? { type: N; tag: number } & FieldsOf<(typeof MESSAGES)[N][1]>
  : never;

/** A message of the given name, without the tag (what a client asks to send). */
export type Body<N extends MessageName> = N extends MessageName ? Omit<Message<N>, 'tag'> : never;

/** The names of T-messages. */
export type TName = Extract<MessageName, `T${string}`>;

/** The names of R-messages. */
export type RName = Extract<MessageName, `R${string}`>;

/** The R-message answering a T-message. */
export type ReplyOf<T extends TName> = T extends `T${infer Rest}` ? Extract<RName, `R${Rest}`> : never;

/** Message ids by name. */
export const ID: { readonly [N in MessageName]: number } = Object.fromEntries(
  Object.entries(MESSAGES).map(([n, [id]]) => [n, id]),
) as { [N in MessageName]: number };

/** Message names by id. */
export const NAME_OF: ReadonlyMap<number, MessageName> = new Map(
  Object.entries(MESSAGES).map(([n, [id]]) => [id, n as MessageName]),
);

/** The size of `size[4] type[1] tag[2]`. */
export const HEADER_SIZE = 7;
/** The tag of Tversion, which precedes all tags. */
export const NOTAG = 0xffff;
/** The "no fid" value (Tattach's afid without authentication). */
export const NOFID = 0xffffffff;
/** The 9P2000.L version string. */
export const VERSION_9P2000L = '9P2000.L';
/**
 * The version string of our dialect: 9P2000.L, plus descriptor donation (a regular file's Rlopen, Rlcreate,
 * Rlcreateat and Rmktmp carry the opened descriptor with SCM_RIGHTS), Tlcreateat, Tmktmp and Tlinktmp. A server that does not know it answers
 * "9P2000.L" or "unknown", or hangs up.
 */
export const VERSION_TSVISOR = '9P2000.L.tsvisor';

/** Qid types (the top byte of a Plan 9 mode). */
export const QT = { DIR: 0x80, APPEND: 0x40, EXCL: 0x20, MOUNT: 0x10, AUTH: 0x08, TMP: 0x04, SYMLINK: 0x02, FILE: 0 } as const;

/** Tgetattr request_mask / Rgetattr valid bits (P9_GETATTR_*). */
export const GETATTR = {
  MODE: 0x1n,
  NLINK: 0x2n,
  UID: 0x4n,
  GID: 0x8n,
  RDEV: 0x10n,
  ATIME: 0x20n,
  MTIME: 0x40n,
  CTIME: 0x80n,
  INO: 0x100n,
  SIZE: 0x200n,
  BLOCKS: 0x400n,
  BTIME: 0x800n,
  GEN: 0x1000n,
  DATA_VERSION: 0x2000n,
  BASIC: 0x7ffn,
  ALL: 0x3fffn,
} as const;

/** Tsetattr valid bits (P9_ATTR_*). */
export const SETATTR = {
  MODE: 0x1,
  UID: 0x2,
  GID: 0x4,
  SIZE: 0x8,
  ATIME: 0x10,
  MTIME: 0x20,
  CTIME: 0x40,
  ATIME_SET: 0x80,
  MTIME_SET: 0x100,
} as const;

/** Tlock types, flags and Rlock status (P9_LOCK_*). */
export const LOCK = {
  RDLCK: 0,
  WRLCK: 1,
  UNLCK: 2,
  FLAGS_BLOCK: 1,
  FLAGS_RECLAIM: 2,
  SUCCESS: 0,
  BLOCKED: 1,
  ERROR: 2,
  GRACE: 3,
} as const;
