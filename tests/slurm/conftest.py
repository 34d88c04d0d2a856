"""The local two-node SLURM cluster (tests/slurm/cluster.py), one per session, stopped by pid afterwards."""

import os

import pytest

from .cluster import LocalCluster, missing_binaries


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    missing = missing_binaries()
    if missing:
        if os.environ.get("KFGRPO_REQUIRE_SLURM") == "1":
            raise RuntimeError(f"KFGRPO_REQUIRE_SLURM=1 but {missing} are not installed: run `make test-slurm`")
        pytest.skip(f"needs SLURM and munge ({', '.join(missing)}): `make test-slurm` installs them")
    c = LocalCluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield c.start()
    finally:
        c.stop()
        left = c.alive()
        assert not left, f"daemons left running: {left}"
