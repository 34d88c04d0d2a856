"""Files that another process, or a resumed run, reads back: each is whole or absent.

A file read by someone else is written under a temporary name in the same folder and renamed into place
(``write_atomic``): a reader sees the old content or the new, never half. A log that grows is appended in whole lines
(``append_lines``: one ``write`` of complete lines) and read back by ``read_jsonl``, which drops a last line cut short
by a kill and, with ``repair=True``, truncates it so that the next append starts on a line of its own.

``crash_point(name)`` marks a step at which a kill would leave a state worth testing. It does nothing unless the
environment variable ``KFGRPO_CRASH_AT`` names that step (``name`` or ``name:N`` for its N-th passage in the
process): then the process kills itself with SIGKILL right there, as a preemption would. Tests use it to kill a worker
at an exact step instead of guessing the moment with sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections import Counter
from pathlib import Path

CRASH_ENV = "KFGRPO_CRASH_AT"
_passages: Counter = Counter()


def crash_point(name: str) -> None:
    """SIGKILLs this process when ``KFGRPO_CRASH_AT`` names this step (``name`` or ``name:N``, the N-th passage)."""
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    _passages[name] += 1
    if _passages[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def temporary_name(path: Path) -> Path:
    """A name beside ``path`` that no other writer uses (hidden, host/pid/random suffixed)."""
    return path.with_name(f".{path.name}.{os.uname().nodename}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Writes ``data`` to ``path`` whole: a temporary file in the same folder, flushed to disk, then renamed."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | os.PathLike, obj, **dumps_kwargs) -> None:
    """``write_atomic`` of ``json.dumps(obj)``."""
    write_atomic(path, json.dumps(obj, **dumps_kwargs))


def append_lines(path: str | os.PathLike, lines: list[str]) -> None:
    """Appends complete lines (each ending in a newline) with one ``write`` on an ``O_APPEND`` descriptor, flushed to
    disk: a kill leaves at most the last line torn, which ``read_jsonl`` drops."""
    if not lines:
        return
    data = "".join(line.rstrip("\n") + "\n" for line in lines).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: str | os.PathLike, repair: bool = False) -> list:
    """The records of a JSON-lines file that ``append_lines`` writes; a last line without its newline (torn by a kill)
    is dropped, and with ``repair=True`` cut off the file so that the next append starts a line of its own. A missing
    file has no records."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    end = data.rfind(b"\n") + 1
    if repair and end < len(data):
        os.truncate(path, end)
    return [json.loads(line) for line in data[:end].decode().splitlines() if line.strip()]
