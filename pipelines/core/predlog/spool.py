"""The prediction log's local spool: every accepted request is on disk before it is answered.

The database insert is batched and can fail or lag (the database is down, restarting, slow);
the spool is what makes an answer safe to send. A request's rows are appended as one line to an
append-only segment file and the answer waits for that write (group commit: one ``write`` and
one ``fdatasync`` cover every request that arrived meanwhile, so concurrent requests share the
cost). The writer (:mod:`.writer`) drains segments into the database in order and deletes a
segment once every row of it is stored or dead-lettered.

Layout under the spool root (``<paths.serving>/predlog-spool``): one directory per live process,
``<pid>-<random>/``, holding ``lock`` (``flock``-ed for the process's lifetime, released by the
kernel even on ``kill -9``) and ``seg-<n>.log``. At start a process adopts every sibling directory
whose lock it can take (its owner is gone) and drains it first. A line is
``<n_rows> <json {"id", "rows"}>\\n``; a line without its newline is the torn tail of a crash
(written, never acknowledged) and is set aside, never guessed at.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from pipelines.core.observability import get_logger

log = get_logger(__name__)
SyncMode = Literal["fsync", "write"]


class SpoolError(OSError):
    """The spool cannot take a request (disk full, I/O error): it must not be acknowledged."""


@dataclass
class _Segment:
    path: Path
    sealed: bool
    durable: int = 0  # bytes known written (and synced) by the appender; sealed: read to EOF
    adopted: bool = False
    reader: IO[bytes] | None = None


@dataclass
class Chunk:
    """Consecutive spool lines read for one insert: parsed records and the lines that are not."""

    records: list[tuple[int, bytes]] = field(default_factory=list)  # (n_rows, json)
    torn: list[bytes] = field(default_factory=list)
    own_records: int = 0
    rows: int = 0
    _segment: _Segment | None = None
    _end: int = 0


def _lock(path: Path, blocking: bool) -> IO[str] | None:
    fh = path.open("a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError:
        fh.close()
        return None
    return fh


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


class Spool:
    """This process's append-only spool, plus the leftovers of dead processes it adopted."""

    def __init__(self, root: Path, sync: SyncMode = "fsync", segment_bytes: int = 4 << 20) -> None:
        self.root = root
        self.sync = sync
        self._segment_bytes = segment_bytes
        root.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        staging = root / f".new-{name}"
        staging.mkdir()
        lock = _lock(staging / "lock", blocking=True)
        assert lock is not None
        self._lock_fh = lock
        self.dir = root / name
        staging.rename(self.dir)  # visible to adopters only once locked
        self._cv = threading.Condition()
        self._pending: list[tuple[bytes, int, Future[None]]] = []
        self._segments: list[_Segment] = []
        self._adopted_locks: dict[Path, IO[str]] = {}
        self._seq = 0
        self._fd = -1
        self._size = 0
        self._open_segment()
        self.appended_records = 0
        self.appended_rows = 0
        self.failed_records = 0
        self.error: str | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="prediction-log-spool", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ appending (request path)
    def append(self, line: bytes, rows: int) -> Future[None]:
        """Queue one record; the future resolves once it is written (and synced, in fsync mode)."""
        fut: Future[None] = Future()
        with self._cv:
            if self._closing:
                fut.set_exception(SpoolError("the prediction-log spool is closed"))
                return fut
            self._pending.append((line, rows, fut))
            self._cv.notify()
        return fut

    def _open_segment(self) -> None:
        self._seq += 1
        path = self.dir / f"seg-{self._seq:09d}.log"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = 0
        self._segments.append(_Segment(path, sealed=False))

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closing:
                    self._cv.wait()
                if not self._pending:
                    return
                group, self._pending = self._pending, []
            data = b"".join(g[0] for g in group)
            try:
                self._write(data)
            except OSError as exc:
                self._failed(group, exc)
                continue
            with self._cv:
                self._size += len(data)
                self._segments[-1].durable = self._size
                self.appended_records += len(group)
                self.appended_rows += sum(g[1] for g in group)
                self.error = None
            for _, _, fut in group:
                fut.set_result(None)
            if self._size >= self._segment_bytes:
                self._rotate()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        if self.sync == "fsync":
            os.fdatasync(self._fd)

    def _failed(self, group: list[tuple[bytes, int, Future[None]]], exc: OSError) -> None:
        """Undo a partial write (a torn line would hide the records after it) and refuse the group."""
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self._size)
        message = f"prediction-log spool write failed in {self.dir}: {type(exc).__name__}: {exc}"
        with self._cv:
            self.error = message
            self.failed_records += len(group)
        log.error("prediction log spool write failed", dir=str(self.dir), error=str(exc))
        for _, _, fut in group:
            fut.set_exception(SpoolError(message))

    def _rotate(self) -> None:
        try:
            os.close(self._fd)
            with self._cv:
                self._segments[-1].sealed = True
                self._open_segment()
        except OSError as exc:
            log.error("prediction log spool rotation failed", dir=str(self.dir), error=str(exc))

    # ------------------------------------------------------------------ leftovers
    def adopt_leftovers(self) -> int:
        """Queue, ahead of our own, the segments of every spool whose process is gone; their rows."""
        rows = 0
        adopted: list[_Segment] = []
        for d in sorted((p for p in self.root.iterdir() if p.is_dir()), key=_mtime):
            # ".new-*": a process that died between creating its spool and publishing it
            if d == self.dir or d in self._adopted_locks:
                continue
            lock = _lock(d / "lock", blocking=False)
            if lock is None:
                continue  # a live process owns it
            self._adopted_locks[d] = lock
            segments = sorted(d.glob("seg-*.log"))
            if not segments:
                self._release(d)
                continue
            for seg in segments:
                with seg.open("rb") as fh:
                    for line in fh:
                        head = line.split(b" ", 1)[0]
                        rows += int(head) if head.isdigit() and line.endswith(b"\n") else 0
                adopted.append(_Segment(seg, sealed=True, adopted=True))
        if adopted:
            with self._cv:
                self._segments[:0] = adopted
            log.warning(
                "prediction log: draining a spool left by a previous process",
                segments=len(adopted),
                rows=rows,
            )
        return rows

    # ------------------------------------------------------------------ draining (writer thread)
    def read(self, max_rows: int, max_bytes: int = 8 << 20) -> Chunk | None:
        """The next durable records in order (at least one when any), or None when all is drained."""
        while True:
            with self._cv:
                if not self._segments:
                    return None
                seg = self._segments[0]
                limit = None if seg.sealed else seg.durable
            if seg.reader is None:
                seg.reader = seg.path.open("rb")
            chunk = Chunk(_segment=seg)
            fh = seg.reader
            start = fh.tell()
            nbytes = 0
            while chunk.rows < max_rows and nbytes < max_bytes:
                pos = fh.tell()
                if limit is not None and pos >= limit:
                    break
                line = fh.readline()
                if not line:
                    break
                nbytes += len(line)
                head, _, body = line.partition(b" ")
                if not line.endswith(b"\n") or not head.isdigit():
                    chunk.torn.append(line)
                    continue
                chunk.records.append((int(head), body))
                chunk.rows += int(head)
                chunk.own_records += 0 if seg.adopted else 1
            chunk._end = fh.tell()
            if chunk.records or chunk.torn:
                fh.seek(start)  # consumed only on commit
                return chunk
            if not seg.sealed:
                return None
            self._finish(seg)  # a sealed segment read to its end: every line of it is stored

    def commit(self, chunk: Chunk) -> None:
        """Everything in ``chunk`` is stored (or dead-lettered): move past it for good."""
        seg = chunk._segment
        assert seg is not None and seg.reader is not None
        seg.reader.seek(chunk._end)
        if seg.sealed and chunk._end >= seg.path.stat().st_size:
            self._finish(seg)

    def _finish(self, seg: _Segment) -> None:
        if seg.reader is not None:
            seg.reader.close()
            seg.reader = None
        with self._cv:
            self._segments.remove(seg)
        with contextlib.suppress(FileNotFoundError):
            seg.path.unlink()
        if seg.adopted and not any(s.path.parent == seg.path.parent for s in self._segments):
            self._release(seg.path.parent)

    def _release(self, d: Path) -> None:
        lock = self._adopted_locks.pop(d, None)
        with contextlib.suppress(OSError):
            (d / "lock").unlink()
            d.rmdir()
        if lock is not None:
            lock.close()

    def close_requested(self) -> bool:
        with self._cv:
            return self._closing and not self._pending and not self._thread.is_alive()

    def segments_pending(self) -> int:
        with self._cv:
            return len(self._segments)

    # ------------------------------------------------------------------ shutdown
    def close_appends(self, timeout: float = 10.0) -> None:
        """Refuse new records and write the queued ones (each still answers its caller)."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(timeout)

    def close(self, drained: bool) -> None:
        """Release the spool; delete this process's segments when ``drained`` (every record is
        stored), else leave them for the next process to adopt."""
        self.close_appends()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        for seg in self._segments:
            if seg.reader is not None:
                seg.reader.close()
                seg.reader = None
        if drained:
            for path in self.dir.glob("seg-*.log"):
                path.unlink()
            with contextlib.suppress(OSError):
                (self.dir / "lock").unlink()
                self.dir.rmdir()
        for d in list(self._adopted_locks):
            self._adopted_locks.pop(d).close()
        self._lock_fh.close()
