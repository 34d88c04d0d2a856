"""Accuracy reward, dispatching on ``problem_type`` (the canonical manifest schema).

* ``multiple_choice`` — the first option letter in the answer equals the solution letter → 1.0, else 0.0.
* ``numerical`` — the first number in the answer equals the solution after rounding both to 2 decimals (Video-R1).
* ``free_form`` — mean of ROUGE-1/2/L F-measures against the solution (Video-R1), in [0, 1].
* ``temporal_grounding`` — IoU of the predicted ``[start, end]`` seconds with the solution's, in [0, 1].

The answer is the text inside the last ``<answer>…</answer>`` tag; without a tag, the whole completion is the answer
(the format reward is what pays for the tags). Unknown problem types or a missing solution give ``None`` (TRL then
ignores the function for that row); nothing here raises on any completion string.
"""

from __future__ import annotations

import re

from ..manifest import OPTION_LETTERS, PROBLEM_TYPES
from .utils import completion_text

ANSWER_PATTERN = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
LETTER_PATTERN = re.compile(rf"(?<![A-Za-z])([{OPTION_LETTERS[0]}-{OPTION_LETTERS[-1]}])(?![A-Za-z])")
NUMBER_PATTERN = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def extract_answer(text: str) -> str:
    matches = ANSWER_PATTERN.findall(text)
    return (matches[-1] if matches else text).strip()


def _numbers(text: str) -> list[float]:
    out = []
    for m in NUMBER_PATTERN.findall(text):
        try:
            value = float(m)
        except ValueError:
            continue
        if value == value and abs(value) != float("inf"):
            out.append(value)
    return out


def multiple_choice_score(answer: str, solution: str) -> float:
    letter = LETTER_PATTERN.search(answer)
    truth = LETTER_PATTERN.search(solution)
    return float(bool(letter and truth and letter.group(1) == truth.group(1)))


def numerical_score(answer: str, solution: str) -> float:
    pred, truth = _numbers(answer), _numbers(solution)
    if not pred or not truth:
        return 0.0
    return float(round(pred[0], 2) == round(truth[0], 2))


def interval_iou(answer: str, solution: str) -> float:
    pred, truth = _numbers(answer), _numbers(solution)
    if len(pred) < 2 or len(truth) < 2:
        return 0.0
    (a0, a1), (b0, b1) = sorted(pred[:2]), sorted(truth[:2])
    inter = max(0.0, min(a1, b1) - max(a0, b0))
    union = max(a1, b1) - min(a0, b0)
    if union <= 0:  # two zero-length intervals
        return float(a0 == b0)
    return inter / union


_ROUGE = None


def free_form_score(answer: str, solution: str) -> float:
    global _ROUGE
    if _ROUGE is None:
        from rouge_score import rouge_scorer

        _ROUGE = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    if not answer.strip() or not solution.strip():
        return 0.0
    scores = _ROUGE.score(solution, answer)
    return float(sum(s.fmeasure for s in scores.values()) / len(scores))


SCORERS = {
    "multiple_choice": multiple_choice_score,
    "numerical": numerical_score,
    "free_form": free_form_score,
    "temporal_grounding": interval_iou,
}
assert set(SCORERS) == set(PROBLEM_TYPES), "every manifest problem type needs a scorer"


def score_answer(text: str, solution, problem_type: str) -> float | None:
    """Accuracy in [0, 1] of one completion text, or None when the row cannot be scored."""
    scorer = SCORERS.get(problem_type)
    if scorer is None or solution is None:
        return None
    return min(1.0, max(0.0, scorer(extract_answer(text), str(solution))))


def accuracy_reward(completions, solution=None, problem_type=None, **kwargs) -> list[float | None]:
    """Per-completion accuracy in [0, 1]; needs the ``solution`` and ``problem_type`` columns."""
    n = len(completions)
    solution = solution if solution is not None else [None] * n
    problem_type = problem_type if problem_type is not None else ["multiple_choice"] * n
    return [score_answer(completion_text(c), s, t) for c, s, t in zip(completions, solution, problem_type)]
