"""``kfgrpo eval``: a model on a benchmark, with TAD or uniform frames, deterministic, with every setting written down.

Writes ``OUTPUT/results.json`` (accuracy, ``chance`` — the expected accuracy of random answers on the questions —
per-category breakdowns, ``frame_sensitivity`` = accuracy minus ``accuracy_shuffled`` with ``--probe shuffle``, the
model, frames, K, TAD config, the exact prompt template and decoding) and ``OUTPUT/predictions.jsonl`` (one line per
question: id, raw prediction, parsed answer, score, correct, the timestamps used; or the reason its video could not
be read). ``--protocol`` fixes the prompt, token budget, answer extraction and aggregation (``kfgrpo.eval.protocols``:
``reasoning``, ``lmms-eval``, ``lmms-eval-classic``, ``video-r1``); results.json records it with ``no_answer_rate``, the
share of outputs with no parsable answer. Questions stream through in batches of ``batch_size``, each appended to ``predictions.jsonl`` as it is
scored: memory is bounded by a batch, and a rerun on the same output resumes where an interrupted run stopped
(``eval_state.json`` holds the settings' fingerprint; other settings on the same output are refused). Decoding is greedy. A question's
score is the accuracy reward for its problem type (0/1 for multiple choice and numbers; IoU / ROUGE otherwise);
``accuracy`` is the mean score over the questions whose video could be read, ``accuracy_all`` counts unreadable
videos as wrong. Unreadable videos are reported (``unreadable``), never fatal.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..data_utils import PromptArguments, format_prompt
from ..errors import UserError
from ..files import append_lines, read_jsonl, write_atomic, write_json
from ..model_utils import KFModelConfig
from ..probes import perturb, probe_prompt, probe_rng
from ..rewards.accuracy import score_answer
from ..tad import TADConfig, select_keyframes
from ..video import VideoError
from ..visual_input import VISUAL_INPUTS, has_video, process_prompts, to_video_prompt, vllm_video_request
from .benchmarks import BENCHMARKS, read_benchmark
from .protocols import DEFAULT_MAX_NEW_TOKENS, PROTOCOLS, get_protocol


@dataclass
class EvalArgs:
    model: str = field(metadata={"help": "Model folder or Hub id (AutoModelForImageTextToText)."})
    benchmark: str = field(metadata={"help": f"One of {BENCHMARKS}."})
    data: str = field(metadata={"help": "Benchmark location in its public layout (see kfgrpo.eval.benchmarks)."})
    output: str = field(metadata={"help": "Folder for results.json and predictions.jsonl."})
    frames: str = field(default="tad", metadata={"help": "Frame selection: tad or uniform."})
    num_frames: int = field(default=16, metadata={"help": "Frames per question (K)."})
    video_root: str | None = field(default=None, metadata={"help": "Override where the benchmark's videos are."})
    probe: str | None = field(
        default=None,
        metadata={
            "help": "`shuffle`: also answer on shuffled frames and report frame sensitivity (accuracy minus "
            "accuracy_shuffled). `blind`: also answer with no frame at all (the question alone) and report "
            "accuracy_blind and blind_gap (accuracy minus accuracy_blind): what the text alone answers."
        },
    )
    backend: str = field(default="hf", metadata={"help": "hf (transformers generate) or vllm."})
    visual_input: str = field(
        default="auto",
        metadata={
            "help": "How the frames reach the model: `images`, `video` (one video with the frames' times; Qwen-VL "
            "models) or `auto`: the mode the model was trained with (`kfgrpo_visual_input` in its "
            "config.json, written by `kfgrpo train`); for a model kfgrpo did not train, `video` under the protocols that "
            "reproduce another evaluation (lmms-eval, lmms-eval-classic, video-r1 give Qwen-VL models a video) and "
            "`images` under `reasoning`."
        },
    )
    limit: int | None = field(default=None, metadata={"help": "Evaluate only the first N questions."})
    protocol: str = field(
        default="reasoning",
        metadata={
            "help": f"One of {PROTOCOLS}: the prompt, token budget, answer extraction and aggregation. `reasoning` is "
            "kfgrpo's (compare kfgrpo runs); `lmms-eval` / `lmms-eval-classic` reproduce lmms-eval's direct-answer "
            "protocol (compare with published Video-MME / LVBench / MVBench numbers); `video-r1` reproduces Video-R1's "
            "eval_bench.py (compare with Video-R1 and its followers)."
        },
    )
    max_new_tokens: int | None = field(
        default=None,
        metadata={"help": f"Greedy decoding budget per answer; default: the protocol's ({DEFAULT_MAX_NEW_TOKENS})."},
    )
    batch_size: int = field(default=4, metadata={"help": "Questions per generate call (hf backend)."})
    seed: int = field(default=0, metadata={"help": "Seed of the shuffle probe."})
    results_file: str = field(
        default="results.json",
        metadata={"help": "Name of the results file written in `output` (`make train`: eval.json)."},
    )
    allow_outside_root: bool = field(
        default=False,
        metadata={
            "help": "Let a manifest name videos outside its folder (or --video_root): `..` and absolute paths "
            "elsewhere are refused by default, reported as invalid rows."
        },
    )

    def __post_init__(self):
        if self.benchmark not in BENCHMARKS:
            raise ValueError(f"--benchmark must be one of {BENCHMARKS}")
        if self.frames not in ("tad", "uniform"):
            raise ValueError("--frames must be tad or uniform")
        if self.probe not in (None, "shuffle", "blind"):
            raise ValueError("--probe must be shuffle or blind")
        if self.backend not in ("hf", "vllm"):
            raise ValueError("--backend must be hf or vllm")
        if self.visual_input not in ("auto", *VISUAL_INPUTS):
            raise ValueError(f"--visual_input must be auto, {' or '.join(VISUAL_INPUTS)}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"--protocol must be one of {PROTOCOLS}")
        if self.max_new_tokens is None:
            self.max_new_tokens = DEFAULT_MAX_NEW_TOKENS[self.protocol]


@dataclass
class EvalModelConfig(KFModelConfig):
    """How ``kfgrpo eval`` loads the model: the fields ``kfgrpo train`` and ``kfgrpo sft`` take (``model_revision``,
    ``dtype``, ``attn_implementation``, ``load_in_4bit`` / ``load_in_8bit``, ...); ``--model`` names it."""

    dtype: str | None = field(
        default="auto",
        metadata={
            "help": "Model dtype: auto (the checkpoint's), bfloat16, float16 or float32.",
            "choices": ["auto", "bfloat16", "float16", "float32"],
        },
    )


class HFBackend:
    """Greedy answers from a transformers model, ``batch_size`` conversations per ``generate`` call (also the frozen
    model of ``kfgrpo tad-learn``)."""

    def __init__(self, args: EvalArgs, model_args: EvalModelConfig):
        import torch

        from ..model_utils import load_model, load_processor

        self.torch = torch
        self.model = load_model(model_args)
        if torch.cuda.is_available():
            self.model = self.model.to("cuda")
        self.processor = load_processor(model_args)
        self.args = args

    def generate(self, conversations: list[list[dict]]) -> list[str]:
        out = []
        for i in range(0, len(conversations), self.args.batch_size):
            batch = conversations[i : i + self.args.batch_size]
            if any(has_video(c) for c in batch):  # the frames as one video, with their times (kfgrpo.visual_input)
                inputs = process_prompts(self.processor, batch)
            else:
                inputs = self.processor.apply_chat_template(
                    batch,
                    tokenize=True,
                    return_dict=True,
                    add_generation_prompt=True,
                    return_tensors="pt",
                    processor_kwargs={"padding": True},  # transformers 5: the processor's own arguments go here
                )
            inputs = inputs.to(self.model.device)
            with self.torch.inference_mode():
                ids = self.model.generate(**inputs, max_new_tokens=self.args.max_new_tokens, do_sample=False)
            out += self.processor.batch_decode(ids[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return out


class _VLLMBackend:
    def __init__(self, args: EvalArgs, model_args: EvalModelConfig):
        from transformers import AutoProcessor

        from ..vllm_utils import require_vllm

        require_vllm("--backend vllm")
        from vllm import LLM, SamplingParams

        revision = model_args.model_revision
        self.processor = AutoProcessor.from_pretrained(args.model, revision=revision)
        self.video = args.visual_input == "video"
        self.llm = LLM(
            model=args.model,
            revision=revision,
            dtype=model_args.dtype or "auto",
            limit_mm_per_prompt={"image": 0, "video": 1} if self.video else {"image": args.num_frames, "video": 0},
            seed=args.seed,
        )
        self.params = SamplingParams(temperature=0.0, max_tokens=args.max_new_tokens)

    def generate(self, conversations):
        requests = []
        for conv in conversations:
            text = self.processor.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
            if has_video(conv):  # the frames as one video with their times, as the trainer's vLLM requests
                requests.append(vllm_video_request(self.processor, conv, text))
                continue
            images = conversation_images(conv)  # none for the blind probe: a text-only request
            requests.append({"prompt": text, **({"multi_modal_data": {"image": images}} if images else {})})
        return [o.outputs[0].text for o in self.llm.generate(requests, self.params, use_tqdm=False)]


def conversation_images(conversation) -> list:
    """The frames of a conversation, in order (the image parts of its messages)."""
    return [
        part["image"]
        for message in conversation
        if isinstance(message["content"], list)
        for part in message["content"]
        if part.get("type") == "image"
    ]


def build_conversation(row, frames, timestamps, prompt_args, protocol=None, visual_input="images"):
    """The messages of one question with ``frames`` (the probes' path: ``kfgrpo.probes.probe_prompt``): kfgrpo's
    prompt, or the protocol's own user text after the frames, with no system message. ``visual_input: video``: the
    frames as one video part at ``timestamps`` (``kfgrpo.visual_input.to_video_prompt``, the trainer's path)."""
    text = protocol.user_text(row) if protocol is not None else None
    if text is None:
        prompt = format_prompt(dict(row, timestamps=timestamps), prompt_args)
    else:
        prompt = [{"role": "user", "content": text}]
    if visual_input == "video":
        return to_video_prompt(prompt, frames, timestamps)
    return probe_prompt(prompt, frames)


def resolve_visual_input(args: EvalArgs, prompt_args: PromptArguments, model_args: EvalModelConfig) -> str:
    """``--visual_input`` with ``auto`` resolved (see its help); a video mode that cannot run is refused in one line."""
    from ..errors import UserError
    from ..visual_input import VIDEO_MODEL_TYPES, check_video_model

    model_type, trained = None, None
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(args.model, revision=model_args.model_revision)
        model_type, trained = config.model_type, getattr(config, "kfgrpo_visual_input", None)
    except (OSError, ValueError, KeyError):
        pass  # left to the model loading to report
    mode = args.visual_input
    if mode == "auto":
        if trained in VISUAL_INPUTS:
            mode = trained
        elif args.protocol != "reasoning" and model_type in VIDEO_MODEL_TYPES:
            mode = "video"
        else:
            mode = "images"
    if mode == "video":
        if model_type is not None:
            check_video_model(model_type)
        if getattr(prompt_args, "frame_template", ""):
            raise UserError("--visual_input video takes no frame_template (a video has no text between its frames)")
    return mode


def _breakdown(records, key="score"):
    out = defaultdict(lambda: defaultdict(list))
    for r in records:
        for name, value in r["categories"].items():
            for v in value if isinstance(value, list) else [value]:
                out[name][str(v)].append(r[key])
    return {
        name: {v: dict(n=len(s), accuracy=sum(s) / len(s)) for v, s in sorted(vals.items())}
        for name, vals in out.items()
    }


def category_table(results: dict) -> str:
    """The per-category accuracy of ``results`` as a plain-text table (what lmms-eval prints at the end of a run)."""
    shuffled = results.get("per_category_shuffled", {})
    lines = []
    for name, values in results.get("per_category", {}).items():
        width = max([len(name), *(len(v) for v in values)])
        head = f"{name:<{width}}  {'n':>5}  {'accuracy':>8}" + (f"  {'shuffled':>8}" if shuffled else "")
        lines += [head, "-" * len(head)]
        for value, stats in values.items():
            row = f"{value:<{width}}  {stats['n']:>5}  {stats['accuracy']:>8.4f}"
            if shuffled:
                row += f"  {shuffled.get(name, {}).get(value, {}).get('accuracy', float('nan')):>8.4f}"
            lines.append(row)
        lines.append("")
    return "\n".join(lines).rstrip()


def chance_accuracy(rows: list[dict]) -> float:
    """Expected accuracy of random answers on ``rows``: a uniformly random option for questions with options;
    otherwise a uniformly random pick among the distinct answers of the split for that problem type (numbers, spans,
    free text), scored with the same accuracy function as the model."""
    if not rows:
        return 0.0
    answers = defaultdict(set)
    for r in rows:
        if not r.get("options"):
            answers[r["problem_type"]].add(str(r["solution"]))
    total = 0.0
    for r in rows:
        if r.get("options"):
            total += 1.0 / len(r["options"])
        else:
            pool = sorted(answers[r["problem_type"]])
            scores = [score_answer(f"<answer>{a}</answer>", r["solution"], r["problem_type"]) or 0.0 for a in pool]
            total += sum(scores) / len(scores)
    return total / len(rows)


def evaluate(
    args: EvalArgs,
    prompt_args: PromptArguments | None = None,
    tad_config: TADConfig | None = None,
    progress: bool = True,
    model_args: EvalModelConfig | None = None,
) -> dict:
    """Streams the benchmark batch by batch (select frames → generate → score → append to predictions.jsonl), so
    memory is bounded by one batch; a rerun on the same ``output`` resumes after the last question written."""
    from tqdm.auto import tqdm

    prompt_args = prompt_args or PromptArguments()
    cfg = tad_config or TADConfig()
    model_args = model_args or EvalModelConfig()
    model_args.model_name_or_path = args.model
    start = time.perf_counter()
    invalid: list[dict] = []  # malformed manifest lines, reported and skipped
    rows = read_benchmark(args.benchmark, args.data, args.video_root, invalid, args.allow_outside_root)
    if args.limit is not None:
        rows = rows[: args.limit]
    protocol = get_protocol(args.protocol, args.benchmark)
    protocol.check(rows)
    args.visual_input = resolve_visual_input(
        args, prompt_args, model_args
    )  # before the fingerprint: a mode change reruns
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "predictions.jsonl"
    done = _resume(path, out / "eval_state.json", _fingerprint(args, prompt_args, cfg, model_args))
    todo = [r for r in rows if r["id"] not in done]
    if progress and len(todo) < len(rows):
        print(
            f"kfgrpo eval: {len(rows) - len(todo)} finished prediction(s) reused from {path}, {len(todo)} to compute"
        )
    backend = ((HFBackend if args.backend == "hf" else _VLLMBackend)(args, model_args)) if todo else None
    step, last_video = max(1, args.batch_size), {}
    with tqdm(total=len(rows), initial=len(rows) - len(todo), disable=not progress) as bar:
        for i in range(0, len(todo), step):
            prepared, unreadable = _select_frames(todo[i : i + step], args, cfg, last_video)
            conversations = [
                build_conversation(r, s.frames, s.timestamps, prompt_args, protocol, visual_input=args.visual_input)
                for r, s in prepared
            ]
            predictions = backend.generate(conversations) if conversations else []
            probe_predictions = None
            if args.probe and prepared:
                probe_predictions = backend.generate(_probed(prepared, args, prompt_args, protocol))
            records = _score(prepared, predictions, probe_predictions, protocol) + unreadable
            append_lines(path, [json.dumps(rec) for rec in records])  # whole lines: a kill tears the last at most
            done.update((rec["id"], rec) for rec in records)
            bar.update(len(todo[i : i + step]))
    records = [done[r["id"]] for r in rows if r["id"] in done]
    scored = [r for r in records if "unreadable" not in r]
    unreadable = [dict(id=r["id"], video=r["video"], reason=r["unreadable"]) for r in records if "unreadable" in r]
    ok = {r["id"] for r in scored}
    results = _results(
        args, prompt_args, cfg, rows, [r for r in rows if r["id"] in ok], scored, unreadable, start, protocol
    )
    results["num_invalid"], results["invalid"] = len(invalid), invalid
    results["model_loading"] = {k: v for k, v in asdict(model_args).items() if not k.startswith(("lora", "use_"))}
    write_json(out / args.results_file, results, indent=2)
    return results


def _fingerprint(args: EvalArgs, prompt_args: PromptArguments, cfg: TADConfig, model_args=None) -> str:
    """What makes a prediction: everything but where it goes, how many questions and the batching."""
    import hashlib

    skip = ("output", "limit", "batch_size", "results_file", "allow_outside_root")
    keep = {k: v for k, v in asdict(args).items() if k not in skip}
    blob = json.dumps(
        dict(
            args=keep,
            prompt=prompt_args.prompt_spec(),
            tad=cfg.to_dict(),
            selector=cfg.selector(),  # a learned selector rewritten under the same path selects other frames
            weights=_model_identity(args.model),
            loading=asdict(model_args) if model_args is not None else None,
        ),
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _model_identity(model: str) -> list:
    """A local model folder's weight and config files (name, size, mtime): a model retrained into the same folder
    makes other predictions, which must not be resumed. A Hub id stands for itself."""
    folder = Path(model)
    if not folder.is_dir():
        return []
    files = [
        f
        for f in sorted(folder.iterdir())
        if f.is_file() and (f.suffix in (".safetensors", ".bin") or f.name == "config.json")
    ]  # not the evaluation's own files: an output folder may be the model's
    return [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]


def _resume(path: Path, state: Path, fingerprint: str) -> dict:
    """The records already in ``predictions.jsonl`` (by id) when they were made with the same settings; a last line
    cut short by an interruption is dropped (and its question evaluated again)."""
    if state.exists() and json.loads(state.read_text())["fingerprint"] != fingerprint and path.exists():
        raise UserError(
            f"{path} holds predictions made with other settings or another version of the model's weights; choose "
            "another --output or delete it to start over"
        )
    write_json(state, dict(fingerprint=fingerprint))
    done = {rec["id"]: rec for rec in read_jsonl(path)}
    if path.exists():  # one record per id, and no torn tail for the next append to continue
        write_atomic(path, "".join(json.dumps(r) + "\n" for r in done.values()))
    return done


def _select_frames(rows, args: EvalArgs, cfg: TADConfig, last_video: dict):
    """``(row, selection)`` for every row whose video is usable; ``unreadable`` records for the others, with the
    reason. Only the last video's selection is kept (the questions of a video are adjacent in every benchmark), and
    distractor frames, which only training probes use, are never decoded."""
    unreadable, prepared = [], []
    for row in rows:
        if row["video"] not in last_video:
            last_video.clear()
            try:
                last_video[row["video"]] = select_keyframes(
                    row["video"], args.num_frames, method=args.frames, config=cfg, distractor_frames=False
                )
            except (VideoError, FileNotFoundError) as exc:
                last_video[row["video"]] = exc
        sel = last_video[row["video"]]
        if isinstance(sel, Exception):
            unreadable.append(dict(id=row["id"], video=row["video"], unreadable=str(sel)))
            continue
        prepared.append((row, sel))
    return prepared, unreadable


def _probed(prepared, args: EvalArgs, prompt_args: PromptArguments, protocol=None):
    """The training probe ``args.probe`` on every question (``shuffle``: frames permuted; ``blind``: no frame), the
    text (stated timestamps too) unchanged."""
    out = []
    for row, sel in prepared:
        frames, _ = perturb(args.probe, sel.frames, probe_rng(args.seed, row["id"]))
        out.append(
            build_conversation(row, frames, sel.timestamps, prompt_args, protocol, visual_input=args.visual_input)
        )
    return out


def _score(prepared, predictions, probe_predictions, protocol) -> list[dict]:
    records = []
    for k, ((row, sel), pred) in enumerate(zip(prepared, predictions)):
        verdict = protocol.verdict(pred, row)
        rec = dict(
            id=row["id"],
            prediction=pred,
            answer=verdict.answer,
            answered=verdict.answered,
            solution=row["solution"],
            problem_type=row["problem_type"],
            score=verdict.score,
            correct=verdict.score >= 0.5,
            timestamps=sel.timestamps,
            frame_indices=sel.frame_indices,
            categories=row["categories"],
        )
        if probe_predictions is not None:
            p = probe_predictions[k]
            rec.update(probe_prediction=p, probe_score=protocol.verdict(p, row).score)
        records.append(rec)
    return records


def _results(args, prompt_args, cfg, rows, prepared, records, unreadable, start, protocol) -> dict:
    from .. import __version__

    n = len(records)
    accuracy = protocol.aggregate(records)
    results = dict(
        benchmark=args.benchmark,
        protocol=args.protocol,
        visual_input=args.visual_input,
        data=str(args.data),
        model=args.model,
        frames=args.frames,
        num_frames=args.num_frames,
        num_questions=len(rows),
        num_scored=n,
        num_unreadable=len(unreadable),
        accuracy=accuracy,
        accuracy_all=sum(r["score"] for r in records) / len(rows) if rows else 0.0,
        no_answer_rate=sum(not r.get("answered", True) for r in records) / n if n else 0.0,
        chance=chance_accuracy(prepared),
        per_category=_breakdown(records),
        template=prompt_args.prompt_spec() if args.protocol == "reasoning" else dict(protocol=args.protocol),
        decoding=dict(
            backend=args.backend,
            do_sample=False,
            temperature=0.0,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
        ),
        tad_config=cfg.to_dict() if args.frames == "tad" else None,
        selector=cfg.selector() if args.frames == "tad" else None,
        frame_pixels=dict(min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels, patch_factor=cfg.patch_factor),
        unreadable=unreadable,
        seconds=round(time.perf_counter() - start, 2),
        kfgrpo_version=__version__,
        args=asdict(args),
    )
    regression = [r["score"] for r in records if r.get("problem_type") == "regression"]
    if regression:
        results["mean_mra" if args.protocol == "video-r1" else "regression_score"] = sum(regression) / len(regression)
    if args.probe == "blind":
        blind_acc = protocol.aggregate([dict(r, score=r["probe_score"]) for r in records])
        results["accuracy_blind"] = blind_acc
        results["blind_gap"] = accuracy - blind_acc  # what the frames add over the question alone
        results["per_category_blind"] = _breakdown(records, "probe_score")
    if args.probe == "shuffle":
        probe_acc = protocol.aggregate([dict(r, score=r["probe_score"]) for r in records])
        # Accuracy with the real frames minus accuracy with the same frames shuffled (same prompt text).
        results["frame_sensitivity"] = accuracy - probe_acc
        results["accuracy_shuffled"] = probe_acc
        results["per_category_shuffled"] = _breakdown(records, "probe_score")
    return results
