"""Row ids hashed in a helper process, for the columnar BATCH writer.

Hashing each row's canonical JSON is the one per-row step left in Python, and it holds
the GIL that the reading, converting and writing threads need between their Arrow
calls. A helper interpreter (`python -I -c`, standard library only, started once per
stream) does it on the other core: the parent sends a batch's canonical JSON (one
buffer and its offsets) over a pipe and reads back 32 hex characters per row. The ids
are the same BLAKE2 digests as `rowids.row_id`. If the helper cannot be started
or dies, the parent hashes in-process.
"""

from __future__ import annotations

import array
import contextlib
import logging
import subprocess
import sys
import typing as t

import pyarrow as pa

from tap_avicenna.rowids import content_id

_WORKER = """
import hashlib, sys
read, write, flush = sys.stdin.buffer.read, sys.stdout.buffer.write, sys.stdout.buffer.flush
blake = hashlib.blake2b
try:
    while True:
        head = read(8)
        if len(head) < 8:
            break
        rows, size = int.from_bytes(head[:4], "little"), int.from_bytes(head[4:], "little")
        ends = memoryview(read(4 * (rows + 1))).cast("i")
        data = memoryview(read(size))
        write("".join([blake(data[ends[i]:ends[i + 1]], digest_size=16).hexdigest()
                       for i in range(rows)]).encode())
        flush()
except (BrokenPipeError, KeyboardInterrupt):  # the tap is gone or stopping
    pass
"""
_LOGGER = logging.getLogger("tap-avicenna")


def hash_here(canonical: pa.Array) -> pa.Array:
    """`content_id` of each value, in this process (the helper computes the same)."""
    data = canonical.cast(pa.binary()).to_pylist()
    return pa.array(list(map(content_id, data)), pa.string())


class RowIdHasher:
    """Hashes batches of canonical JSON in a helper process (one batch at a time)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        with contextlib.suppress(OSError):
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-c", _WORKER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )

    def hex_ids(self, canonical: pa.Array) -> pa.Array:
        """Hex BLAKE2 (16 bytes) of each value of a string or binary array."""
        binary = canonical.cast(pa.binary())
        rows = len(binary)
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None or not rows:
            return hash_here(binary)
        _, offsets, data = binary.buffers()
        assert offsets is not None and data is not None
        ends = memoryview(offsets).cast("i")[binary.offset : binary.offset + rows + 1]
        start, end = ends[0], ends[rows]
        if start:
            ends = memoryview(array.array("i", (e - start for e in ends)))
        try:
            proc.stdin.write(rows.to_bytes(4, "little") + (end - start).to_bytes(4, "little"))
            proc.stdin.write(ends)
            proc.stdin.write(memoryview(data)[start:end])
            proc.stdin.flush()
            hexes = proc.stdout.read(32 * rows)
        except OSError:
            hexes = b""
        if len(hexes) != 32 * rows:
            _LOGGER.warning("The row-id helper process stopped; hashing in the tap's process")
            self.close()
            return hash_here(binary)
        positions = array.array("i", range(0, 32 * rows + 1, 32))
        return pa.Array.from_buffers(
            pa.string(), rows, [None, pa.py_buffer(positions), pa.py_buffer(hexes)]
        )

    def close(self) -> None:
        """Stop the helper (it also exits by itself when this process goes away)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> RowIdHasher:
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self.close()
