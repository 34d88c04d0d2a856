"""Does a learned keyframe selector beat TAD's hand-set one? ChronoSynth with the demo's SFT model frozen.

1. ``kfgrpo tad-learn`` (recipes/tiny-cpu/tad-learn.yaml) on the demo's training split (ChronoSynth seed 0).
2. Held-out splits never used for tuning, ChronoSynth seed 1 and seed 101 (``--num-videos`` each): the frozen model's
   greedy accuracy from the K frames each selector picks, at K = 4 and 8, for uniform (on TAD's candidate grid), TAD
   with its hand-set stage 3 (the defaults) and TAD with the learned stage 3. All three choose among the same
   candidates of the same decode. Standard errors by bootstrap over questions; the learned − TAD difference with a
   paired bootstrap (the same resampled questions for both).
3. Event recall@K (an object's appearance with a keyframe within one candidate interval after it, as in
   bench_tad_recall.py) and object coverage@K (the share of objects visible in at least one keyframe: what a count or
   order question needs).
4. Real footage (bench_tad_real.py's held-out composition, seed 2, TAD defaults otherwise): cut and shot coverage
   of the learned selector against the hand-set defaults at K = 8, 16, 32.

    python benchmarks/bench_tad_learn.py [--steps 150] [--seeds 0 1 2] [--num-videos 200] [--workdir outputs/bench-tad-learn]

One selector per training seed (``--seeds``): the spread over seeds says how much of a difference is the learning run's
luck. A rerun reuses finished training runs (their checkpoints) and re-evaluates.

Needs the demo's data and SFT model (``make demo-data`` and the SFT stage of ``make train``; the script builds what is
missing with the same commands). Writes results JSON (``--json``, default benchmarks/results/tad-learn.json).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def bootstrap_se(values: np.ndarray, n: int = 2000, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n, len(values)))
    return float(values[idx].mean(axis=1).std(ddof=1))


def _ensure_demo(kfgrpo: str):
    need = [
        ROOT / "outputs/tiny-cpu/sft/model.safetensors",
        ROOT / "data/chronosynth/train/manifest.jsonl",
        ROOT / "data/chronosynth/test/manifest.jsonl",
    ]
    if not all(p.exists() for p in need):
        subprocess.run(["make", "-C", str(ROOT), "demo-data", "outputs/tiny-cpu/sft/model.safetensors"], check=True)


def _split(work: Path, seed: int, num_videos: int, kfgrpo: str) -> Path:
    out = work / f"chronosynth-seed{seed}"
    manifest = out / "manifest.jsonl"
    if not manifest.exists():
        subprocess.run(
            [kfgrpo, "synth", "--config", str(ROOT / "recipes/tiny-cpu/synth.yaml"), "--output", str(out)]
            + ["--num-videos", str(num_videos), "--seed", str(seed)],
            check=True,
        )
    return manifest


def evaluate_split(manifest: Path, ks, selector_paths: dict, cfg, prompt_args, backend) -> dict:
    """Per K and selector (uniform, tad, and each learned selector in ``selector_paths``): per-question scores, event
    recall and object coverage, and each learned selector's paired difference to tad."""
    from bench_tad_recall import event_recall
    from kfgrpo.eval.benchmarks import read_benchmark
    from kfgrpo.eval.protocols import get_protocol
    from kfgrpo.tad.learned import LearnedSelector
    from kfgrpo.tad.learned.training import Candidates, answer_all
    from kfgrpo.tad.stages import uniform_positions

    protocol = get_protocol("reasoning", "canonical")
    selectors = {name: LearnedSelector.load(path) for name, path in selector_paths.items()}
    rows = read_benchmark("canonical", str(manifest))
    truth = {json.loads(x)["id"]: json.loads(x) for x in manifest.read_text().splitlines()}  # events, per question
    out = {}
    for k in ks:
        cands = {}
        for row in rows:
            if row["video"] not in cands:
                cands[row["video"]] = Candidates.decode(row["video"], k, cfg)
        picks = {
            "uniform": lambda c, k=k: [int(p) for p in uniform_positions(len(c.timestamps), k)],
            "tad": lambda c: c.distill,
        }
        for name, sel in selectors.items():
            picks[name] = lambda c, k=k, sel=sel: [int(p) for p in sel.select(c.phi, k)]
        requests = [(row, cands[row["video"]], pick(cands[row["video"]])) for row in rows for pick in picks.values()]
        scores = answer_all(backend, requests, prompt_args, protocol)
        res = {}
        for name, pick in picks.items():
            s = np.array([scores[(r["id"], tuple(pick(cands[r["video"]])))] for r in rows], dtype=np.float64)
            hits = total = seen = objects = 0
            for video in cands:
                row = truth[next(r["id"] for r in rows if r["video"] == video)]
                stamps = [cands[video].timestamps[p] for p in pick(cands[video])]
                h, n = event_recall(stamps, row["event_timestamps"], 1.0 / cfg.candidate_fps)
                hits, total = hits + h, total + n
                seen += sum(any(e["start"] - 1e-6 <= t < e["end"] for t in stamps) for e in row["events"])
                objects += len(row["events"])
            res[name] = dict(
                accuracy=float(s.mean()),
                se=bootstrap_se(s),
                event_recall=hits / total,
                object_coverage=seen / objects,
                scores=s.tolist(),
            )
        for name in selectors:
            diff = np.array(res[name]["scores"]) - np.array(res["tad"]["scores"])
            res[name]["minus_tad"] = dict(diff=float(diff.mean()), se=bootstrap_se(diff))
            res[name]["discordant"] = dict(  # questions only one of the two gets right
                learned_only=int(np.sum(diff > 0)), tad_only=int(np.sum(diff < 0))
            )
        res["questions"] = len(rows)
        out[k] = res
    return out


def real_footage(selector_paths: dict, ks, work: Path) -> dict | None:
    """Cut and shot coverage of the hand-set TAD and of each learned selector on the held-out composition."""
    from _videos import compose_shots
    from bench_tad_real import run
    from kfgrpo.tad import TADConfig

    made = compose_shots(work / "shots-2-60s.mp4", 2, 60.0)
    if made is None:
        return None
    path, cuts = made
    out = {"cuts": len(cuts), "tad": run(str(path), cuts, ks, TADConfig())["rows"]["TAD (defaults)"]}
    for name, selector in selector_paths.items():
        out[name] = run(str(path), cuts, ks, TADConfig(selector_weights=str(selector)))["rows"]["TAD (defaults)"]
    return out


def main(argv=None):
    import yaml

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Training seeds (one selector each).")
    parser.add_argument("--num-videos", type=int, default=200, help="Videos per held-out split (2 questions each).")
    parser.add_argument("--k", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--workdir", default=str(ROOT / "outputs/bench-tad-learn"))
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/tad-learn.json"))
    args = parser.parse_args(argv)

    from kfgrpo.data_utils import PromptArguments
    from kfgrpo.eval.run import EvalModelConfig, HFBackend
    from kfgrpo.tad import TADConfig
    from kfgrpo.tad.learned.training import TADLearnArgs, learn

    kfgrpo = str(Path(sys.executable).parent / "kfgrpo")
    _ensure_demo(kfgrpo)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    recipe = yaml.safe_load((ROOT / "recipes/tiny-cpu/tad-learn.yaml").read_text())
    learn_keys = {f for f in TADLearnArgs.__dataclass_fields__}
    prompt_keys = {f for f in PromptArguments.__dataclass_fields__}
    tad_keys = {f for f in TADConfig.__dataclass_fields__}
    largs = TADLearnArgs(**{k: v for k, v in recipe.items() if k in learn_keys})
    largs.max_steps = args.steps
    largs.manifest, largs.model = str(ROOT / largs.manifest), str(ROOT / largs.model)
    prompt_args = PromptArguments(**{k: v for k, v in recipe.items() if k in prompt_keys})
    cfg = TADConfig(**{k: v for k, v in recipe.items() if k in tad_keys})
    model_args = EvalModelConfig(dtype=recipe.get("dtype", "float32"))
    model_args.model_name_or_path = largs.model
    backend = HFBackend(largs, model_args)

    results = {"steps": args.steps, "questions_per_step": largs.questions_per_step, "training_seeds": args.seeds}
    results["learned"] = {}
    selectors = {}
    for seed in args.seeds:
        largs.output_dir, largs.seed = str(work / f"tad-learn-seed{seed}"), seed
        start = time.perf_counter()
        summary = learn(largs, cfg, prompt_args, backend=backend)
        name = f"learned (seed {seed})"
        selectors[name] = Path(summary["selector"])
        history = [json.loads(x) for x in (Path(largs.output_dir) / "log.jsonl").read_text().splitlines()]
        results["learned"][name] = {
            "seconds_this_call": round(time.perf_counter() - start),
            "selector": json.loads(selectors[name].read_text()),
            "training_last_30": {
                key: float(np.mean([h[key] for h in history[-30:] if key in h]))
                for key in ("reward", "greedy_reward", "distill_reward", "groups_with_spread")
            },
        }
        print(f"{name}: {results['learned'][name]}")
    splits = {
        "seed 1": _split(work, 1, args.num_videos, kfgrpo),
        "seed 101": _split(work, 101, args.num_videos, kfgrpo),
    }
    results["held_out"] = {}
    for split, manifest in splits.items():
        t = time.perf_counter()
        res = evaluate_split(manifest, args.k, selectors, cfg, prompt_args, backend)
        results["held_out"][split] = res
        print(f"\n{split} ({res[args.k[0]]['questions']} questions, {time.perf_counter() - t:.0f} s)")
        print(
            f"{'K':>3} {'selector':<18} {'accuracy':>15} {'− tad (paired)':>22} {'event recall':>13} {'object cov.':>12}"
        )
        for k in args.k:
            for name in ("uniform", "tad", *selectors):
                r = res[k][name]
                d = r.get("minus_tad")
                vs = f"{d['diff']:+.3f} ± {d['se']:.3f} ({d['diff'] / max(d['se'], 1e-9):+.1f} SE)" if d else ""
                print(
                    f"{k:>3} {name:<18} {r['accuracy']:.3f} ± {r['se']:.3f} {vs:>22} {r['event_recall']:>12.3f}"
                    f" {r['object_coverage']:>12.3f}"
                )
    results["pooled"] = {}
    print("\nboth held-out splits pooled (paired over their questions), learned − tad:")
    for k in args.k:
        per_seed = {}
        for name in selectors:
            diff = np.concatenate(
                [
                    np.array(results["held_out"][sp][k][name]["scores"]) - results["held_out"][sp][k]["tad"]["scores"]
                    for sp in splits
                ]
            )
            per_seed[name] = dict(diff=float(diff.mean()), se=bootstrap_se(diff))
            print(
                f"K={k} {name}: {diff.mean():+.3f} ± {per_seed[name]['se']:.3f} ({diff.mean() / max(per_seed[name]['se'], 1e-9):+.1f} SE)"
            )
        means = np.array([v["diff"] for v in per_seed.values()])
        spread = float(means.std(ddof=1) / np.sqrt(len(means))) if len(means) > 1 else float("nan")
        results["pooled"][k] = dict(per_seed=per_seed, mean_over_seeds=float(means.mean()), se_over_seeds=spread)
        print(f"K={k} mean over training seeds: {means.mean():+.3f} (standard error over seeds {spread:.3f})")
    real = real_footage(selectors, [8, 16, 32], work)
    results["real_footage"] = real
    if real is not None:
        print(f"\nreal footage, held-out composition (seed 2, {real['cuts']} cuts): cut / shot coverage")
        for name in ("tad", *selectors):
            print(
                f"{name:<18} "
                + "   ".join(f"K={k}: {real[name][k][0]:.2f} / {real[name][k][1]:.2f}" for k in (8, 16, 32))
            )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"\n-> {args.json}; curves {work}/tad-learn-seed*/learning_curve.png")
    return results


if __name__ == "__main__":
    main()
