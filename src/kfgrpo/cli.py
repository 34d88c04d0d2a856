"""The ``kfgrpo`` command line: one subcommand per stage of the pipeline.

    kfgrpo tiny-model --output DIR [--arch qwen2_5_vl|qwen3_vl] [--size tiny|small|demo] [--seed S]
    kfgrpo synth      --output DIR --num-videos N [--seed S] [ChronoSynth knobs]
    kfgrpo tad        --manifest M.jsonl --output DIR --num-frames K [--candidate-fps F] [--encoder pixel|hf:...]
                      [--config TAD.yaml]
    kfgrpo tad-plot   VIDEO --num-frames K --output PNG
    kfgrpo sft        --config RECIPE.yaml [--key value ...]    (supervised warm start, TRL SFTTrainer)
    kfgrpo train      --config RECIPE.yaml [--key value ...]
    kfgrpo eval       --model PATH --benchmark videomme|lvbench|mvbench|canonical --data PATH --output DIR
                      [--frames tad|uniform] [--num-frames K] [--probe shuffle] [--backend hf|vllm] [--limit N]
    kfgrpo eval-plot  DIR [DIR ...] --output PNG
    kfgrpo prepare    --format video-r1|nextqa|jsonl --input FILE --video-root DIR --output manifest.jsonl

Every subcommand's arguments come from dataclass fields (``--help`` lists them with their help text), parsed by TRL's
``TrlParser``: ``--config FILE.yaml`` supplies defaults for any of them, and flags override the file. A mistake in
the input (unknown key, missing file, invalid value) is one line on stderr and exit code 2; ``--debug`` or
``KFGRPO_DEBUG=1`` shows its traceback (``kfgrpo.errors``).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

COMMANDS = {
    "tiny-model": "Build an offline random-weight Qwen-VL model + processor.",
    "synth": "Generate ChronoSynth videos and their manifest.",
    "tad": "Select keyframes (TAD) for every manifest row and cache them as a Hugging Face dataset.",
    "tad-learn": "Learn TAD's keyframe selection from a frozen model's answers; writes a TAD config that uses it.",
    "tad-plot": "Draw one video's variation curve, apexes and selected keyframes as a PNG.",
    "sft": "Supervised warm start with TRL's SFTTrainer on a TAD cache (TrlParser recipe).",
    "blind-filter": "Drop the training questions a model answers right without their frames (text-answerable).",
    "train": "Train with KF-GRPO from a recipe (TrlParser: --config RECIPE.yaml plus overrides).",
    "eval": "Evaluate a model on Video-MME / LVBench / MVBench / a manifest, with TAD or uniform frames.",
    "eval-plot": "Plot the per-category accuracy of several eval runs side by side.",
    "prepare": "Convert Video-R1 / NExT-QA / generic JSONL data into the canonical manifest.",
}


def _quiet_env():
    # Tokenizer worker threads are not needed by any stage and warn after forks (cache stage workers).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    def one_line(message, category, filename, lineno, file=None, line=None):
        print(f"{category.__name__}: {message}", file=file or sys.stderr)

    warnings.showwarning = one_line  # a warning is one line, not one line plus a line of source


@dataclass
class TinyModelArgs:
    output: str = field(metadata={"help": "Folder to write the model and processor to."})
    arch: str = field(default="qwen2_5_vl", metadata={"help": "Architecture: qwen2_5_vl or qwen3_vl."})
    size: str = field(
        default="tiny",
        metadata={
            "help": "tiny (head_dim 16, CPU), small (head_dim 64, vLLM) or demo (small with 4 layers: make train)."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the random weights."})


@dataclass
class SynthArgs:
    output: str = field(metadata={"help": "Folder for videos/ and manifest.jsonl."})
    num_videos: int = field(metadata={"help": "Number of videos (each gives one question per family)."})
    seed: int = field(default=0, metadata={"help": "Seed; another seed is a held-out split."})


@dataclass
class TadPlotArgs:
    video: str = field(metadata={"help": "Video file."})
    output: str = field(metadata={"help": "PNG to write."})
    num_frames: int = field(default=16, metadata={"help": "Keyframes (K)."})
    method: str = field(default="tad", metadata={"help": "tad, uniform or gumbel."})
    query: str | None = field(default=None, metadata={"help": "Question, for query-aware selection (hf: encoders)."})


def _parse(dataclasses_, argv, prog):
    """Dataclass arguments from the command line, with TrlParser's ``--config FILE.yaml`` for defaults; mistakes are
    one-line ``UserError``s."""
    from .errors import make_parser, parse_args

    return parse_args(make_parser(dataclasses_, prog), argv)


def _tiny_model(argv):
    from .testing import build_tiny_model

    (args,) = _parse((TinyModelArgs,), argv, "kfgrpo tiny-model")
    path = build_tiny_model(args.output, arch=args.arch, size=args.size, seed=args.seed)
    print(f"tiny model ({args.arch}, {args.size}, seed {args.seed}) written to {path}")


def _synth(argv):
    from .chronosynth import SynthConfig, generate

    args, config = _parse((SynthArgs, SynthConfig), argv, "kfgrpo synth")
    manifest = generate(args.output, args.num_videos, seed=args.seed, config=config)
    n = sum(1 for _ in open(manifest))
    print(f"{args.num_videos} videos, {n} questions: {manifest}")


def _tad(argv):
    from .cache import CacheArgs, build_tad_cache
    from .tad import TADConfig

    args, config = _parse((CacheArgs, TADConfig), argv, "kfgrpo tad")
    if args.push_to_hub:  # before the first video, not after the whole stage
        from .hub import check_push_access

        check_push_access(args.push_to_hub, repo_type="dataset", private=args.hub_private)
    try:
        summary = build_tad_cache(args, config)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not summary["published"]:
        print(
            f"this worker's shards are done; {summary['shards_left']} shard(s) still run elsewhere: the last worker "
            f"to finish publishes {args.output} (rerun this command to take over abandoned shards)"
        )
        return 0
    reused = f" ({summary['shards_reused']} finished shard(s) reused)" if summary["shards_reused"] else ""
    if not summary["published_here"]:
        print(f"this worker's shards are done; another worker published {args.output} ({summary['kept']} rows)")
        return 0
    print(
        f"rows kept {summary['kept']} / failed {summary['failed']} / {summary['seconds']} s{reused} -> {args.output}"
    )
    if summary["failed"]:
        print(f"failed rows and reasons: {os.path.join(args.output, 'errors.jsonl')}")
    return 0


def _blind_filter(argv):
    from .blind_filter import cli

    return cli(argv)


def _tad_learn(argv):
    from .tad.learned.training import cli

    return cli(argv)


def _tad_plot(argv):
    import av

    from .errors import UserError
    from .tad import TADConfig, select_keyframes
    from .tad.plot import plot_selection
    from .video import VideoError

    if argv and not argv[0].startswith("-"):  # `kfgrpo tad-plot VIDEO ...`
        argv = ["--video", argv[0], *argv[1:]]
    args, config = _parse((TadPlotArgs, TADConfig), argv, "kfgrpo tad-plot")
    if not os.path.isfile(args.video):
        raise UserError(f"video {args.video}: no such file")
    try:
        sel = select_keyframes(args.video, args.num_frames, method=args.method, query=args.query, config=config)
    except (VideoError, av.error.FFmpegError) as exc:  # a file that is not a decodable video: the user's input
        raise UserError(f"video {args.video}: {exc}") from exc
    recipe = argv[argv.index("--config") + 1] if "--config" in argv[:-1] else None
    plot_selection(sel, args.output, title=os.path.basename(args.video), config=config, config_name=recipe)
    print(f"keyframes at {', '.join(f'{t:.2f}' for t in sel.timestamps)} s -> {args.output}")


def _sft(argv):
    from .sft import cli

    cli(argv)


def _train(argv):
    from .train import cli

    cli(argv)


def _eval(argv):
    from .data_utils import PromptArguments
    from .errors import check_model_path
    from .eval import EvalArgs, EvalModelConfig, evaluate
    from .eval.run import category_table
    from .tad import TADConfig

    parsed = _parse((EvalArgs, PromptArguments, TADConfig, EvalModelConfig), argv, "kfgrpo eval")
    args, prompt, config, model_args = parsed
    check_model_path(args.model)
    r = evaluate(args, prompt, config, model_args=model_args)
    line = f"{r['benchmark']}: accuracy {r['accuracy']:.4f} (chance {r['chance']:.4f}) on {r['num_scored']} questions"
    if r["num_unreadable"]:
        line += f" ({r['num_unreadable']} with unreadable videos; accuracy_all {r['accuracy_all']:.4f})"
    if "frame_sensitivity" in r:
        line += f"; shuffled frames {r['accuracy_shuffled']:.4f}, frame sensitivity {r['frame_sensitivity']:+.4f}"
    if "blind_gap" in r:
        line += f"; no frames {r['accuracy_blind']:.4f}, blind gap {r['blind_gap']:+.4f}"
    table = category_table(r)
    if table:
        print(table)
    print(f"{line} -> {args.output}")
    if r["num_invalid"]:
        print(f"{r['num_invalid']} invalid manifest line(s) skipped; reasons in {args.output}/{args.results_file}")


def _eval_plot(argv):
    import argparse

    from .eval.plot import plot_results

    parser = argparse.ArgumentParser(prog="kfgrpo eval-plot", description=COMMANDS["eval-plot"])
    parser.add_argument(
        "dirs", nargs="+", help="Output folders of `kfgrpo eval` (results.json or eval.json inside) or results files."
    )
    parser.add_argument("--output", required=True, help="PNG to write.")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    print(plot_results(args.dirs, args.output, args.title))


def _prepare(argv):
    from .prepare import PrepareArgs, prepare

    (args,) = _parse((PrepareArgs,), argv, "kfgrpo prepare")
    summary = prepare(args)
    print(
        f"rows written {summary['written']} / skipped {summary['skipped']} / failed {summary['failed']} -> "
        f"{args.output}" + (f" (reasons: {args.output}.errors.jsonl)" if summary["failed"] else "")
    )
    return 0 if summary["written"] else 1


HANDLERS = {
    "tiny-model": _tiny_model,
    "synth": _synth,
    "tad": _tad,
    "tad-learn": _tad_learn,
    "tad-plot": _tad_plot,
    "sft": _sft,
    "blind-filter": _blind_filter,
    "train": _train,
    "eval": _eval,
    "eval-plot": _eval_plot,
    "prepare": _prepare,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: kfgrpo {" + ",".join(COMMANDS) + "} ...\n\ncommands:")
        for name, text in COMMANDS.items():
            print(f"  {name:<12} {text}")
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(json.dumps({"kfgrpo": __version__}))
        return 0
    command, rest = argv[0], argv[1:]
    if command not in HANDLERS:
        print(f"kfgrpo: unknown command {command!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    _quiet_env()
    debug = "--debug" in rest or os.environ.get("KFGRPO_DEBUG", "").lower() in ("1", "true", "yes")
    rest = [a for a in rest if a != "--debug"]
    from .errors import UserError
    from .vllm_utils import VLLMUnavailableError

    try:
        return HANDLERS[command](rest) or 0
    except (UserError, VLLMUnavailableError) as exc:  # one line, not a traceback from inside a library
        if debug:
            raise
        print(f"kfgrpo {command}: {exc}", file=sys.stderr)
        return 2


def end_distributed(code: int | None = 0) -> None:
    """Ends a finished multi-process run's process: destroys the default process group, flushes, and exits with
    ``code`` without interpreter teardown. Left to teardown, a rank could abort with "terminate called without an
    active exception" in C++ destructors after its work was done (ZeRO-3 on gloo, tests/test_multirank.py: about 1
    launch in 50 even with the group destroyed first), failing a job whose outputs were written. Returns without
    exiting when no process group was started (one process: a normal exit)."""
    import logging

    torch = sys.modules.get("torch")
    if torch is None or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return
    torch.distributed.destroy_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code or 0))


if __name__ == "__main__":  # `accelerate launch -m kfgrpo.cli ...` (make train, slurm/train.slurm)
    code = main()
    end_distributed(code)
    sys.exit(code)
