"""A real two-node SLURM cluster on one machine, for `make test-slurm`: Debian's slurm-wlm 22.05 (slurmctld, two
slurmd, munge), configured in a temporary folder (``SLURM_CONF``; an existing ``/etc/slurm`` is never read or touched),
stopped by pid. Nodes ``n1`` and ``n2`` (one CPU each) have address 127.0.0.1 and a port each; jobs, ``srun`` and
``scontrol`` are the real scheduler's."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "squeue", "sacct")
NODES = ("n1", "n2")


def missing_binaries() -> list[str]:
    return [d for d in DAEMONS if shutil.which(d) is None and not Path("/usr/sbin", d).exists()]


def _binary(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_ports(n: int) -> list[int]:
    """Ports the OS picks, held until all are known so that none is handed out twice."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class LocalCluster:
    """Start with ``start()``, stop with ``stop()`` (every daemon it started, by pid, whatever happened)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.pids: dict[str, int] = {}

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.root / "slurm.conf")}

    def start(self, timeout: float = 90.0) -> LocalCluster:
        r = self.root
        for d in ("state", *(f"spool-{n}" for n in NODES)):
            (r / d).mkdir(parents=True, exist_ok=True)
        key = r / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        subprocess.run(
            [_binary("munged"), f"--key-file={key}", f"--socket={r / 'munge.sock'}", f"--pid-file={r / 'munged.pid'}",
             f"--log-file={r / 'munged.log'}", f"--seed-file={r / 'munged.seed'}", "--force"],
            check=True,
        )  # fmt: skip
        self.pids["munged"] = self._pid(r / "munged.pid")
        ctld, *node_ports = _free_ports(1 + len(NODES))
        host = socket.gethostname()
        nodes = "\n".join(
            f"NodeName={n} NodeAddr=127.0.0.1 NodeHostname={host} Port={p} CPUs=1 State=UNKNOWN"
            for n, p in zip(NODES, node_ports)
        )
        (r / "slurm.conf").write_text(
            f"""ClusterName=kfgrpo-ci
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld}
SlurmdPort={node_ports[0]}
AuthType=auth/munge
AuthInfo=socket={r / "munge.sock"}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={r / "state"}
SlurmdSpoolDir={r / "spool-%n"}
SlurmctldPidFile={r / "slurmctld.pid"}
SlurmdPidFile={r / "slurmd-%n.pid"}
SlurmctldLogFile={r / "slurmctld.log"}
SlurmdLogFile={r / "slurmd-%n.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SwitchType=switch/none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
InactiveLimit=0
KillWait=5
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
{nodes}
PartitionName=ci Nodes={",".join(NODES)} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""
        )
        subprocess.run([_binary("slurmctld"), "-i"], env=self.env, check=True)
        self.pids["slurmctld"] = self._pid(r / "slurmctld.pid")
        for n in NODES:
            subprocess.run([_binary("slurmd"), "-N", n], env=self.env, check=True)
            self.pids[f"slurmd-{n}"] = self._pid(r / f"slurmd-{n}.pid")
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%T %D"], env=self.env, capture_output=True, text=True).stdout
            if out.split() == ["idle", str(len(NODES))]:
                return self
            time.sleep(0.5)
        raise RuntimeError(f"the local SLURM cluster did not come up: sinfo says {out!r}; logs in {r}")

    @staticmethod
    def _pid(path: Path, timeout: float = 30.0) -> int:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if path.exists() and path.read_text().strip():
                return int(path.read_text().split()[0])
            time.sleep(0.1)
        raise RuntimeError(f"no pid file {path}")

    def stop(self) -> None:
        """SIGTERM each daemon this cluster started (nodes, controller, munge), then SIGKILL what is left."""
        order = [k for k in self.pids if k.startswith("slurmd")] + ["slurmctld", "munged"]
        for name in order:
            if name in self.pids:
                _signal(self.pids[name], signal.SIGTERM)
        deadline = time.time() + 20
        while time.time() < deadline and any(_alive(self.pids[n]) for n in order if n in self.pids):
            time.sleep(0.2)
        for name in order:
            if name in self.pids and _alive(self.pids[name]):
                _signal(self.pids[name], signal.SIGKILL)

    def alive(self) -> list[str]:
        return [name for name, pid in self.pids.items() if _alive(pid)]

    # -- jobs ----------------------------------------------------------------------------------------------------
    def sbatch(self, args: list[str], cwd: Path, env: dict | None = None, timeout: float = 900) -> tuple[int, str]:
        """``sbatch --parsable --wait ...``: (exit code, job id)."""
        out = subprocess.run(["sbatch", "--parsable", "--wait", *args], cwd=cwd, env={**self.env, **(env or {})},
                             capture_output=True, text=True, timeout=timeout)  # fmt: skip
        job = out.stdout.strip().split(";")[0].splitlines()[0] if out.stdout.strip() else ""
        return out.returncode, job

    def submit(self, args: list[str], cwd: Path, env: dict | None = None) -> str:
        """``sbatch --parsable ...`` without waiting: the job id."""
        out = subprocess.run(["sbatch", "--parsable", *args], cwd=cwd, env={**self.env, **(env or {})},
                             capture_output=True, text=True, check=True)  # fmt: skip
        return out.stdout.strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (the first record for an array)."""
        out = subprocess.run(["scontrol", "show", "job", "-o", job_id], env=self.env, capture_output=True,
                             text=True).stdout.splitlines()  # fmt: skip
        fields = {}
        for token in (out[0] if out else "").split():
            key, _, value = token.partition("=")
            fields.setdefault(key, value)
        return fields

    def wait_gone(self, job_id: str, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run(["squeue", "-h", "-j", job_id], env=self.env, capture_output=True, text=True)
            if not out.stdout.strip():
                return
            time.sleep(0.5)
        raise TimeoutError(f"job {job_id} still queued or running")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _signal(pid: int, sig) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
