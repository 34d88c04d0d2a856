"""The canonical manifest row: one question about one video, one JSON object per line of a ``.jsonl`` file.

Written by ``kfgrpo synth`` and ``kfgrpo prepare``; read by ``kfgrpo tad`` (cache), ``kfgrpo eval`` (``canonical``
benchmark) and scored by ``kfgrpo.rewards``. Fields:

* ``id`` (str), ``video`` (path; a relative path resolves against the manifest's folder), ``problem`` (question
  text), ``solution`` (str), ``problem_type`` (one of ``PROBLEM_TYPES``) — required;
* ``options`` (list of ``"A. text"``, lettered with ``OPTION_LETTERS``) — for multiple choice;
* anything else (``family``, ``events``, ``data_source``, ...) is carried along untouched.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

REQUIRED_FIELDS = ("id", "video", "problem", "solution", "problem_type")
PROBLEM_TYPES = ("multiple_choice", "numerical", "regression", "ocr", "free_form", "temporal_grounding")
# Up to ten options (LVBench and Video-R1 use up to 8-10): the one alphabet for lettering, parsing and scoring.
OPTION_LETTERS = "ABCDEFGHIJ"
LETTERED_OPTION = re.compile(rf"^[{OPTION_LETTERS[0]}-{OPTION_LETTERS[-1]}]\.\s")


class RowError(ValueError):
    """A manifest row that cannot be used; the message says why."""


def letter_options(options) -> list[str]:
    """Options as ``"A. text"``; options that already start with ``"X. "`` are kept."""
    if len(options) > len(OPTION_LETTERS):
        raise RowError(f"{len(options)} options; at most {len(OPTION_LETTERS)} ({OPTION_LETTERS}) are supported")
    out = []
    for i, opt in enumerate(options):
        text = str(opt).strip()
        out.append(text if LETTERED_OPTION.match(text) else f"{OPTION_LETTERS[i]}. {text}")
    return out


def validate_row(row) -> dict:
    """The row, normalised (``options`` defaults to [], ``solution`` is a string); ``RowError`` says what is wrong."""
    if not isinstance(row, dict):
        raise RowError(f"expected a JSON object, got {type(row).__name__}")
    missing = [k for k in REQUIRED_FIELDS if k not in row or row[k] in (None, "")]
    if missing:
        raise RowError(f"missing fields: {', '.join(missing)}")
    if row["problem_type"] not in PROBLEM_TYPES:
        raise RowError(f"unknown problem_type {row['problem_type']!r}; expected one of {PROBLEM_TYPES}")
    if not isinstance(row.get("options", []), list):
        raise RowError("options must be a list")
    row.setdefault("options", [])
    row["solution"] = str(row["solution"])
    if row["problem_type"] == "multiple_choice" and row["options"]:
        _check_answer_is_an_option(row)
    return row


_SOLUTION_LETTER = re.compile(rf"^\s*[(\[]?([{OPTION_LETTERS}])(?![A-Za-z])")


def _check_answer_is_an_option(row: dict) -> None:
    """A multiple-choice answer given as a letter must be one of the row's options: "E" of options A-B can never be
    answered right, and would count as a wrong answer of every model."""
    m = _SOLUTION_LETTER.match(re.sub(r"</?answer>", "", row["solution"]))
    letters = [opt[0] for opt in letter_options(row["options"])]
    if m and m.group(1) not in letters:
        raise RowError(f"answer {row['solution']!r} is not among the options ({', '.join(letters)})")


def parse_line(line: str) -> dict:
    """One manifest line as a validated row."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RowError(f"malformed JSON: {exc}") from exc
    return validate_row(row)


def resolve_video(video: str | os.PathLike, base: str | os.PathLike) -> str:
    """``video`` as a path: absolute paths stay, relative ones resolve against ``base`` (the manifest's folder)."""
    return str(video) if os.path.isabs(video) else str(Path(base) / video)


def confined_video(video, base, root=None, allow_outside: bool = False) -> str:
    """``resolve_video(video, base)``, refused (``RowError``) when it lies outside ``root`` (default ``base``): a
    downloaded manifest or JSON must not pull ``../../etc/passwd`` or ``/home/me/private.mp4`` into a cache that may be
    published. The check is on the path as written (``..`` and absolute paths); symbolic links inside the root are
    followed as usual. ``allow_outside`` (``--allow_outside_root``) turns it off."""
    path = resolve_video(video, base)
    root = base if root is None else root
    if not allow_outside:
        inside = os.path.normpath(os.path.abspath(path))
        base = os.path.normpath(os.path.abspath(root))
        if os.path.commonpath([inside, base]) != base:
            raise RowError(f"video {str(video)!r} is outside the video root {root} (--allow_outside_root allows it)")
    return path


def unique_ids(ids) -> dict:
    """``{key: new_id}`` for every repeated id of ``ids`` (pairs ``(key, id)`` in file order): the n-th occurrence of
    ``X`` becomes ``X#n``, the first keeps ``X``. Deterministic, so a rerun (or an interrupted eval that resumes)
    names every question alike, and no question's result can stand in for another's."""
    ids = list(ids)
    taken = {i for _, i in ids}
    seen: dict[str, int] = {}
    renamed = {}
    for key, row_id in ids:
        n = seen.get(row_id, 0) + 1
        seen[row_id] = n
        if n == 1:
            continue
        new = f"{row_id}#{n}"
        while new in taken:
            n += 1
            new = f"{row_id}#{n}"
        taken.add(new)
        renamed[key] = new
    return renamed


def warn_renamed(renamed: dict, where: str) -> None:
    """One line on stderr naming the renamed ids."""
    if renamed:
        import sys

        shown = ", ".join(f"{v}" for v in list(renamed.values())[:5]) + (" ..." if len(renamed) > 5 else "")
        print(f"warning: {where}: {len(renamed)} repeated id(s) made unique: {shown}", file=sys.stderr)
