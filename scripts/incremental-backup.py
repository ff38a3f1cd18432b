#!/usr/bin/python3
"""Incremental backup of a snapstore volume over NBD, with libnbd.

  incremental-backup.py --socket SOCK --volume VOL --base SNAP --target FILE
      FILE holds a copy of SNAP (an earlier backup). Asks snapstored which extents of VOL
      differ from SNAP (BLOCK_STATUS with the meta context x-snapstore:changed:SNAP),
      reads only those and writes them into FILE, which then equals VOL.
  incremental-backup.py --socket SOCK --volume VOL --target FILE --full
      Copies all of VOL into FILE (the first backup).

The usual cycle with periodic snapshots: back up snapshot S1 in full; later take S2,
back it up incrementally against S1 into the same file; then S1 may be deleted. The
changed extents come from the pool's trees, so they survive daemon restarts and crashes
(unlike a dirty bitmap). Prints what it examined and copied; exit 0 on success, 1 on any
error (FILE may then hold a mix: repeat the run).

Needs python3-libnbd (Debian), found by /usr/bin/python3.
"""
import argparse
import os
import sys

import nbd

CHUNK = 32 << 20  # bytes asked per BLOCK_STATUS / per read at most


def connect(args, contexts):
    h = nbd.NBD()
    for c in contexts:
        h.add_meta_context(c)
    h.set_export_name(args.volume)
    if args.socket:
        h.connect_unix(args.socket)
    else:
        h.connect_uri(args.uri)
    for c in contexts:
        if not h.can_meta_context(c):
            raise SystemExit(f"the server does not offer {c} on '{args.volume}' "
                             "(unknown base snapshot?)")
    return h


def changed_extents(h, context, size):
    """Yields (offset, length) of the extents flagged changed, in order."""
    offset = 0
    while offset < size:
        found = []

        def on_extents(metacontext, start, entries, err):
            if metacontext == context:
                found.append((start, list(entries)))
            return 0

        h.block_status(min(CHUNK, size - offset), offset, on_extents)
        if not found or not found[0][1]:
            raise SystemExit(f"no {context} extents at offset {offset}")
        start, entries = found[0]
        pos = start
        for i in range(0, len(entries), 2):
            length, flags = entries[i], entries[i + 1]
            length = min(length, size - pos)
            if flags & 1 and length > 0:
                yield pos, length
            pos += length
        if pos <= offset:
            raise SystemExit(f"the server made no progress at offset {offset}")
        offset = pos


def copy_range(h, fd, offset, length):
    done = 0
    while done < length:
        n = min(CHUNK, length - done)
        os.pwrite(fd, h.pread(n, offset + done), offset + done)
        done += n


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", help="snapstored's NBD Unix socket")
    where.add_argument("--uri", help="an NBD URI of the server (the export name is replaced)")
    p.add_argument("--volume", required=True, help="the volume (or snapshot) to back up")
    p.add_argument("--base", help="the snapshot the target file already holds")
    p.add_argument("--target", required=True, help="the backup file")
    p.add_argument("--full", action="store_true", help="copy everything (first backup)")
    args = p.parse_args()
    if bool(args.base) == bool(args.full):
        p.error("give either --base SNAPSHOT or --full")

    context = f"x-snapstore:changed:{args.base}" if args.base else None
    h = connect(args, [context] if context else [])
    size = h.get_size()
    fd = os.open(args.target, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if args.full:
            os.ftruncate(fd, 0)
            os.ftruncate(fd, size)
            extents = [(0, size)]
        else:
            if os.fstat(fd).st_size != size:
                os.ftruncate(fd, size)  # the volume was resized since the base
            extents = changed_extents(h, context, size)
        copied = 0
        count = 0
        for offset, length in extents:
            copy_range(h, fd, offset, length)
            copied += length
            count += 1
        os.fsync(fd)
    finally:
        os.close(fd)
        h.shutdown()
    print(f"{args.volume}: {size} bytes, {count} extents, {copied} bytes copied"
          f" ({100.0 * copied / size if size else 0:.2f}%)"
          + (f" since {args.base}" if args.base else " (full)"))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except nbd.Error as e:
        print(f"incremental-backup: {e}", file=sys.stderr)
        sys.exit(1)
