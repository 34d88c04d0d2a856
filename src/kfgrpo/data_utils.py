"""From cached keyframe rows to TRL GRPO rows: a conversational ``prompt`` plus the ordered ``images`` column.

By default the user text is a plain string and TRL's ``prepare_multimodal_messages`` puts one image placeholder per
frame before it at run time. With ``frame_template`` or ``question_position: before`` the prompt is structured (text
and ``{"type": "image"}`` parts interleaved); probes that change the number of frames fit it with
``kfgrpo.probes.fit_prompt_to_frames``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from trl import ScriptArguments

DEFAULT_SYSTEM_PROMPT = (
    "You are given frames of a video in chronological order. Think about the question inside <think> </think> "
    "tags, then give the final answer inside <answer> </answer>."
)


@dataclass
class PromptArguments:
    """How a question and its keyframes become the user message (shared by `kfgrpo train` and `kfgrpo eval`)."""

    system_prompt: str | None = field(
        default=DEFAULT_SYSTEM_PROMPT, metadata={"help": "System message; empty or null for none."}
    )
    prompt_template: str = field(
        default="{timestamps}\n{question}\n{options}{instruction}",
        metadata={"help": "User text; placeholders {timestamps} {question} {options} {instruction}."},
    )
    timestamps_template: str = field(
        default="The {num_frames} frames were taken at seconds {timestamps}.",
        metadata={"help": "How keyframe timestamps are stated ({num_frames}, {timestamps}); empty to omit them."},
    )
    frame_template: str = field(
        default="",
        metadata={
            "help": "Text placed before each frame ({index}: 1-based, {timestamp}: seconds), interleaving text and "
            "frames as Qwen3-VL does for video; empty puts all frames first, then the text (TRL's layout)."
        },
    )
    question_position: str = field(
        default="after",
        metadata={
            "help": "`after`: frames first, then the question (TRL's and Video-R1's layout); `before`: the question, "
            "then the frames, so the frames end at the same distance from the answer whatever the question's length "
            "(a small model trained from scratch reads frame i with one relative-position attention head)."
        },
    )
    instruction_multiple_choice: str = field(
        default="Answer with the option's letter.", metadata={"help": "Instruction for multiple-choice rows."}
    )
    instruction_numerical: str = field(
        default="Answer with a single number.", metadata={"help": "Instruction for numerical rows."}
    )
    instruction_regression: str = field(
        default="Answer with a single number.",
        metadata={"help": "Instruction for regression rows (a number scored by its relative error)."},
    )
    instruction_ocr: str = field(
        default="Answer with the text as written.", metadata={"help": "Instruction for OCR rows (transcribed text)."}
    )
    instruction_free_form: str = field(
        default="Answer in a few words.", metadata={"help": "Instruction for free-form rows."}
    )
    instruction_temporal_grounding: str = field(
        default="Answer with [start, end] in seconds.", metadata={"help": "Instruction for temporal grounding rows."}
    )

    def prompt_spec(self) -> dict:
        """The exact template, for result files."""
        return {f.name: getattr(self, f.name) for f in fields(PromptArguments)}


@dataclass
class KFScriptArguments(ScriptArguments, PromptArguments):
    """Data, prompt and reward arguments of ``kfgrpo train`` (model arguments: ``ModelConfig``; training: the config).

    ``dataset_name`` is a folder written by ``kfgrpo tad`` (read with ``load_from_disk``) or a Hub dataset id.
    """

    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy", "format"],
        metadata={
            "help": "Reward functions: accuracy, format, length, or a dotted path `pkg.module.fn` to your own (TRL's "
            "calling convention); weights: `reward_weights`."
        },
    )
    dry_run: bool = field(
        default=False, metadata={"help": "Parse and print the resolved configuration, then exit without training."}
    )
    drop_unsupported: bool = field(
        default=True,
        metadata={
            "help": "Drop training rows that carry ChronoSynth's ground truth (`events`) whose selected keyframes do "
            "not support the solution: the keyframes missed an object the answer counts or names (77 of the demo's 400 "
            "count questions at 8 frames). Kept, they pay an answer the frames cannot give, which teaches a model to "
            "answer against what it saw. Rows without `events` are always kept; evaluation never drops a row."
        },
    )

    def __post_init__(self):
        # The folder of `kfgrpo tad` is the common case; ScriptArguments only checks it is set.
        if self.dataset_name is None:
            raise ValueError("set `dataset_name` (a `kfgrpo tad` output folder or a Hub dataset id)")


def format_prompt(row: dict, args: PromptArguments) -> list[dict]:
    """The conversational prompt of one row (columns ``problem``, ``options``, ``problem_type``, ``timestamps``)."""
    timestamps = row.get("timestamps") or []
    ts_text = ""
    if args.timestamps_template and timestamps:
        ts_text = args.timestamps_template.format(
            num_frames=len(timestamps), timestamps=", ".join(f"{t:.1f}" for t in timestamps)
        )
    options = row.get("options") or []
    instruction = getattr(args, f"instruction_{row.get('problem_type', 'free_form')}", "")
    text = args.prompt_template.format(
        timestamps=ts_text,
        question=row["problem"],
        options="".join(f"{o}\n" for o in options),
        instruction=instruction,
    ).strip()
    frame_template = getattr(args, "frame_template", "")
    question_first = getattr(args, "question_position", "after") == "before"
    if not ((frame_template or question_first) and timestamps):
        messages = [{"role": "system", "content": args.system_prompt}] if args.system_prompt else []
        return messages + [{"role": "user", "content": text}]
    # Structured content: every message a list of parts (one Arrow type per column); TRL's
    # prepare_multimodal_messages fills the image placeholders with the row's frames, in order.
    frames = []
    for i, t in enumerate(timestamps):
        if frame_template:
            frames.append({"type": "text", "text": frame_template.format(index=i + 1, timestamp=t)})
        frames.append({"type": "image"})
    if question_first:
        content = [{"type": "text", "text": text + "\n"}, *frames]
    else:
        content = [*frames, {"type": "text", "text": "\n" + text}]
    messages = (
        [{"role": "system", "content": [{"type": "text", "text": args.system_prompt}]}] if args.system_prompt else []
    )
    return messages + [{"role": "user", "content": content}]


def load_keyframe_dataset(args: KFScriptArguments, split: str | None = None, detail: str = "color"):
    """The training split: a ``kfgrpo tad`` folder (any split name) or a Hub dataset's ``split``, with each row's
    frames (joined from the per-video frame table when the cache has one: ``kfgrpo.cache.load_tad_dataset``), less
    the rows its keyframes cannot answer when ``args.drop_unsupported`` (``drop_unsupported_rows``)."""
    ds = _load_split(args, split)
    return drop_unsupported_rows(ds, detail) if args.drop_unsupported else ds


def drop_unsupported_rows(data, detail: str = "color"):
    """The rows whose ChronoSynth trace over the selected keyframes reaches their solution
    (``chronosynth.traces.trace_answer``); rows without ``events`` or of another question kind are kept. Says on
    stderr how many it dropped."""
    import sys

    from .chronosynth.traces import trace_answer

    needed = ("events", "timestamps", "problem", "options", "solution")
    if any(c not in data.column_names for c in needed):
        return data
    text = data.with_format(None).select_columns(list(needed))
    keep = [
        i
        for i, r in enumerate(text)
        if r["events"] is None
        or (answer := trace_answer(r["events"], r["timestamps"], detail, r["problem"], r["options"])) is None
        or answer == str(r["solution"]).strip()
    ]
    if len(keep) == len(data):
        return data
    print(f"kfgrpo: dropped {len(data) - len(keep)} of {len(data)} training rows whose keyframes do not support the "
          "solution (drop_unsupported)", file=sys.stderr)  # fmt: skip
    return data.select(keep)


def _load_split(args: KFScriptArguments, split: str | None):
    import datasets

    from .cache import join_frames, load_tad_dataset

    split = split or args.dataset_train_split
    saved = ("dataset_info.json", "state.json", "dataset_dict.json")  # written by `kfgrpo tad` (save_to_disk)
    if os.path.isdir(args.dataset_name) and any(os.path.exists(os.path.join(args.dataset_name, f)) for f in saved):
        ds = load_tad_dataset(args.dataset_name)
        return ds[split] if isinstance(ds, datasets.DatasetDict) else ds
    # a Hub dataset id, or a local folder in its layout (kfgrpo.hub.export_tad_dataset)
    try:
        ds = datasets.load_dataset(args.dataset_name, args.dataset_config, split=split)
    except (FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as exc:
        from .errors import UserError

        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"dataset {args.dataset_name}: not a `kfgrpo tad` folder nor a Hub dataset ({reason})"
        ) from exc
    if "frames_key" in ds.column_names:  # pushed by `kfgrpo tad --push_to_hub`: the frame table is config `frames`
        ds = join_frames(ds, datasets.load_dataset(args.dataset_name, "frames", split=split))
    return ds


def to_grpo_dataset(dataset, args: KFScriptArguments):
    """Adds the ``prompt`` column, reading only text columns (frames are not decoded here)."""
    from .cache import map_text

    cols = [c for c in ("problem", "options", "problem_type", "timestamps") if c in dataset.column_names]

    def _map(*values):
        return {"prompt": format_prompt(dict(zip(cols, values)), args)}

    return map_text(dataset, _map, input_columns=cols, desc="prompts")


def permute_options(dataset, copies: int, seed: int = 0, open_copies: int | None = None):
    """``copies`` copies of every multiple-choice row, each with its options in a different order (copy 0 as cached),
    and ``open_copies`` copies of every other row (default ``copies``).

    The option texts are shuffled and lettered again in order (``A.``, ``B.``, ...), and the solution letter follows
    its text; rows without options (or whose solution is not one of the letters) are copied unchanged, so the mix of
    question families stays as it was. The order of copy ``c`` of row ``i`` depends on ``(seed, c, i)`` only. Frames
    are not touched: with a per-video frame table the copies share it through ``frames_key``.
    """
    import datasets
    import numpy as np

    from .cache import frame_join_of

    open_copies = copies if open_copies is None else open_copies
    if copies <= 1 and open_copies == copies:
        return dataset
    join = frame_join_of(dataset)
    base = dataset.with_format(None) if join is not None else dataset
    out = datasets.concatenate_datasets([base] * copies)
    if "options" in base.column_names and "solution" in base.column_names:
        n = len(base)

        def _map(options, solution, index):
            copy, row = divmod(index, n)
            lettered = [str(o).partition(". ") for o in options or []]
            letters = [letter for letter, dot, _ in lettered if dot]
            if copy == 0 or len(letters) < 2 or len(letters) != len(lettered) or str(solution).strip() not in letters:
                return {"options": options, "solution": solution}
            texts = [lettered[j][2] for j in np.random.default_rng([seed, copy, row]).permutation(len(lettered))]
            answer = lettered[letters.index(str(solution).strip())][2]
            return {
                "options": [f"{letter}. {text}" for letter, text in zip(letters, texts)],
                "solution": letters[texts.index(answer)],
            }

        # in memory: text columns only, and nothing written into the user's (possibly shared, read-only) cache folder
        out = out.map(_map, input_columns=["options", "solution"], with_indices=True, load_from_cache_file=False,
                      keep_in_memory=True, desc="option orders")  # fmt: skip
        if open_copies != copies:
            has = [bool(o) for o in base["options"]]
            keep = [i for i in range(len(out)) if has[i % n] or i // n < open_copies]
            extra = [base.select([i for i in range(n) if not has[i]])] * max(0, open_copies - copies)
            out = datasets.concatenate_datasets([out.select(keep), *extra])
    return out.with_transform(join) if join is not None else out
