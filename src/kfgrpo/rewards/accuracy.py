"""Accuracy reward, dispatching on ``problem_type`` (the canonical manifest schema). Training and ``kfgrpo eval``'s
``reasoning`` protocol share this one scorer.

* ``multiple_choice`` — the option the answer names (``extract_choice``) equals the solution letter → 1.0, else 0.0.
  An answer that names two options ("A or C", "A, C", "either A or C") names none; an answer that is an option's text
  ("A man opening a door") names that option, however the text starts. Full-width letters ("Ｂ") and markdown
  emphasis ("**B**") are read as the letter; a whole answer of one lowercase letter ("b") names that option (inside
  a sentence "a" stays an article); "the answer is B" wins over a leading "A. ..." that discusses another option.
* ``numerical`` — the first number in the answer equals the solution's at 2 decimals (Video-R1). "1,500" is one
  thousand five hundred: a comma between groups of three digits is a thousands separator. A hedge between two
  numbers ("3 or 4", "between 3 and 5", "3-4") is no answer.
* ``regression`` — 1 − relative error, clipped to [0, 1] (Video-R1's training reward for its ``regression`` type).
* ``ocr`` — 1 − word error rate, clipped to [0, 1] (Video-R1's training reward for its ``OCR`` type).
* ``free_form`` — mean of ROUGE-1/2/L F-measures with Porter stemming, as Video-R1 (``use_stemmer=True``), in [0, 1].
* ``temporal_grounding`` — IoU of the predicted ``[start, end]`` seconds with the solution's, in [0, 1]; "10.0-15.0",
  "10 to 15", "10 and 15", clock times "00:10 to 00:15" (mm:ss, h:mm:ss) are spans too; a negative start keeps its
  sign; a reversed span (start > end) scores 0, as in VideoChat-R1.

Which text is the answer (``extract_answer``): the last closed ``<answer>…</answer>``; else the text after an unclosed
``<answer>`` (a completion cut off inside its answer); else the text after ``</think>``; else nothing when a
``<think>`` was opened and never closed (reasoning cut off before any answer: a truncated completion is no answer,
never its first capital letter); else the whole completion (a model that answers directly). An answer that cannot be
read scores 0, and ``parse_answer`` says so (``kfgrpo eval``'s ``no_answer_rate``).

Reference rules (read, not copied): tulerfeng/Video-R1 @59d65c3 ``src/r1-v/src/open_r1/grpo.py`` (``accuracy_reward``:
numerical, OCR, free-form, regression) and ``src/eval_bench.py``; OpenGVLab/VideoChat-R1 @73b2ea9
``src/open_r1/grpo_tg.py`` (IoU, start > end → 0). Unknown problem types or a missing solution give ``None`` (TRL then
ignores the function for that row); nothing here raises on any completion string.
"""

from __future__ import annotations

import re
import unicodedata

from ..manifest import OPTION_LETTERS, PROBLEM_TYPES
from .numbers import read_numerals
from .utils import completion_text

ANSWER_PATTERN = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_L = f"[{OPTION_LETTERS[0]}-{OPTION_LETTERS[-1]}]"
# An option letter standing alone (not part of a word); case-sensitive: "a" is an article, never an option.
LETTER_PATTERN = re.compile(rf"(?<![A-Za-z])({_L})(?![A-Za-z])")
_WHOLE = re.compile(rf"^[\s(\[]*({_L}|{_L.lower()})[\s)\].:]*$")  # the whole answer is one letter, any case
_LEADING = re.compile(rf"^\s*(?:\(({_L})\)|\[({_L})\]|({_L})(?:[.):,](?!\d)|\s+[-–—]\s|\s*$))")
_ANSWER_IS = re.compile(rf"(?i:\banswer\b(?:\s+is)?)\s*[:\-]?\s*[(\[]?({_L})(?![A-Za-z])")
_EMPHASIS = re.compile(r"\*\*|__|(?<!\w)[*_`]|[*_`](?!\w)")
_END = re.compile(rf"(?<![A-Za-z])({_L})[\s)\].]*$")
_PHRASE = re.compile(rf"(?i:\b(?:answer|option|choice)\b(?:\s+is)?)\s*[:\-]?\s*[(\[]?({_L})(?![A-Za-z])")
_PAREN = re.compile(rf"\(({_L})\)")
_HEDGE = re.compile(
    rf"(?<![A-Za-z])[(\[]?({_L})[)\]]?\s*(?:,|/|&|(?i:\bor\b)|(?i:\band\b))\s*[(\[]?({_L})(?![A-Za-z])"
)
_GROUPED = r"\d{1,3}(?:,\d{3})+(?:\.\d*)?"
NUMBER_PATTERN = re.compile(rf"[-+]?(?:{_GROUPED}|\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
# times: no thousands separators ("[100,200]" is a span); a minus sign only where no digit precedes ("10-15" is a span)
_SECONDS = re.compile(r"(?<![\d.])-?(?:\d+(?:\.\d*)?|\.\d+)")
_CLOCK = re.compile(r"(?<![\d:.])(\d{1,2}):([0-5]\d)(?::([0-5]\d))?(?:\.(\d+))?(?![\d:])")
_NUMBER_HEDGE = re.compile(
    rf"(?i)(?:\bbetween\s+)?({NUMBER_PATTERN.pattern})\s*(?:\bor\b|\band\b|\bto\b|/|-|–|—)\s*({NUMBER_PATTERN.pattern})"
)
_SPAN = re.compile(
    rf"({_SECONDS.pattern})\s*(?:s|sec|seconds)?\s*(?:-|–|—|~|,|\bto\b|\band\b|\buntil\b)\s*({_SECONDS.pattern})"
)


def extract_answer(text: str) -> str:
    """The answer part of a completion (see the module docstring); "" when it has none."""
    matches = ANSWER_PATTERN.findall(text)
    if matches:
        return matches[-1].strip()
    if "<answer>" in text:
        return text.rsplit("<answer>", 1)[1].split("</", 1)[0].strip()
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1].strip()
    if "<think>" in text:
        return ""
    return text.strip()


def _option_texts(options) -> dict[str, str]:
    out = {}
    for opt in options or []:
        m = re.match(rf"^\s*\(?({_L})[.)]\s*(.*)$", str(opt), re.DOTALL)
        if m:
            out[m.group(1)] = _norm(m.group(2))
    return out


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def extract_choice(answer: str, options=None) -> str | None:
    """The option letter an answer names, or None (no option, or more than one: a hedge)."""
    a = _EMPHASIS.sub("", unicodedata.normalize("NFKC", answer)).strip()  # "Ｂ" -> "B", "**B**" -> "B"
    if not a:
        return None
    texts = _option_texts(options)
    if texts:  # the answer is an option's text: "A man opening a door" names that option, not A
        hits = [k for k, v in texts.items() if v and v == _norm(a)]
        if len(hits) == 1:
            return hits[0]
    if _HEDGE.search(a) and len({m for pair in _HEDGE.findall(a) for m in pair}) > 1:
        return None
    m = _WHOLE.match(a)
    if m:
        return m.group(1).upper()
    stated = set(_ANSWER_IS.findall(a))  # "A. ... is wrong; the answer is B": the stated answer wins
    if len(stated) == 1:
        return stated.pop()
    m = _LEADING.match(a)
    if m:
        return next(g for g in m.groups() if g)
    for pattern in (_PHRASE, _PAREN):
        found = {m for m in pattern.findall(a)}
        if len(found) == 1:
            return found.pop()
        if found:
            return None
    m = _END.search(a)  # "... so it is B."
    return m.group(1) if m else None


def _to_float(text: str) -> float | None:
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def _numbers(text: str, pattern=NUMBER_PATTERN) -> list[float]:
    return [v for v in (_to_float(m) for m in pattern.findall(text)) if v is not None]


def multiple_choice_score(answer: str, solution: str, options=None) -> float:
    letter = extract_choice(answer, options)
    truth = LETTER_PATTERN.search(solution)
    return float(bool(letter and truth and letter == truth.group(1)))


def solution_letter(row: dict) -> int:
    """The index in ``OPTION_LETTERS`` of a multiple-choice row's solution letter; -1 for any other row."""
    truth = (
        LETTER_PATTERN.search(str(row.get("solution") or "")) if row.get("problem_type") == "multiple_choice" else None
    )
    return OPTION_LETTERS.index(truth.group(1)) if truth else -1


def _answer_numbers(answer: str) -> list[float]:
    """The numbers of an answer, in the forms ``read_numerals`` reads (written out, fractions, ...); none when it hedges
    between two different numbers ("3 or 4", "between three and five")."""
    answer = read_numerals(answer)
    for m in _NUMBER_HEDGE.finditer(answer):
        a, b = _to_float(m.group(1)), _to_float(m.group(2))
        if a is not None and b is not None and a != b:
            return []
    return _numbers(answer)


def numerical_score(answer: str, solution: str, options=None) -> float:
    pred, truth = _answer_numbers(answer), _numbers(read_numerals(solution))
    if not pred or not truth:
        return 0.0
    return float(round(pred[0], 2) == round(truth[0], 2))


def regression_score(answer: str, solution: str, options=None) -> float:
    """1 − |pred − truth| / |truth| (Video-R1's epsilon 1e-9 on both sides), clipped to [0, 1]."""
    pred, truth = _answer_numbers(answer), _numbers(read_numerals(solution))
    if not pred or not truth:
        return 0.0
    rel = (abs(pred[0] - truth[0]) + 1e-9) / (abs(truth[0]) + 1e-9)
    return 1.0 - min(1.0, max(0.0, rel))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance over the reference's word count (at least 1)."""
    ref, hyp = reference.split(), hypothesis.split()
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = prev[j - 1] if r == h else 1 + min(prev[j], cur[j - 1], prev[j - 1])
        prev = cur
    return prev[-1] / max(1, len(ref))


def ocr_score(answer: str, solution: str, options=None) -> float:
    return 1.0 - min(1.0, word_error_rate(solution, answer))


def parse_span(text: str) -> tuple[float, float] | None:
    """``(start, end)`` seconds as written (not reordered): "[10, 15]", "10.0-15.0", "10 to 15 s", "00:10 to 00:15";
    None if absent."""
    text = _CLOCK.sub(_clock_seconds, text)
    m = _SPAN.search(text)
    if m:
        a, b = _to_float(m.group(1)), _to_float(m.group(2))
        if a is not None and b is not None:
            return a, b
    nums = _numbers(text, _SECONDS)
    return (nums[0], nums[1]) if len(nums) >= 2 else None


def _clock_seconds(m: re.Match) -> str:
    """mm:ss or h:mm:ss (with optional fraction) as seconds."""
    a, b, c, frac = m.groups()
    seconds = int(a) * 3600 + int(b) * 60 + int(c) if c is not None else int(a) * 60 + int(b)
    return f"{seconds}.{frac}" if frac else str(seconds)


def interval_iou(answer: str, solution: str, options=None) -> float:
    pred, truth = parse_span(answer), parse_span(solution)
    if pred is None or truth is None or pred[0] > pred[1]:
        return 0.0
    (a0, a1), (b0, b1) = pred, tuple(sorted(truth))
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    union = max(a1, b1) - min(a0, b0)
    if union <= 0:  # two zero-length intervals
        return float(a0 == b0)
    return inter / union


_ROUGE = None


def free_form_score(answer: str, solution: str, options=None) -> float:
    global _ROUGE
    if _ROUGE is None:
        from rouge_score import rouge_scorer

        _ROUGE = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    if not answer.strip() or not solution.strip():
        return 0.0
    scores = _ROUGE.score(solution, answer)
    return float(sum(s.fmeasure for s in scores.values()) / len(scores))


SCORERS = {
    "multiple_choice": multiple_choice_score,
    "numerical": numerical_score,
    "regression": regression_score,
    "ocr": ocr_score,
    "free_form": free_form_score,
    "temporal_grounding": interval_iou,
}
assert set(SCORERS) == set(PROBLEM_TYPES), "every manifest problem type needs a scorer"


def parse_answer(text: str, problem_type: str, options=None):
    """What the scorer reads in a completion: the option letter, the number(s), the span or the text; None when
    there is no parsable answer (counted by ``kfgrpo eval`` as ``no_answer_rate``)."""
    answer = extract_answer(text)
    if problem_type == "multiple_choice":
        return extract_choice(answer, options)
    if problem_type in ("numerical", "regression"):
        nums = _answer_numbers(answer)
        return nums[0] if nums else None
    if problem_type == "temporal_grounding":
        return parse_span(answer)
    return answer or None


def score_answer(text: str, solution, problem_type: str, options=None) -> float | None:
    """Accuracy in [0, 1] of one completion text, or None when the row cannot be scored."""
    scorer = SCORERS.get(problem_type)
    if scorer is None or solution is None:
        return None
    return min(1.0, max(0.0, scorer(extract_answer(text), str(solution), options)))


def accuracy_reward(completions, solution=None, problem_type=None, options=None, **kwargs) -> list[float | None]:
    """Per-completion accuracy in [0, 1]; needs the ``solution`` and ``problem_type`` columns (``options`` lets a
    multiple-choice answer name its option by text)."""
    n = len(completions)
    solution = solution if solution is not None else [None] * n
    problem_type = problem_type if problem_type is not None else ["multiple_choice"] * n
    options = options if options is not None else [None] * n
    return [
        score_answer(completion_text(c), s, t, o) for c, s, t, o in zip(completions, solution, problem_type, options)
    ]
