"""Atomic work claims on a shared filesystem, so that many ``kfgrpo tad`` processes (other nodes, a SLURM array) can
share one output folder without a coordinator.

A claim is a file created with ``O_CREAT | O_EXCL`` (atomic on local filesystems and on NFSv3+ / Lustre / GPFS),
holding the claimant's host, pid and start time; a background thread refreshes its mtime while the work runs. A claim
is stale, and may be taken over, when its process is gone (same host: the pid no longer exists) or when it has not
been refreshed for ``stale_after`` seconds (another host). Taking over renames the stale file first, so of two
processes that find the same stale claim only one wins.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

HEARTBEAT_SECONDS = 30.0


def try_claim(path: Path, stale_after: float) -> bool:
    """Creates the claim file ``path``; True when this process now holds it."""
    for _ in range(2):  # once more after taking over a stale claim
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not is_stale(path, stale_after):
                return False
            try:
                os.replace(path, path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}"))
            except FileNotFoundError:  # another process took it over first
                return False
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(dict(host=socket.gethostname(), pid=os.getpid(), started=time.time()), fh)
        return True
    return False


def is_stale(path: Path, stale_after: float) -> bool:
    try:
        holder = json.loads(path.read_text() or "{}")
        age = time.time() - path.stat().st_mtime
    except (FileNotFoundError, json.JSONDecodeError):
        return False  # being written or just released: not ours to judge
    if holder.get("host") == socket.gethostname() and "pid" in holder:
        return not _alive(int(holder["pid"]))
    return age > stale_after


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class Heartbeat:
    """Refreshes the mtime of the held claims every ``HEARTBEAT_SECONDS`` until stopped (a context manager)."""

    def __init__(self):
        self.paths: set[Path] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self):
        while not self._stop.wait(HEARTBEAT_SECONDS):
            for path in list(self.paths):
                with contextlib.suppress(FileNotFoundError):
                    os.utime(path)
