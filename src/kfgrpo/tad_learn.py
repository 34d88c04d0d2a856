"""``kfgrpo tad-learn``: train TAD's learned stage 3 (:mod:`kfgrpo.tad.learned`) from a frozen model's answers.

For each training question the selector draws M frame sets from its policy over the video's TAD candidates; the frozen
model answers each set greedily and the answer is scored as ``kfgrpo eval`` scores it (0/1 for a choice, partial credit
where the protocol gives it). The update is REINFORCE with the group's mean as baseline (GRPO's advantage without the
std division, which would pay a group whose sets differ by one lucky answer as much as a clear one):

    loss = −(1/(Q·M)) Σ_q Σ_m (r_qm − mean_m r_qm) · log π(S_qm)

**Why answer accuracy and not a teacher-forced likelihood.** The demo's model reasons before it answers, and its
reference reasoning (the ChronoSynth trace) is written from the frames it is given: a likelihood of the trace rewards
frame sets that are easy to describe (an empty frame has the shortest trace), and a likelihood of the answer after a
teacher-forced trace reads the answer off the trace, not the frames. The accuracy of the model's own greedy answer is
what evaluation measures, needs no reference reasoning (it works for any dataset with gradable answers), and its cost
is generation, which the demo's model makes cheap. Identical frame sets in a group are answered once.

Each step also scores, on the same questions, the selector's greedy draw (what ``kfgrpo tad`` will cache) and TAD's
hand-set selection, so the learning curve shows the effect against the baseline on the same questions.

Outputs in ``output_dir``: ``selector.json`` (the weights), ``tad.yaml`` (the TAD config used, with
``selector_weights`` pointing at them: ``kfgrpo tad --config <output_dir>/tad.yaml`` uses it unchanged),
``log.jsonl`` (one line per step), ``learning_curve.png``, ``errors.jsonl`` (unusable videos, skipped),
``checkpoint.pt`` (parameters, optimizer, step and random states; a rerun resumes from it).
"""

from __future__ import annotations

import json
import os
import warnings
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from .tad import TADConfig
from .tad.learned import LearnedSelector, candidate_features
from .video import VideoError


@dataclass
class TADLearnArgs:
    manifest: str = field(metadata={"help": "Training questions: a canonical manifest (JSONL, e.g. `kfgrpo synth`)."})
    model: str = field(metadata={"help": "The frozen model whose answers score the frame sets (folder or Hub id)."})
    output_dir: str = field(metadata={"help": "Folder for selector.json, tad.yaml, log.jsonl, the curve, checkpoint."})
    num_frames: list[int] = field(
        default_factory=lambda: [4, 8],
        metadata={
            "help": "Keyframe budgets K to learn for; steps cycle through them (the repulsion width is relative "
            "to N/K, so one selector serves several K)."
        },
    )
    max_steps: int = field(default=60, metadata={"help": "Optimizer steps."})
    questions_per_step: int = field(default=16, metadata={"help": "Questions per step (Q)."})
    samples_per_question: int = field(default=4, metadata={"help": "Frame sets drawn per question (M, the group)."})
    learning_rate: float = field(default=0.05, metadata={"help": "Adam learning rate of the selector's parameters."})
    temperature: float = field(default=1.0, metadata={"help": "τ of the selector's policy (fixed)."})
    init_saliency_weight: float = field(
        default=3.0, metadata={"help": "Initial weight of TAD's saliency feature; every other feature starts at 0."}
    )
    init_repulsion: float = field(default=2.0, metadata={"help": "Initial repulsion β between picks."})
    init_width: float = field(default=0.5, metadata={"help": "Initial repulsion width ℓ, in units of N/K candidates."})
    log_baselines: bool = field(
        default=True,
        metadata={
            "help": "Each step, also score the selector's greedy draw and TAD's hand-set selection on the "
            "step's questions (2·Q more answers): the learning curve's comparison."
        },
    )
    save_steps: int = field(default=10, metadata={"help": "Write checkpoint.pt and selector.json every N steps."})
    seed: int = field(default=0, metadata={"help": "Seed of the question order and the draws."})
    protocol: str = field(
        default="reasoning", metadata={"help": "How answers are prompted and scored (`kfgrpo eval`)."}
    )
    max_new_tokens: int = field(default=72, metadata={"help": "Greedy decoding budget per answer."})
    batch_size: int = field(default=32, metadata={"help": "Answers per generate call."})
    video_cache: int = field(
        default=512, metadata={"help": "Videos whose candidates stay decoded in memory (least recently used dropped)."}
    )
    limit: int | None = field(default=None, metadata={"help": "Use only the first N questions of the manifest."})
    video_root: str | None = field(default=None, metadata={"help": "Where the manifest's videos are (its folder)."})
    allow_outside_root: bool = field(
        default=False, metadata={"help": "Let the manifest name videos outside its folder (or --video_root)."}
    )

    def __post_init__(self):
        if not self.num_frames or min(self.num_frames) < 1:
            raise ValueError("num_frames must list keyframe budgets >= 1")
        if self.samples_per_question < 2:
            raise ValueError("samples_per_question must be >= 2: the group's mean is the baseline")
        if self.max_steps < 1 or self.questions_per_step < 1 or self.save_steps < 1:
            raise ValueError("max_steps, questions_per_step and save_steps must be >= 1")


class Candidates:
    """One video's TAD candidates at one K: features φ, timestamps, RGB frames at the output size, and the positions
    TAD's hand-set stage 3 picks (``distill``)."""

    def __init__(self, phi, timestamps, frames, distill):
        self.phi = torch.as_tensor(phi)
        self.timestamps = [float(t) for t in timestamps]
        self.frames, self.distill = frames, [int(p) for p in distill]

    @classmethod
    def from_curve(cls, curve, frames, k: int, cfg: TADConfig) -> Candidates:
        from .tad.select import _pick

        distill = _pick(curve, k, "tad", None, replace(cfg, selector_weights=None))[0]
        return cls(candidate_features(curve, cfg.variation_log_scale), curve.timestamps, frames, distill)

    @classmethod
    def decode(cls, video: str, k: int, cfg: TADConfig) -> Candidates:
        from .tad.select import decode_and_score, rgb_frames

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a short video is still a training example: every candidate is kept
            held, curve, info, _ = decode_and_score(video, k, cfg)
        return cls.from_curve(curve, rgb_frames(held, info, cfg), k, cfg)


class _VideoCache:
    def __init__(self, cfg: TADConfig, size: int, errors_path: Path):
        self.cfg, self.size, self.errors_path = cfg, size, errors_path
        self.items: OrderedDict = OrderedDict()
        self.bad: dict[str, str] = {}
        if errors_path.exists():
            for line in errors_path.read_text().splitlines():
                rec = json.loads(line)
                self.bad[rec["video"]] = rec["reason"]

    def get(self, video: str, k: int) -> Candidates | None:
        if video in self.bad:
            return None
        key = (video, k)
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        try:
            item = Candidates.decode(video, k, self.cfg)
        except (VideoError, FileNotFoundError) as exc:
            self.bad[video] = str(exc)
            with open(self.errors_path, "a") as fh:
                fh.write(json.dumps({"video": video, "reason": str(exc)}) + "\n")
            print(f"kfgrpo tad-learn: skipped {video}: {exc}")
            return None
        self.items[key] = item
        while len(self.items) > self.size:
            self.items.popitem(last=False)
        return item


def _answer_all(backend, requests: list[tuple], prompt_args, protocol) -> dict:
    """Scores of unique (row, frame positions) requests: ``{(row id, positions): score}``."""
    from .eval.run import _conversation

    unique = {}
    for row, cand, positions in requests:
        unique.setdefault((row["id"], tuple(positions)), (row, cand, positions))
    keys = list(unique)
    conversations = []
    for key in keys:
        row, cand, positions = unique[key]
        frames = [cand.frames[p] for p in positions]
        conversations.append(
            _conversation(row, frames, [cand.timestamps[p] for p in positions], prompt_args, protocol)
        )
    predictions = backend.generate(conversations) if conversations else []
    return {key: protocol.verdict(pred, unique[key][0]).score for key, pred in zip(keys, predictions)}


def _checkpoint_path(args: TADLearnArgs) -> Path:
    return Path(args.output_dir) / "checkpoint.pt"


def _save(args, selector, optimizer, step, rng, generator, path: Path | None = None):
    state = {
        "step": step,
        "selector": selector.state_dict(),
        "optimizer": optimizer.state_dict(),
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": generator.get_state(),
        "args": asdict(args),
    }
    path = path or _checkpoint_path(args)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a checkpoint is whole or absent, never half written
    selector.save(Path(args.output_dir) / "selector.json")


def write_tad_yaml(args: TADLearnArgs, cfg: TADConfig) -> Path:
    """``tad.yaml``: the fields of ``cfg`` that differ from the defaults, and ``selector_weights``."""
    import yaml

    default = TADConfig()
    changed = {f.name: getattr(cfg, f.name) for f in fields(cfg) if getattr(cfg, f.name) != getattr(default, f.name)}
    changed["selector_weights"] = str(Path(args.output_dir) / "selector.json")
    path = Path(args.output_dir) / "tad.yaml"
    header = (
        "# TAD with a learned stage 3, written by `kfgrpo tad-learn` (see kfgrpo.tad.learned).\n"
        f"#   kfgrpo tad --config {path} --manifest ... --output ... --num-frames K\n"
        "# selector_weights is read from the current directory when relative.\n"
    )
    path.write_text(header + yaml.safe_dump(changed, sort_keys=True))
    return path


def learn(
    args: TADLearnArgs,
    cfg: TADConfig | None = None,
    prompt_args=None,
    model_args=None,
    backend=None,
    progress: bool = True,
    stop_after: int | None = None,
    candidates=None,
) -> dict:
    """Trains the selector; returns a summary. ``backend`` (an object with ``generate(conversations) -> texts``)
    replaces the model and ``candidates`` (``(video, k) -> Candidates | None``) the decoding, for tests;
    ``stop_after`` ends the run after that many steps of this call (an interruption)."""
    from tqdm.auto import tqdm

    from .data_utils import PromptArguments
    from .eval.benchmarks import read_benchmark
    from .eval.protocols import get_protocol

    cfg = cfg or TADConfig()
    if cfg.selector_weights:
        raise ValueError("tad-learn starts from the hand-set TAD config; remove `selector_weights` from it")
    prompt_args = prompt_args or PromptArguments()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    invalid: list[dict] = []
    rows = read_benchmark("canonical", args.manifest, args.video_root, invalid, args.allow_outside_root)
    if args.limit is not None:
        rows = rows[: args.limit]
    for bad in invalid:
        print(f"kfgrpo tad-learn: skipped manifest line {bad.get('line')}: {bad.get('reason')}")
    if not rows:
        raise ValueError(f"{args.manifest}: no usable questions")
    protocol = get_protocol(args.protocol, "canonical")
    if backend is None:
        from .eval.run import EvalModelConfig, _HFBackend

        model_args = model_args or EvalModelConfig()
        model_args.model_name_or_path = args.model
        backend = _HFBackend(args, model_args)

    selector = LearnedSelector(
        {"saliency": args.init_saliency_weight}, args.init_repulsion, args.init_width, args.temperature, cfg.min_gap
    )
    optimizer = torch.optim.Adam(selector.parameters(), lr=args.learning_rate)
    rng = np.random.default_rng(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    step = 0
    ckpt = _checkpoint_path(args)
    log_path = out / "log.jsonl"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        selector.load_state_dict(state["selector"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["numpy_rng"]
        generator.set_state(state["torch_rng"])
        step = state["step"]
        if log_path.exists():  # steps logged after the checkpoint are redone: drop them
            kept = [ln for ln in log_path.read_text().splitlines() if json.loads(ln)["step"] <= step]
            log_path.write_text("".join(ln + "\n" for ln in kept))
        print(f"kfgrpo tad-learn: resuming from {ckpt} at step {step}")
    elif log_path.exists():
        log_path.unlink()
    videos = _VideoCache(cfg, args.video_cache, out / "errors.jsonl")
    get_candidates = candidates or videos.get
    ks = list(args.num_frames)
    done_now = 0
    with tqdm(total=args.max_steps, initial=step, disable=not progress, desc="tad-learn") as bar:
        while step < args.max_steps and (stop_after is None or done_now < stop_after):
            k = ks[step % len(ks)]
            picked = rng.choice(len(rows), size=min(args.questions_per_step, len(rows)), replace=False)
            groups, requests = [], []
            for i in picked:
                row = rows[int(i)]
                cand = get_candidates(row["video"], k)
                if cand is None:
                    continue
                draws = [selector.draw(cand.phi, k, generator) for _ in range(args.samples_per_question)]
                groups.append((row, cand, draws))
                requests += [(row, cand, sorted(d)) for d in draws]
                if args.log_baselines:
                    requests.append((row, cand, list(selector.select(cand.phi, k))))
                    requests.append((row, cand, cand.distill))
            scores = _answer_all(backend, requests, prompt_args, protocol)
            loss = torch.zeros(())
            rewards, greedy, distill, spread = [], [], [], 0
            for row, cand, draws in groups:
                r = torch.tensor([scores[(row["id"], tuple(sorted(d)))] for d in draws])
                adv = r - r.mean()
                spread += int(adv.abs().max() > 0)
                for a, d in zip(adv, draws):
                    if a != 0:
                        loss = loss - a * selector.log_prob(cand.phi, d)
                rewards += r.tolist()
                if args.log_baselines:
                    greedy.append(scores[(row["id"], tuple(selector.select(cand.phi, k)))])
                    distill.append(scores[(row["id"], tuple(cand.distill))])
            if loss.requires_grad:  # no group with a spread of scores: nothing to learn from this step
                optimizer.zero_grad()
                (loss / (len(groups) * args.samples_per_question)).backward()
                optimizer.step()
            step += 1
            done_now += 1
            rec = {"step": step, "num_frames": k, "questions": len(groups), "reward": float(np.mean(rewards or [0]))}
            rec["groups_with_spread"] = spread
            if args.log_baselines and groups:
                rec["greedy_reward"], rec["distill_reward"] = float(np.mean(greedy)), float(np.mean(distill))
            state = selector.state()
            rec.update({f"w/{f}": w for f, w in state["weights"].items()})
            rec.update(repulsion=state["repulsion"], width=state["width"])
            with open(log_path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            bar.set_postfix(reward=f"{rec['reward']:.3f}")
            bar.update(1)
            if step % args.save_steps == 0 or step == args.max_steps:
                _save(args, selector, optimizer, step, rng, generator)
    history = [json.loads(ln) for ln in log_path.read_text().splitlines()] if log_path.exists() else []
    summary = {"steps": step, "finished": step >= args.max_steps, "skipped_videos": len(videos.bad)}
    if step >= args.max_steps:
        summary["selector"] = str(out / "selector.json")
        summary["tad_yaml"] = str(write_tad_yaml(args, cfg))
        if history:
            summary["learning_curve"] = str(plot_tad_learn_curve(history, out / "learning_curve.png"))
    return summary


def plot_tad_learn_curve(history: list[dict], output, smooth: int = 10) -> Path:
    """Reward per step (sampled sets, the greedy draw, TAD's hand-set selection) and the parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .learning_curve import _running_mean

    steps = [h["step"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for key, label, colour in (
        ("reward", "sampled frame sets", "tab:blue"),
        ("greedy_reward", "learned (greedy draw: what is cached)", "tab:green"),
        ("distill_reward", "TAD hand-set selection", "tab:red"),
    ):
        pts = [(h["step"], h[key]) for h in history if key in h]
        if not pts:
            continue
        xs, ys = zip(*pts)
        ax1.plot(xs, ys, color=colour, alpha=0.2)
        ax1.plot(xs, _running_mean(list(ys), smooth), color=colour, label=f"{label} (mean of {smooth})")
    ax1.set(xlabel="step", ylabel="frozen model's score", title="Answers from the frames each selector picks")
    ax1.grid(alpha=0.3)
    ax1.legend(loc="best", fontsize=8)
    for key in [k for k in history[-1] if k.startswith("w/")]:
        ax2.plot(steps, [h[key] for h in history], label=key.removeprefix("w/"))
    for key, colour in (("repulsion", "black"), ("width", "grey")):  # the policy's two, apart from the weights
        ax2.plot(
            steps,
            [h[key] for h in history],
            label=f"{key} (β)" if key == "repulsion" else f"{key} (ℓ)",
            color=colour,
            linestyle="--",
        )
    ax2.set(xlabel="step", ylabel="value", title="Selector parameters")
    ax2.grid(alpha=0.3)
    ax2.legend(loc="best", fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return Path(output)


def cli(argv: list[str] | None = None) -> int:
    from .cli import _parse
    from .data_utils import PromptArguments
    from .errors import check_model_path
    from .eval.run import EvalModelConfig

    args, cfg, prompt_args, model_args = _parse(
        (TADLearnArgs, TADConfig, PromptArguments, EvalModelConfig), argv, "kfgrpo tad-learn"
    )
    check_model_path(args.model)
    summary = learn(args, cfg, prompt_args, model_args)
    if summary.get("tad_yaml"):
        print(
            f"{summary['steps']} steps; selector {summary['selector']}; use it with "
            f"`kfgrpo tad --config {summary['tad_yaml']}`; curve {summary.get('learning_curve')}"
        )
    if summary["skipped_videos"]:
        print(f"{summary['skipped_videos']} unusable video(s) skipped: {Path(args.output_dir) / 'errors.jsonl'}")
    return 0
