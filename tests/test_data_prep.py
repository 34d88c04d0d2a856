"""The data_prep scripts: --help touches nothing, KEY=VALUE arguments work as their usage lines show, and a large
download starts only when confirmed. The Hub CLI is replaced by a recorder: nothing is downloaded."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (ROOT / "data_prep").glob("*.sh") if not p.name.startswith("_"))


def _run(script, *args, tmp_path, **env):
    recorder = tmp_path / "hf"
    recorder.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "hf-calls"}\n')
    recorder.chmod(0o755)
    environ = {**os.environ, "HF": str(recorder), "KFGRPO": "/bin/false", **env}
    return subprocess.run(
        ["bash", str(ROOT / "data_prep" / script), *args], cwd=tmp_path, env=environ, capture_output=True, text=True
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_prints_the_usage_and_touches_nothing(script, tmp_path):
    out = _run(script, "--help", tmp_path=tmp_path)
    assert out.returncode == 0 and f"data_prep/{script}" in out.stdout and "--yes" in out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no download, no folder


@pytest.mark.parametrize("script", ["video_r1.sh", "videomme.sh", "mvbench.sh"])
def test_a_large_download_says_what_and_where_and_waits_for_yes(script, tmp_path):
    out = _run(script, f"OUT={tmp_path / 'x'}", tmp_path=tmp_path)
    assert out.returncode == 2 and f"to {tmp_path / 'x'}" in out.stdout and "--yes" in out.stderr
    assert not (tmp_path / "hf-calls").exists()
    _run(script, f"OUT={tmp_path / 'x'}", "--yes", tmp_path=tmp_path)  # fails later: the recorder fetched nothing
    assert f"--local-dir {tmp_path / 'x'}" in (tmp_path / "hf-calls").read_text()


def test_an_unknown_argument_is_one_line_and_exit_2(tmp_path):
    out = _run("lvbench.sh", "data/x", tmp_path=tmp_path)
    assert (
        out.returncode == 2
        and out.stderr.strip() == "lvbench.sh: unknown argument 'data/x' (KEY=VALUE, --yes or --help)"
    )
    assert not (tmp_path / "hf-calls").exists()
