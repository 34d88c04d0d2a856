"""``kfgrpo tad-learn``: train TAD's learned stage 3 (:mod:`kfgrpo.tad.learned.selector`) from a frozen model's
answers.

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

from ...files import append_lines, read_jsonl, write_atomic
from ...video import VideoError
from ..config import TADConfig
from .selector import LearnedSelector, candidate_features


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
    visual_input: str = field(
        default="auto",
        metadata={
            "help": "How the frozen model sees a frame set: `images`, `video` or `auto` (`kfgrpo eval --visual_input`:"
            " the mode the model was trained with, else by protocol)."
        },
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
        from ..select import pick_positions

        distill = pick_positions(curve, k, "tad", None, replace(cfg, selector_weights=None))[0]
        return cls(candidate_features(curve, cfg.variation_log_scale), curve.timestamps, frames, distill)

    @classmethod
    def decode(cls, video: str, k: int, cfg: TADConfig) -> Candidates:
        from ..select import decode_and_score, rgb_frames

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a short video is still a training example: every candidate is kept
            held, curve, info, _ = decode_and_score(video, k, cfg)
        return cls.from_curve(curve, rgb_frames(held, info, cfg), k, cfg)


class VideoCache:
    """Decoded candidates of the most recently used videos; an unusable video is reported once (``errors.jsonl``) and
    skipped from then on, across resumed runs too."""

    def __init__(self, cfg: TADConfig, size: int, errors_path: Path):
        self.cfg, self.size, self.errors_path = cfg, size, errors_path
        self.items: OrderedDict = OrderedDict()
        self.bad: dict[str, str] = {}
        for rec in read_jsonl(errors_path, repair=True):
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
            append_lines(self.errors_path, [json.dumps({"video": video, "reason": str(exc)})])
            print(f"kfgrpo tad-learn: skipped {video}: {exc}")
            return None
        self.items[key] = item
        while len(self.items) > self.size:
            self.items.popitem(last=False)
        return item


def answer_all(backend, requests: list[tuple], prompt_args, protocol, visual_input: str = "images") -> dict:
    """Scores of unique (row, frame positions) requests: ``{(row id, positions): score}``."""
    from ...eval.run import build_conversation

    unique = {}
    for row, cand, positions in requests:
        unique.setdefault((row["id"], tuple(positions)), (row, cand, positions))
    keys = list(unique)
    conversations = []
    for key in keys:
        row, cand, positions = unique[key]
        frames = [cand.frames[p] for p in positions]
        conversations.append(
            build_conversation(
                row, frames, [cand.timestamps[p] for p in positions], prompt_args, protocol, visual_input=visual_input
            )
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
    write_atomic(path, header + yaml.safe_dump(changed, sort_keys=True))
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

    from ...data_utils import PromptArguments
    from ...eval.protocols import get_protocol

    cfg = cfg or TADConfig()
    if cfg.selector_weights:
        raise ValueError("tad-learn starts from the hand-set TAD config; remove `selector_weights` from it")
    prompt_args = prompt_args or PromptArguments()
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = _read_questions(args)
    protocol = get_protocol(args.protocol, "canonical")
    from ...eval.run import EvalModelConfig, resolve_visual_input

    model_args = model_args or EvalModelConfig()
    model_args.model_name_or_path = args.model
    visual_input = resolve_visual_input(args, prompt_args, model_args)
    if backend is None:
        from ...eval.run import HFBackend

        backend = HFBackend(args, model_args)
    run = _Run(args, cfg)
    log_path = out / "log.jsonl"
    step = run.resume(log_path)
    videos = VideoCache(cfg, args.video_cache, out / "errors.jsonl")
    get_candidates = candidates or videos.get
    done_now = 0
    with tqdm(total=args.max_steps, initial=step, disable=not progress, desc="tad-learn") as bar:
        while step < args.max_steps and (stop_after is None or done_now < stop_after):
            k = args.num_frames[step % len(args.num_frames)]
            picked = run.rng.choice(len(rows), size=min(args.questions_per_step, len(rows)), replace=False)
            questions = [rows[int(i)] for i in picked]
            rec = run.step(
                questions, k, get_candidates, lambda req: answer_all(backend, req, prompt_args, protocol, visual_input)
            )
            step += 1
            done_now += 1
            append_lines(log_path, [json.dumps(dict(step=step, **rec))])
            bar.set_postfix(reward=f"{rec['reward']:.3f}")
            bar.update(1)
            if step % args.save_steps == 0 or step == args.max_steps:
                run.save(step)
    history = read_jsonl(log_path)
    summary = {"steps": step, "finished": step >= args.max_steps, "skipped_videos": len(videos.bad)}
    if step >= args.max_steps:
        summary["selector"] = str(out / "selector.json")
        summary["tad_yaml"] = str(write_tad_yaml(args, cfg))
        if history:
            summary["learning_curve"] = str(plot_tad_learn_curve(history, out / "learning_curve.png"))
    return summary


def _read_questions(args: TADLearnArgs) -> list[dict]:
    """The manifest's usable questions (``--limit`` applied); malformed lines are reported and skipped."""
    from ...eval.benchmarks import read_benchmark

    invalid: list[dict] = []
    rows = read_benchmark("canonical", args.manifest, args.video_root, invalid, args.allow_outside_root)
    if args.limit is not None:
        rows = rows[: args.limit]
    for bad in invalid:
        print(f"kfgrpo tad-learn: skipped manifest line {bad.get('line')}: {bad.get('reason')}")
    if not rows:
        raise ValueError(f"{args.manifest}: no usable questions")
    return rows


class _Run:
    """The state of one training run: the selector, its optimizer and the random streams, saved and resumed whole."""

    def __init__(self, args: TADLearnArgs, cfg: TADConfig):
        self.args = args
        self.selector = LearnedSelector(
            {"saliency": args.init_saliency_weight},
            args.init_repulsion,
            args.init_width,
            args.temperature,
            cfg.min_gap,
        )
        self.optimizer = torch.optim.Adam(self.selector.parameters(), lr=args.learning_rate)
        self.rng = np.random.default_rng(args.seed)
        self.generator = torch.Generator().manual_seed(args.seed)

    def resume(self, log_path: Path) -> int:
        """Loads ``checkpoint.pt`` when there is one and drops the log lines written after it; the step to go on from."""
        ckpt = _checkpoint_path(self.args)
        if not ckpt.exists():
            log_path.unlink(missing_ok=True)
            return 0
        state = torch.load(ckpt, weights_only=False)
        self.selector.load_state_dict(state["selector"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.generator.set_state(state["torch_rng"])
        step = state["step"]
        kept = [rec for rec in read_jsonl(log_path) if rec["step"] <= step]  # later steps are redone
        write_atomic(log_path, "".join(json.dumps(rec) + "\n" for rec in kept))
        print(f"kfgrpo tad-learn: resuming from {ckpt} at step {step}")
        return step

    def save(self, step: int) -> None:
        _save(self.args, self.selector, self.optimizer, step, self.rng, self.generator)

    def step(self, questions: list[dict], k: int, get_candidates, answer) -> dict:
        """One optimizer step on ``questions`` at budget ``k``; the step's log record (without its number)."""
        args, selector = self.args, self.selector
        groups, requests = [], []
        for row in questions:
            cand = get_candidates(row["video"], k)
            if cand is None:
                continue
            draws = [selector.draw(cand.phi, k, self.generator) for _ in range(args.samples_per_question)]
            groups.append((row, cand, draws))
            requests += [(row, cand, sorted(d)) for d in draws]
            if args.log_baselines:
                requests.append((row, cand, list(selector.select(cand.phi, k))))
                requests.append((row, cand, cand.distill))
        scores = answer(requests)
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
            self.optimizer.zero_grad()
            (loss / (len(groups) * args.samples_per_question)).backward()
            self.optimizer.step()
        rec = {"num_frames": k, "questions": len(groups), "reward": float(np.mean(rewards or [0]))}
        rec["groups_with_spread"] = spread
        if args.log_baselines and groups:
            rec["greedy_reward"], rec["distill_reward"] = float(np.mean(greedy)), float(np.mean(distill))
        state = selector.state()
        rec.update({f"w/{f}": w for f, w in state["weights"].items()})
        rec.update(repulsion=state["repulsion"], width=state["width"])
        return rec


def plot_tad_learn_curve(history: list[dict], output, smooth: int = 10) -> Path:
    """Reward per step (sampled sets, the greedy draw, TAD's hand-set selection) and the parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...learning_curve import running_mean

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
        ax1.plot(xs, running_mean(list(ys), smooth), color=colour, label=f"{label} (mean of {smooth})")
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
    """``kfgrpo tad-learn``: parses its arguments (TrlParser, one-line mistakes) and runs ``learn``."""
    from ...data_utils import PromptArguments
    from ...errors import check_model_path, make_parser, parse_args
    from ...eval.run import EvalModelConfig

    parser = make_parser((TADLearnArgs, TADConfig, PromptArguments, EvalModelConfig), "kfgrpo tad-learn")
    args, cfg, prompt_args, model_args = parse_args(parser, argv)
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
