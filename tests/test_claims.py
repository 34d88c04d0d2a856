"""Atomic claims on a shared output: one holder at a time, abandoned claims are taken over."""

import json
import os
import socket
import subprocess
import sys
import time

from kfgrpo.claims import is_stale, release, try_claim


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
