"""Evaluation protocols: the prompt, token budget, answer extraction and aggregation that make a number comparable.

A published accuracy is only comparable with one made under the same protocol. ``kfgrpo eval --protocol``:

* ``reasoning`` (default) — kfgrpo's own: the training prompt (think, then ``<answer>``), 1,024 new tokens (a
  recipe-trained model reasons for up to ``max_completion_length`` = 768 tokens, so nothing is cut), scored by
  ``kfgrpo.rewards.accuracy`` (the training scorer). Use it to compare kfgrpo runs with each other.
* ``lmms-eval`` — lmms-eval's direct-answer protocol, where most published Video-MME / LVBench / MVBench numbers
  come from: its prompt for the benchmark, 16 new tokens, its extraction and its aggregation. Video-MME and LVBench
  use the priority-based ``extract_mcq_answer`` (``lmms_eval/tasks/_task_utils/mcq_extract.py`` @7a69a9a1,
  2026-04-11, choices A-D); MVBench its ``mcq_acc`` (``tasks/mvbench/utils.py`` @c7eaef37) and an aggregate that leaves
  empty predictions out of the denominator. Prompts: ``tasks/videomme/utils.py::videomme_doc_to_text`` with the
  default ``post_prompt`` of ``videomme.yaml``, ``tasks/lvbench``, ``tasks/mvbench`` (EvolvingLMMs-Lab/lmms-eval
  @75571cfe). Multiple choice only.
* ``lmms-eval-classic`` — the same with lmms-eval's extraction before 2026-04-11 (``extract_characters_regex`` of
  ``tasks/videomme/utils.py`` @bd51fabc: strip answer prefixes, then the first A-D anywhere), which produced numbers
  published before then (e.g. the ChronoForge-RL paper's).
* ``video-r1`` — Video-R1's ``src/eval_bench.py`` (tulerfeng/Video-R1 @59d65c3): its think-then-answer template with
  the per-type instruction, 1,024 new tokens, the first ``<answer>`` block (or the whole output when there is none),
  multiple choice by exact string equality, numbers by its decimal-agreement rule, regression by mean relative
  accuracy (thresholds 0.50-0.95). ``eval_bench`` scores no other type; OCR and free-form rows here get Video-R1's
  training reward (1 − WER, stemmed ROUGE). Its sampling (temperature 0.1, top_p 0.001) keeps the most likely token:
  decoding here is greedy.

Frames stay kfgrpo's (``--frames``, ``--num_frames``, pixels): the protocols fix the text side. Each protocol also
says when an output has no parsable answer (``no_answer_rate`` in results.json).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UserError
from ..rewards.accuracy import ocr_score, parse_answer, score_answer

PROTOCOLS = ("reasoning", "lmms-eval", "lmms-eval-classic", "video-r1")
DEFAULT_MAX_NEW_TOKENS = {"reasoning": 1024, "lmms-eval": 16, "lmms-eval-classic": 16, "video-r1": 1024}


@dataclass
class Verdict:
    answer: object  # what was read (a letter, a number, a span, text); None or "" when nothing could be
    score: float
    answered: bool


# --- lmms-eval --------------------------------------------------------------------------------------------------

_VIDEOMME_OPTION_PROMPT = (
    "Select the best answer to the following multiple-choice question based on the video and the subtitles. "
    "Respond with only the letter (A, B, C, or D) of the correct option."
)
_VIDEOMME_POST_PROMPT = "\nAnswer with the option's letter from the given choices directly."
_LVBENCH_POST_PROMPT = "\nAnswer the question with the option letter"
_MVBENCH_POST_PROMPT = "Only give the best option.\n"

_MCQ_PHRASES = (
    "the answer is", "answer is", "the correct answer is", "correct answer is", "the best answer is",
    "best answer is", "the correct option is", "correct option is", "the best option is", "best option is",
    "the choice is", "choice is", "the correct choice is", "correct choice is", "i choose", "i select", "i pick",
    "my answer is", "my choice is", "옵션", "정답은", "답은", "답:", "答案是", "答案为", "选", "答えは",
)  # fmt: skip
_MCQ_PRIORITY = {"start": 10, "end": 9, "phrase": 7, "parentheses": 6, "period": 5, "colon": 4, "right_paren": 3,
                 "space": 2, "fallback": 0}  # fmt: skip


def lmms_eval_mcq_extract(response: str, choices=("A", "B", "C", "D")) -> str:
    """lmms-eval's priority-based letter extraction (rules of ``mcq_extract.extract_mcq_answer``): candidates in
    several formats, the highest-priority format wins, the last occurrence within it; "" when none."""
    if not response or not response.strip():
        return ""
    text = response.strip()
    for char in ",.!?;:'\"":
        text = text.strip(char)
    text = f" {text} "
    found = []
    for fmt, shape in (("parentheses", "({})"), ("period", "{}."), ("colon", "{}:"), ("right_paren", "{})"),
                       ("space", "{} ")):  # fmt: skip
        found += [(c, text.rfind(shape.format(c)), fmt) for c in choices if shape.format(c) in text]
    lower = text.lower()
    for phrase in _MCQ_PHRASES:
        at = lower.find(phrase)
        if at != -1:
            hits = ((c, text.find(c, at + len(phrase))) for c in choices)
            found += [(c, pos, "phrase") for c, pos in hits if pos != -1]
    stripped = text.strip()
    for c in choices:
        if stripped.startswith(c) and (len(stripped) == 1 or not stripped[1].isalpha()):
            found.append((c, 0, "start"))
        if stripped.endswith(c) and (len(stripped) == 1 or not stripped[-2].isalpha()):
            found.append((c, len(text) - 1, "end"))
    if not found:
        found = [(c, text.rfind(c), "fallback") for c in choices if c in text]
    if not found:
        return ""
    return max(found, key=lambda x: (_MCQ_PRIORITY[x[2]], x[1]))[0]


_CLASSIC_PREFIXES = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option isThe correct option is",
    "Best answer:Best option:",
)  # fmt: skip  (the last two are one string each upstream: adjacent literals without a comma)


def lmms_eval_classic_extract(s: str) -> str:
    """lmms-eval's Video-MME / LVBench extraction before 2026-04-11: strip answer prefixes, "" for a long answer with
    no A-D, else the first A-D anywhere."""
    s = s.strip()
    for prefix in _CLASSIC_PREFIXES:
        s = s.replace(prefix, "")
    match = re.search(r"[ABCD]", s)
    if len(s.split()) > 10 and match is None:
        return ""
    return match[0] if match else ""


_MV_PUNCT = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]


def lmms_eval_mvbench_process(answer: str) -> str:
    """lmms-eval MVBench's normalisation (``mcq_acc.process``): "X. text" → X; else punctuation stripped,
    lower-cased, and the first standalone a-e upper-cased, or the processed text itself."""
    m = re.match(r"^([A-E])\.\s*(.+)$", answer.strip(), re.IGNORECASE)
    if m:
        return m.group(1).upper()
    text = answer.replace("\n", " ").replace("\t", " ").strip()
    out = text
    for p in _MV_PUNCT:
        if (p + " " in text or " " + p in text) or re.search(r"(\d)(\,)(\d)", text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    # upstream passes re.UNICODE as `count`: at most 32 periods are removed
    out = re.sub(r"(?!<=\d)(\.)(?!\d)", "", out, count=int(re.UNICODE))
    out = out.strip("'").strip('"').strip(")").strip("(").strip().lower()
    letter = re.search(r"\b([A-E])\b", out, re.IGNORECASE)
    return letter.group(1).upper() if letter else out


def _letters(row) -> list[str]:
    return [str(o).strip()[0] for o in row.get("options") or []]


def _option_text(option: str) -> str:
    return re.sub(r"^\s*\(?[A-J][.)]\s*", "", str(option))


class Protocol:
    name = "reasoning"

    def __init__(self, benchmark: str):
        self.benchmark = benchmark

    def check(self, rows) -> None:
        """Raises ValueError when the protocol cannot score these rows."""

    def user_text(self, row) -> str | None:
        """The user message's text, or None for kfgrpo's prompt (``PromptArguments``)."""
        return None

    def verdict(self, prediction: str, row) -> Verdict:
        ptype, options = row["problem_type"], row.get("options")
        answer = parse_answer(prediction, ptype, options)
        score = score_answer(prediction, row["solution"], ptype, options) or 0.0
        return Verdict(answer, score, answer is not None)

    def aggregate(self, records) -> float:
        return sum(r["score"] for r in records) / len(records) if records else 0.0


class LmmsEval(Protocol):
    name = "lmms-eval"

    def check(self, rows):
        bad = next((r for r in rows if r["problem_type"] != "multiple_choice"), None)
        if bad is not None:
            raise UserError(
                f"--protocol {self.name} scores multiple choice only (Video-MME, LVBench, MVBench); question "
                f"{bad['id']} is {bad['problem_type']}: use --protocol reasoning or video-r1"
            )

    def user_text(self, row):
        if self.benchmark == "mvbench":
            options = "".join(f"({o.strip()[0]}) {_option_text(o)}\n" for o in row["options"])
            return "Question:" + row["problem"] + "\nOption:\n" + options + _MVBENCH_POST_PROMPT
        if self.benchmark == "lvbench":
            options = "\n".join(f"({o.strip()[0]}) {_option_text(o)}" for o in row["options"])
            return row["problem"] + "\n" + options + _LVBENCH_POST_PROMPT
        question = row["problem"] + "\n" + "\n".join(row["options"])
        return _VIDEOMME_OPTION_PROMPT + "\n" + question + "\n" + _VIDEOMME_POST_PROMPT

    def extract(self, prediction: str, row) -> str:
        choices = tuple(_letters(row)) if self.benchmark == "canonical" else ("A", "B", "C", "D")
        return lmms_eval_mcq_extract(prediction, choices)

    def verdict(self, prediction, row):
        if self.benchmark == "mvbench":
            pred = lmms_eval_mvbench_process(prediction)
            score = float(pred == lmms_eval_mvbench_process(row["solution"]))
            # upstream counts a prediction as answered unless the raw output is empty
            return Verdict(pred, score, prediction != "")
        pred = self.extract(prediction, row)
        return Verdict(pred, float(pred != "" and pred.lower() == str(row["solution"]).lower()), pred != "")

    def aggregate(self, records):
        if self.benchmark == "mvbench":  # lmms-eval's mvbench_aggregate_results: empty predictions not counted
            answered = [r for r in records if r["prediction"] != ""]
            return sum(r["score"] for r in answered) / len(answered) if answered else 0.0
        return super().aggregate(records)


class LmmsEvalClassic(LmmsEval):
    name = "lmms-eval-classic"

    def extract(self, prediction, row):
        return lmms_eval_classic_extract(prediction)


_VIDEO_R1_TEMPLATE = (
    "{Question}\n"
    "Please think about this question as if you were a human pondering deeply. "
    "Engage in an internal dialogue using expressions such as 'let me think', 'wait', 'Hmm', 'oh, I see', "
    "'let's break it down', etc, or other natural language thought expressions "
    "It's encouraged to include self-reflection or verification in the reasoning process. "
    "Provide your detailed reasoning between the <think> and </think> tags, and then give your final answer between "
    "the <answer> and </answer> tags."
)
_VIDEO_R1_TYPE = {
    "multiple_choice": " Please provide only the single option letter (e.g., A, B, C, D, etc.) within the "
    "<answer> </answer> tags.",
    "numerical": " Please provide the numerical value (e.g., 42 or 3.14) within the <answer> </answer> tags.",
    "ocr": " Please transcribe text from the image/video clearly and provide your text answer within the "
    "<answer> </answer> tags.",
    "free_form": " Please provide your text answer within the <answer> </answer> tags.",
    "regression": " Please provide the numerical value (e.g., 42 or 3.14) within the <answer> </answer> tags.",
}
_FIRST_ANSWER = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)


def mean_relative_accuracy(pred: float, target: float, start=0.5, end=0.95, interval=0.05) -> float:
    """Video-R1's MRA: the share of thresholds θ in [start, end] (step ``interval``) with relative error < 1 − θ,
    in float32 as upstream computes it with torch (so 8 against 10 scores 0.6: 0.2 is not below 1 − 0.8 there)."""
    import numpy as np

    f = np.float32
    rel = f(abs(f(pred) - f(target))) / (f(abs(f(target))) + f(1e-8))
    steps = int(round((end - start) / interval)) + 1
    return float(np.mean([rel < f(1) - f(start + i * interval) for i in range(steps)]))


def _video_r1_number(text: str):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


class VideoR1(Protocol):
    name = "video-r1"

    def check(self, rows):
        bad = next((r for r in rows if r["problem_type"] not in _VIDEO_R1_TYPE), None)
        if bad is not None:
            raise UserError(
                f"--protocol video-r1 has no rule for {bad['problem_type']} (question {bad['id']}): "
                "use --protocol reasoning"
            )

    def user_text(self, row):
        question = row["problem"]
        if row["problem_type"] == "multiple_choice":
            question = question + "Options:\n" + "".join(o + "\n" for o in row.get("options") or [])
        return _VIDEO_R1_TEMPLATE.format(Question=question) + _VIDEO_R1_TYPE[row["problem_type"]]

    def verdict(self, prediction, row):
        m = _FIRST_ANSWER.search(prediction)
        answered = bool(m and m.group(1).strip())
        out = m.group(1).strip() if answered else prediction
        gt, ptype = str(row["solution"]).strip(), row["problem_type"]
        score = 0.0
        if ptype == "multiple_choice":
            score = float(out.strip() == gt)
        elif ptype in ("numerical", "regression"):
            p, t = _video_r1_number(out), _video_r1_number(gt)
            if ptype == "numerical":
                same_kind = ("." in gt or "," in gt) == ("." in out or "," in out)
                score = float(same_kind and p is not None and t is not None and round(p, 2) == round(t, 2))
            elif p is not None and t is not None:
                score = mean_relative_accuracy(p, t)
        elif ptype == "ocr":
            score = ocr_score(out, gt)
        else:
            score = score_answer(f"<answer>{out}</answer>", gt, "free_form") or 0.0
        return Verdict(out, score, answered)

    def aggregate(self, records):
        """eval_bench's ``mean_acc``: the mean over the rows that are not regression (``mean_mra`` is reported
        apart); all rows when every row is regression."""
        rows = [r for r in records if r.get("problem_type") != "regression"] or records
        return super().aggregate(rows)


def get_protocol(name: str, benchmark: str) -> Protocol:
    classes = {"reasoning": Protocol, "lmms-eval": LmmsEval, "lmms-eval-classic": LmmsEvalClassic, "video-r1": VideoR1}
    if name not in classes:
        raise UserError(f"unknown protocol {name!r}; choose from {PROTOCOLS}")
    return classes[name](benchmark)


__all__ = ["DEFAULT_MAX_NEW_TOKENS", "PROTOCOLS", "Protocol", "Verdict", "get_protocol"]
