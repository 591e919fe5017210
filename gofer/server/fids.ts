/**
 * What a fid holds: a reference-counted O_PATH descriptor of its file (a `Node`), never a path, and once opened a
 * second, reference-counted descriptor for I/O (an `OpenFile`) that stays open until the last read or write on
 * the thread pool using it has finished, so a Tclunk racing a Tread cannot close a descriptor number the kernel
 * might hand to someone else while the read is still running. A file the fid created has one descriptor for both:
 * the one it was created with, owned by the node, which the open file holds a reference to.
 */
import * as fs from '../../lib/fs.ts';

/** The kind of file a node is, from its mode. */
export type Kind = 'dir' | 'file' | 'symlink' | 'other';

/** The kind of file for a st_mode. */
export function kindOf(mode: number): Kind {
  switch (mode & fs.F.S_IFMT) {
    case fs.F.S_IFDIR:
      return 'dir';
    case fs.F.S_IFREG:
      return 'file';
    case fs.F.S_IFLNK:
      return 'symlink';
    default:
      return 'other';
  }
}

/**
 * An O_PATH descriptor of one file inside the root (for a file created through Tlcreate, the descriptor it was
 * created with), shared by the fids that walked to it. `parent` and `name` are
 * where the walk found it (Tremove and Trename need them; both check that the name still refers to this file).
 */
export class Node {
  private refs = 1;

  constructor(
    readonly fd: number,
    readonly kind: Kind,
    /** The inode number, read once: an O_PATH descriptor holds one inode for its whole life, as its kind. */
    readonly ino: bigint,
    public parent: Node | undefined,
    public name: Uint8Array | undefined,
  ) {
    parent?.ref();
  }

  /** Takes one more reference. */
  ref(): this {
    this.refs++;
    return this;
  }

  /** Drops a reference; the last closes the descriptor and drops the parent. */
  release(): void {
    if (--this.refs > 0) return;
    fs.close(this.fd);
    this.parent?.release();
    this.parent = undefined;
  }

  /** Moves this node under a new parent and name (after a rename). */
  reparent(parent: Node, name: Uint8Array): void {
    parent.ref();
    this.parent?.release();
    this.parent = parent;
    this.name = name.slice();
  }
}

/**
 * An opened descriptor with the count of thread-pool operations still using it. With `owner`, the descriptor is
 * that node's own: closing drops the reference to the node instead, which closes it with the node's last one.
 */
export class OpenFile {
  private users = 0;
  private closing = false;

  constructor(
    readonly fd: number,
    readonly flags: number,
    private readonly owner?: Node,
  ) {}

  /** Whether the open allows reading. */
  get readable(): boolean {
    return (this.flags & fs.F.O_ACCMODE) !== fs.F.O_WRONLY;
  }

  /** Whether the open allows writing. */
  get writable(): boolean {
    return (this.flags & fs.F.O_ACCMODE) !== fs.F.O_RDONLY;
  }

  /** Marks the start of an operation on the descriptor. */
  use(): void {
    this.users++;
  }

  /** Marks its end; closes the descriptor if it was closed meanwhile. */
  done(): void {
    if (--this.users === 0 && this.closing) this.release();
  }

  /** Closes now, or after the operations in flight. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.users === 0) this.release();
  }

  private release(): void {
    if (this.owner) this.owner.release();
    else fs.close(this.fd);
  }
}

/** An extended attribute being read (after Txattrwalk) or written (after Txattrcreate). */
export type XattrState =
  | { readonly mode: 'read'; readonly data: Uint8Array }
  | { readonly mode: 'write'; readonly name: Uint8Array; readonly flags: number; readonly data: Uint8Array; written: number };

/** One fid of one connection. */
export interface Fid {
  node: Node;
  /** The client's user id from Tattach (n_uname), owner of what this fid creates. */
  readonly uid: number;
  open?: OpenFile;
  xattr?: XattrState;
  /** A file made by Tmktmp and not yet named by Tlinktmp: its mtime when made (see Tlinktmp). */
  madeAt?: { sec: bigint; nsec: number };
}
