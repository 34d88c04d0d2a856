"""Readers for benchmarks in their public layouts, each yielding canonical question rows:
``id, video (path), problem, options ("A. ..."), solution, problem_type, categories {name: value or [values]}``.

* ``videomme`` — ``DATA/videomme/test-*.parquet`` (``video_id, duration, domain, sub_category, url, videoID,
  question_id, task_type, question, options, answer``), videos at ``DATA/data/<videoID>.mp4``.
* ``lvbench`` — a JSONL file of ``{key, qa: [{uid, question, answer, question_type, time_reference}]}``; the options
  are the ``(A) ...`` lines of ``question``; videos at ``VIDEO_ROOT/<key>.mp4`` (default ``<jsonl folder>/videos``).
* ``mvbench`` — ``DATA/json/<task>.json`` lists of ``{video, question, candidates, answer}``; videos at
  ``VIDEO_ROOT/<task>/<video>`` or ``VIDEO_ROOT/<video>`` (default ``DATA/video``).
* ``canonical`` — a kfgrpo manifest (``kfgrpo synth`` / ``kfgrpo prepare``); relative videos against its folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..manifest import OPTION_LETTERS as LETTERS
from ..manifest import RowError, confined_video, letter_options, parse_line, unique_ids, warn_renamed

BENCHMARKS = ("videomme", "lvbench", "mvbench", "canonical")
_LV_OPTION = re.compile(rf"^\(([{LETTERS[0]}-{LETTERS[-1]}])\)\s*(.*)$")


def read_videomme(data: Path, video_root: Path | None = None):
    import pyarrow.parquet as pq

    files = sorted((data / "videomme").glob("test-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no videomme/test-*.parquet under {data}")
    root = video_root or data / "data"
    for f in files:
        for r in pq.read_table(f).to_pylist():
            yield dict(
                id=str(r["question_id"]),
                video=str(root / f"{r['videoID']}.mp4"),
                problem=r["question"],
                options=letter_options(list(r["options"])),
                solution=str(r["answer"]).strip(),
                problem_type="multiple_choice",
                categories=dict(task_type=r["task_type"], duration=r["duration"], domain=r["domain"]),
            )


def _split_lv_question(question: str):
    stem, options = [], []
    for line in question.splitlines():
        m = _LV_OPTION.match(line.strip())
        if m:
            options.append(f"{m.group(1)}. {m.group(2).strip()}")
        elif not options:
            stem.append(line)
    return "\n".join(stem).strip(), options


def read_lvbench(data: Path, video_root: Path | None = None):
    root = video_root or data.parent / "videos"
    for line in data.read_text().splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        for qa in item["qa"]:
            problem, options = _split_lv_question(qa["question"])
            types = qa.get("question_type") or []
            yield dict(
                id=str(qa["uid"]),
                video=str(root / f"{item['key']}.mp4"),
                problem=problem,
                options=options,
                solution=str(qa["answer"]).strip().strip("()"),
                problem_type="multiple_choice",
                categories=dict(question_type=types if isinstance(types, list) else [types]),
                time_reference=qa.get("time_reference"),
            )


def read_mvbench(data: Path, video_root: Path | None = None):
    root = video_root or data / "video"
    files = sorted((data / "json").glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no json/*.json under {data}")
    for f in files:
        task = f.stem
        for i, r in enumerate(json.loads(f.read_text())):
            candidates = [str(c) for c in r["candidates"]]
            if str(r["answer"]) not in candidates:
                raise ValueError(f"{f.name} item {i}: answer {r['answer']!r} is not among the candidates")
            video = root / task / r["video"]
            if not video.exists():
                video = root / r["video"]
            yield dict(
                id=f"{task}-{i}",
                video=str(video),
                problem=r["question"],
                options=letter_options(candidates),
                solution=LETTERS[candidates.index(str(r["answer"]))],
                problem_type="multiple_choice",
                categories=dict(task=task),
            )


def read_canonical(data: Path, video_root: Path | None = None, invalid: list | None = None, allow_outside=False):
    """Rows of a kfgrpo manifest; a malformed line, or one whose video lies outside the video root, is appended to
    ``invalid`` (line, id, reason) and skipped, as ``kfgrpo tad`` does."""
    root = video_root or data.parent
    for number, line in enumerate(data.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            r = parse_line(line)
            video = confined_video(r["video"], root, allow_outside=allow_outside)
        except RowError as exc:
            if invalid is None:
                raise RowError(f"{data}:{number}: {exc}") from exc
            invalid.append(dict(line=number, id=_id_of(line), reason=str(exc)))
            continue
        cats = {k: r[k] for k in ("family", "problem_type") if k in r}
        yield dict(
            id=str(r["id"]),
            video=video,
            problem=r["problem"],
            options=r.get("options") or [],
            solution=str(r["solution"]),
            problem_type=r["problem_type"],
            categories=cats,
        )


def _id_of(line: str):
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row.get("id") if isinstance(row, dict) else None


READERS = {"videomme": read_videomme, "lvbench": read_lvbench, "mvbench": read_mvbench, "canonical": read_canonical}


def read_benchmark(
    name: str, data: str, video_root: str | None = None, invalid: list | None = None, allow_outside_root=False
) -> list[dict]:
    """The benchmark's questions. Repeated ids are made unique (``X#2``, one warning line): results and resumption
    are keyed by id. With ``invalid`` (a list), malformed manifest lines are reported there and skipped."""
    if name not in READERS:
        raise ValueError(f"unknown benchmark {name!r}; choose from {BENCHMARKS}")
    root = Path(video_root) if video_root else None
    if name == "canonical":
        rows = list(read_canonical(Path(data), root, invalid, allow_outside_root))
    else:
        rows = list(READERS[name](Path(data), root))
    renamed = unique_ids(enumerate(r["id"] for r in rows))
    for i, new in renamed.items():
        rows[i]["id"] = new
    warn_renamed(renamed, str(data))
    return rows
