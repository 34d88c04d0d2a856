"""Atomic claims on a shared output: one holder at a time, whole or absent, abandoned claims are taken over."""

import json
import os
import socket
import subprocess
import sys
import time

from kfgrpo.cache.claims import is_stale, release, try_claim
from kfgrpo.files import CRASH_ENV


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_one_holder_at_a_time(tmp_path):
    claim = tmp_path / "shard-00000.claim"
    assert try_claim(claim, stale_after=600)
    assert not try_claim(claim, stale_after=600)  # held by a live process (this one)
    release(claim)
    assert try_claim(claim, stale_after=600)


def test_a_dead_processs_claim_is_taken_over(tmp_path):
    claim = tmp_path / "shard-00001.claim"
    claim.write_text(json.dumps(dict(host=socket.gethostname(), pid=_dead_pid(), started=time.time())))
    assert is_stale(claim, stale_after=600)
    assert try_claim(claim, stale_after=600)
    assert json.loads(claim.read_text())["pid"] == os.getpid()


def test_another_hosts_claim_goes_stale_after_the_timeout(tmp_path):
    claim = tmp_path / "shard-00002.claim"
    claim.write_text(json.dumps(dict(host="some-other-node", pid=1, started=time.time())))
    assert not try_claim(claim, stale_after=600)  # refreshed just now
    old = time.time() - 700
    os.utime(claim, (old, old))
    assert try_claim(claim, stale_after=600)


def _claim_in_a_process_killed_at(point: str, claim):
    """Runs ``try_claim`` in a child that SIGKILLs itself at the named step (``kfgrpo.files.crash_point``)."""
    code = f"from pathlib import Path; from kfgrpo.cache.claims import try_claim; try_claim(Path({str(claim)!r}), 600)"
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, CRASH_ENV: point})
    assert proc.returncode == -9, f"the child was not killed at {point}"


def test_a_claim_is_whole_or_absent_whatever_step_its_writer_dies_at(tmp_path):
    """Killed after writing its content but before publishing it: no claim exists (and the next worker claims at
    once); killed right after publishing: the claim is complete, names the dead pid and is taken over at once."""
    claim = tmp_path / "shard-00003.claim"
    _claim_in_a_process_killed_at("claim.written", claim)
    assert not claim.exists()
    assert try_claim(claim, stale_after=600, grace=0)
    release(claim)
    _claim_in_a_process_killed_at("claim.linked", claim)
    holder = json.loads(claim.read_text())  # whole: it parses
    assert holder["host"] == socket.gethostname() and holder["pid"] != os.getpid()
    assert is_stale(claim, stale_after=600, grace=0)  # its pid is gone
    assert try_claim(claim, stale_after=600, grace=0)


def test_an_unreadable_claim_is_judged_by_its_age(tmp_path):
    """An empty or torn claim file (another writer killed mid-write) is not held forever: once older than the
    timeout it is taken over; a fresh one is left alone."""
    for content in ("", '{"host": "node-7", "pi'):
        claim = tmp_path / "shard-00004.claim"
        claim.write_text(content)
        assert not is_stale(claim, stale_after=60, grace=0)  # could still be written: not yet
        assert not try_claim(claim, stale_after=60, grace=0)
        two_hours_ago = time.time() - 7200
        os.utime(claim, (two_hours_ago, two_hours_ago))
        assert is_stale(claim, stale_after=60, grace=0)
        assert try_claim(claim, stale_after=60, grace=0)
        assert json.loads(claim.read_text())["pid"] == os.getpid()
        release(claim)
