"""``kfgrpo prepare``: public dataset formats → the canonical manifest (``id, video, problem, options, solution,
problem_type`` + passthrough columns).

* ``video-r1`` — Video-R1-260k JSON: a list of ``{problem_id, problem, data_type, problem_type, options, solution
  ("<answer>X</answer>"), path, data_source}``. Problem types map as multiple choice → ``multiple_choice``, numerical
  → ``numerical``, free-form → ``free_form``, OCR → ``ocr`` (1 − word error rate), regression → ``regression``
  (1 − relative error), each scored as Video-R1 scores it; the source type is kept in ``source_problem_type``. Image rows are skipped unless ``--keep-images`` (then ``video`` is the image path and
  ``kfgrpo tad --min_video_frames 1`` caches them as one-frame videos).
* ``nextqa`` — NExT-QA CSV (``video, frame_count, width, height, question, answer, qid, type, a0..a4``): five options,
  the answer index becomes a letter, ``type`` (CW, CH, TN, TC, DL, DO, DC) is passed through.
* ``jsonl`` — any JSONL with a field mapping (``--field-map problem=question solution=answer ...``).

Every row that cannot be converted is reported with its line (or item) number and reason in
``<output>.errors.jsonl`` and in the summary, never silently dropped; rows whose video file does not exist under
``--video-root`` are reported the same way, as are rows whose path leaves ``--video-root`` (``..`` or an absolute
path elsewhere; ``--allow_outside_root`` keeps them). Relative video paths are written relative to the manifest's
folder. A repeated id is made unique (``X#2``, one warning line), so no question can stand in for another downstream.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .manifest import OPTION_LETTERS as LETTERS
from .manifest import RowError, confined_video, letter_options, unique_ids, validate_row, warn_renamed

FORMATS = ("video-r1", "nextqa", "jsonl")
VIDEO_R1_TYPES = {
    "multiple choice": "multiple_choice",
    "numerical": "numerical",
    "free-form": "free_form",
    "ocr": "ocr",
    "regression": "regression",
}
CANONICAL = ("id", "video", "problem", "options", "solution", "problem_type")


@dataclass
class PrepareArgs:
    format: str = field(metadata={"help": f"Input format, one of {FORMATS}."})
    input: str = field(metadata={"help": "Input file (JSON, CSV or JSONL)."})
    output: str = field(metadata={"help": "Manifest to write (JSONL)."})
    video_root: str = field(default=".", metadata={"help": "Folder the dataset's video paths are relative to."})
    keep_images: bool = field(default=False, metadata={"help": "video-r1: keep image rows (skipped by default)."})
    check_videos: bool = field(default=True, metadata={"help": "Report rows whose video file is missing."})
    field_map: list[str] = field(
        default_factory=list,
        metadata={
            "help": "jsonl: canonical=source pairs; the canonical keys are id, video, problem, options, solution and "
            "problem_type, e.g. problem=question solution=answer video=video_path options=choices id=qid."
        },
    )
    problem_type: str = field(
        default="multiple_choice", metadata={"help": "jsonl: problem_type for rows that do not carry one."}
    )
    video_ext: str = field(default=".mp4", metadata={"help": "nextqa: video file extension."})
    allow_outside_root: bool = field(
        default=False,
        metadata={
            "help": "Keep rows whose video path leaves --video-root (`..`, absolute paths elsewhere); by default they "
            "are reported in <output>.errors.jsonl and skipped."
        },
    )

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"--format must be one of {FORMATS}, got {self.format!r}")
        for pair in self.field_map:
            key = pair.split("=", 1)[0]
            if "=" not in pair or key not in CANONICAL:
                raise ValueError(f"--field-map {pair!r}: expected canonical=source with canonical one of {CANONICAL}")


class ConversionError(ValueError):
    pass


def _strip_answer(solution: str) -> str:
    s = str(solution).strip()
    if "<answer>" in s:
        s = s.split("<answer>", 1)[1].split("</answer>", 1)[0]
    return s.strip()


def convert_video_r1(item: dict, keep_images: bool) -> dict | None:
    for key in ("problem_id", "problem", "problem_type", "solution", "path"):
        if key not in item or item[key] in (None, ""):
            raise ConversionError(f"missing field {key!r}")
    data_type = str(item.get("data_type", "video")).lower()
    if data_type == "image" and not keep_images:
        return None
    source_type = str(item["problem_type"]).strip().lower()
    if source_type not in VIDEO_R1_TYPES:
        raise ConversionError(f"unknown problem_type {item['problem_type']!r}")
    options = item.get("options") or []
    if not isinstance(options, list):
        raise ConversionError("options must be a list")
    passthrough = {
        k: v
        for k, v in item.items()
        if k not in ("problem_id", "problem", "problem_type", "options", "solution", "path")
    }
    return dict(
        id=str(item["problem_id"]),
        video=str(item["path"]),
        problem=str(item["problem"]),
        options=letter_options(options),
        solution=_strip_answer(item["solution"]),
        problem_type=VIDEO_R1_TYPES[source_type],
        source_problem_type=item["problem_type"],
        **passthrough,
    )


def convert_nextqa(row: dict, video_ext: str) -> dict:
    for key in ("video", "question", "answer", "qid", "a0", "a1", "a2", "a3", "a4"):
        if row.get(key) in (None, ""):
            raise ConversionError(f"missing field {key!r}")
    try:
        answer = int(row["answer"])
    except ValueError as exc:
        raise ConversionError(f"answer must be an option index 0-4, got {row['answer']!r}") from exc
    if not 0 <= answer <= 4:
        raise ConversionError(f"answer index out of range: {answer}")
    options = [f"{LETTERS[i]}. {row[f'a{i}']}" for i in range(5)]
    question = row["question"].strip()
    return dict(
        id=f"{row['video']}-{row['qid']}",
        video=f"{row['video']}{video_ext}",
        problem=question if question.endswith("?") else question + "?",
        options=options,
        solution=LETTERS[answer],
        problem_type="multiple_choice",
        type=row.get("type"),
        frame_count=row.get("frame_count"),
    )


def convert_jsonl(item: dict, mapping: dict[str, str], default_type: str) -> dict:
    row = {}
    for key in CANONICAL:
        src = mapping.get(key, key)
        if src in item:
            row[key] = item[src]
    row.setdefault("problem_type", default_type)
    row.setdefault("options", [])
    missing = [k for k in ("id", "video", "problem", "solution") if row.get(k) in (None, "")]
    if missing:
        raise ConversionError(f"missing fields: {', '.join(missing)} (field map: {mapping})")
    if not isinstance(row["options"], list):
        raise ConversionError("options must be a list")
    used = {mapping.get(k, k) for k in CANONICAL}
    row.update({k: v for k, v in item.items() if k not in used and k not in row})
    row["id"], row["solution"] = str(row["id"]), str(row["solution"])
    row["options"] = letter_options(row["options"])
    return row


def _records(args: PrepareArgs):
    """(line_or_item_number, record or ConversionError) for the input file."""
    path = Path(args.input)
    if args.format == "video-r1":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConversionError(f"{path}: not valid JSON: {exc}") from exc
        if not isinstance(data, list):
            raise ConversionError(f"{path}: expected a JSON list of rows")
        yield from enumerate(data, start=1)
    elif args.format == "nextqa":
        with open(path, newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh), start=2):  # line 1 is the header
                yield i, row
    else:
        for i, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield i, json.loads(line)
            except json.JSONDecodeError as exc:
                yield i, ConversionError(f"malformed JSON: {exc}")


def prepare(args: PrepareArgs) -> dict:
    """Writes the manifest and ``<output>.errors.jsonl``; returns ``{"written", "skipped", "failed"}``."""
    mapping = dict(pair.split("=", 1) for pair in args.field_map)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    root = Path(args.video_root)
    written = skipped = 0
    errors, rows = [], []
    with open(out, "w") as fh:
        for number, record in _records(args):
            try:
                if isinstance(record, ConversionError):
                    raise record
                if not isinstance(record, dict):
                    raise ConversionError(f"expected an object, got {type(record).__name__}")
                if args.format == "video-r1":
                    row = convert_video_r1(record, args.keep_images)
                elif args.format == "nextqa":
                    row = convert_nextqa(record, args.video_ext)
                else:
                    row = convert_jsonl(record, mapping, args.problem_type)
                if row is None:
                    skipped += 1
                    continue
                validate_row(row)
                video = Path(confined_video(row["video"], root, allow_outside=args.allow_outside_root))
                if args.check_videos and not video.exists():
                    raise ConversionError(f"video not found: {video}")
                if not os.path.isabs(row["video"]):
                    row["video"] = os.path.relpath(video.resolve(), out.parent.resolve())
                rows.append(row)
            except (ConversionError, RowError) as exc:
                rid = (
                    record.get("problem_id", record.get("qid", record.get("id"))) if isinstance(record, dict) else None
                )
                errors.append(dict(line=number, id=None if rid is None else str(rid), reason=str(exc)))
        renamed = unique_ids(enumerate(str(r["id"]) for r in rows))
        for i, new in renamed.items():
            rows[i]["id"] = new
        warn_renamed(renamed, str(out))
        for row in rows:
            fh.write(json.dumps(row) + "\n")
        written = len(rows)
    with open(f"{out}.errors.jsonl", "w") as fh:
        for e in errors:
            fh.write(json.dumps(e) + "\n")
    return dict(written=written, skipped=skipped, failed=len(errors))
