"""How much does the CPU demo's result depend on the run? `make train` (the tiny CPU demo) over several seeds.

Each seed (``DEMO_SEED``) changes the random weights, the SFT data order and the RL sampling; the data splits stay
fixed (ChronoSynth seeds 0 and 1). A seed change stands in for another CPU's float order: both give a different
model after hundreds of steps, so the spread over seeds is what a user on another machine should expect. Per seed:

1. ``make demo-data`` (the base model; the first seed also builds the shared data: ChronoSynth splits and TAD),
2. the SFT warm start (``make <DEMO_SFT>/model.safetensors``) and its held-out evaluation,
3. ``make demo``: KF-GRPO (the ``kf-grpo`` preset) and the held-out evaluation, and with ``--baseline`` the same
   for the ``grpo`` preset from the same warm start.

Each stage is timed as a user runs it (one process per subcommand, with its start-up); ``make train`` on a fresh
clone runs data + SFT + KF-GRPO + evaluation. Every stage runs alone: do not time anything beside it.

    python benchmarks/bench_cpu_demo.py [--seeds 0 1 2 3 4] [--baseline grpo] [--workdir outputs/bench-cpu-demo]

A rerun reuses finished seeds (their ``record.json``); ``--redo-rl`` retrains only their RL stage. Writes
``--json`` (default benchmarks/results/cpu-demo.json); ``benchmarks/docs_results.py`` renders the docs' table from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("order", "count")


def _make(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run(["make", "-C", str(ROOT), *args], check=True)
    return time.perf_counter() - start


def _scores(folder: Path) -> dict:
    r = json.loads((folder / "eval.json").read_text())
    family = r["per_category"]["family"]
    return {
        "accuracy": r["accuracy"],
        "accuracy_shuffled": r["accuracy_shuffled"],
        "frame_sensitivity": r["frame_sensitivity"],
        "chance": r["chance"],
        "num_questions": r["num_questions"],
        **{f: family[f]["accuracy"] for f in FAMILIES if f in family},
    }


def _rl_seconds(folder: Path) -> float:
    history = json.loads((folder / "trainer_state.json").read_text())["log_history"]
    return next(h["train_runtime"] for h in reversed(history) if "train_runtime" in h)


def run_seed(seed: int, work: Path, data: Path, baseline: str | None, redo_rl: bool = False) -> dict:
    out = work / f"s{seed}"
    record_file = out / "record.json"
    paths = [f"DEMO_DATA={data}", f"DEMO_MODEL={out / 'base-model'}", f"DEMO_SFT={out / 'sft'}", f"DEMO_SEED={seed}"]
    if record_file.exists():
        record = json.loads(record_file.read_text())
        if redo_rl:  # the RL recipe changed: keep the data and warm start (and their times), train RL anew
            for arm in [a for a in record["arms"] if a != "sft"]:
                shutil.rmtree(out / arm, ignore_errors=True)
            record["arms"] = {"sft": record["arms"]["sft"]}
            return _rl_arms(record, out, paths, baseline, record_file)
        if baseline is None or baseline in record["arms"]:
            return record
    out.mkdir(parents=True, exist_ok=True)
    record = {"seed": seed, "seconds": {}, "arms": {}}
    record["seconds"]["data"] = _make("demo-data", *paths)
    record["seconds"]["sft"] = _make(f"{out / 'sft'}/model.safetensors", *paths)
    start = time.perf_counter()
    subprocess.run(
        [str(ROOT / ".venv/bin/kfgrpo"), "eval", "--config", str(ROOT / "recipes/tiny-cpu/eval.yaml"),
         "--model", str(out / "sft"), "--data", str(data / "test/manifest.jsonl"), "--output", str(out / "sft")],
        check=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    record["seconds"]["sft_eval"] = time.perf_counter() - start
    record["arms"]["sft"] = _scores(out / "sft")
    return _rl_arms(record, out, paths, baseline, record_file)


def _rl_arms(record: dict, out: Path, paths: list[str], baseline: str | None, record_file: Path) -> dict:
    for arm in ["kf-grpo", *([baseline] if baseline else [])]:
        args = [] if arm == "kf-grpo" else [f"ARGS=--kf_preset {arm}"]
        seconds = _make("demo", *paths, f"DEMO_OUT={out / arm}", *args)
        record["seconds"]["demo" if arm == "kf-grpo" else f"demo_{arm}"] = seconds
        record["seconds"]["rl" if arm == "kf-grpo" else f"rl_{arm}"] = _rl_seconds(out / arm)
        record["arms"][arm] = _scores(out / arm)
    record_file.write_text(json.dumps(record, indent=1) + "\n")
    return record


def summarize(records: list[dict]) -> dict:
    """Mean, sample standard deviation, min and max over seeds, per arm and metric."""
    out = {}
    for arm in records[0]["arms"]:
        present = [r["arms"][arm] for r in records if arm in r["arms"]]
        out[arm] = {
            k: {
                "mean": float(np.mean([p[k] for p in present])),
                "std": float(np.std([p[k] for p in present], ddof=1)) if len(present) > 1 else 0.0,
                "min": float(min(p[k] for p in present)),
                "max": float(max(p[k] for p in present)),
            }
            for k in ("accuracy", "accuracy_shuffled", "frame_sensitivity", *FAMILIES)
        }
    return out


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--baseline", default=None, help="Also train this preset from each warm start (e.g. grpo).")
    parser.add_argument(
        "--redo-rl", action="store_true",
        help="Retrain and re-evaluate only the RL arms of finished seeds (after a change to recipes/tiny-cpu/"
        "kfgrpo.yaml); the data, the warm starts and their times are kept.",
    )  # fmt: skip
    parser.add_argument("--workdir", default=str(ROOT / "outputs/bench-cpu-demo"))
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/cpu-demo.json"))
    args = parser.parse_args(argv)
    work = Path(args.workdir).resolve()
    data = work / "data"
    records = []
    for seed in args.seeds:
        records.append(run_seed(seed, work, data, args.baseline, args.redo_rl))
        print(json.dumps(records[-1]), flush=True)
    first = records[0]["seconds"]
    result = {
        "command": "python benchmarks/bench_cpu_demo.py --seeds "
        + " ".join(map(str, args.seeds))
        + (f" --baseline {args.baseline}" if args.baseline else ""),
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count()},
        "seeds": records,
        "summary": summarize(records),
        # make train from a fresh clone after make setup: the first seed built the data, the others reused it
        "make_train_seconds": first["data"] + first["sft"] + first["demo"],
    }
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
