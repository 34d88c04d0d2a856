"""Atomic work claims on a shared filesystem, so that many ``kfgrpo tad`` processes (other nodes, a SLURM array) can
share one output folder without a coordinator.

A claim is whole or absent: its content (the claimant's host, pid and start time) is written to a temporary file
first, which is then hard-linked to the claim's name. ``link`` fails when the name exists, atomically on local
filesystems and on NFS (the link count settles a lost reply), so a worker killed at any step leaves either no claim or
a complete one, never an empty file that nobody can judge. A background thread refreshes the claim's mtime while the
work runs.

A claim is stale, and may be taken over, when its process is gone (same host: the pid no longer exists) or when it has
not been refreshed for ``stale_after`` seconds (another host, or a claim whose content cannot be read: a file left
torn by an older writer, or by a filesystem that lost it). A reader that finds an unreadable claim waits ``grace``
seconds once before judging it, in case a non-atomic writer is still writing it. Taking over renames the stale file
first, so of two processes that find the same stale claim only one wins.
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

from ..files import crash_point, temporary_name

HEARTBEAT_SECONDS = 30.0


def try_claim(path: Path, stale_after: float, grace: float = 2.0) -> bool:
    """Creates the claim file ``path`` whole; True when this process now holds it."""
    holder = json.dumps(dict(host=socket.gethostname(), pid=os.getpid(), started=time.time()))
    for _ in range(2):  # once more after taking over a stale claim
        if _link_new(path, holder):
            crash_point("claim.linked")
            return True
        if not is_stale(path, stale_after, grace):
            return False
        try:
            os.replace(path, path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}"))
        except FileNotFoundError:  # another process took it over first
            return False
        crash_point("claim.taken-over")
    return False


def _link_new(path: Path, content: str) -> bool:
    """Publishes ``content`` under ``path`` unless the name exists: True when this call created it."""
    tmp = temporary_name(path)
    try:
        with open(tmp, "w") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        crash_point("claim.written")
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # NFS: the reply may be lost although the link was made; the link count tells
            if os.stat(tmp).st_nlink != 2:
                raise
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def read_holder(path: Path) -> dict | None:
    """The claim's ``{host, pid, started}``; None when it cannot be read as one."""
    try:
        holder = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return holder if isinstance(holder, dict) else None


def is_stale(path: Path, stale_after: float, grace: float = 2.0) -> bool:
    """Whether the claim at ``path`` was abandoned (see the module docstring); False when it is gone."""
    try:
        holder = read_holder(path)
        if holder is None and grace > 0:
            time.sleep(grace)  # a writer that does not link claims whole may still be writing it
            holder = read_holder(path)
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False  # just released: nothing to take over
    if holder is not None and holder.get("host") == socket.gethostname() and "pid" in holder:
        return not process_alive(int(holder["pid"]))
    return age > stale_after


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host."""
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
