"""Evaluation protocols: lmms-eval's verdicts reproduced on recorded outputs, Video-R1's eval_bench rules, and what
results.json says about the protocol."""

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import kfgrpo.eval.run as run
from kfgrpo.eval import EvalArgs, evaluate
from kfgrpo.eval.protocols import get_protocol, mean_relative_accuracy

RECORDED = json.loads((Path(__file__).parent / "data" / "lmms_eval_verdicts.json").read_text())["records"]
OPTIONS = ["A. a red square", "B. a blue circle", "C. A man opening a door", "D. nothing"]


class Recorded:
    """A backend that answers with the recorded outputs, in order, and keeps what it was asked."""

    outputs: list[str] = []
    asked: list = []

    def __init__(self, args, model_args=None):
        Recorded.max_new_tokens = args.max_new_tokens

    def generate(self, conversations):
        Recorded.asked += conversations
        out, Recorded.outputs = Recorded.outputs[: len(conversations)], Recorded.outputs[len(conversations) :]
        return out


@pytest.fixture
def recorded(monkeypatch):
    Recorded.outputs, Recorded.asked = [r["output"] for r in RECORDED], []
    monkeypatch.setattr(run, "HFBackend", Recorded)
    return Recorded


def _videomme(root: Path, video: Path) -> Path:
    (root / "videomme").mkdir(parents=True)
    (root / "data").mkdir()
    shutil.copy(video, root / "data" / "v.mp4")
    rows = [
        dict(video_id="001", duration="short", domain="Synthetic", sub_category="s", url="", videoID="v",
             question_id=f"q{i:02d}", task_type="Counting", question="What happens first?", options=OPTIONS,
             answer=r["solution"])
        for i, r in enumerate(RECORDED)
    ]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), root / "videomme" / "test-00000-of-00001.parquet")
    return root


def _mvbench(root: Path, video: Path) -> Path:
    (root / "json").mkdir(parents=True)
    (root / "video" / "task").mkdir(parents=True)
    shutil.copy(video, root / "video" / "task" / "v.mp4")
    cands = [o[3:] for o in OPTIONS]
    items = [
        dict(
            video="v.mp4", question="What happens first?", candidates=cands, answer=cands["ABCD".index(r["solution"])]
        )
        for r in RECORDED
    ]
    (root / "json" / "task.json").write_text(json.dumps(items))
    return root


def _eval(tmp_path, benchmark, data, protocol, **kw):
    args = EvalArgs(model="m", benchmark=benchmark, data=str(data), output=str(tmp_path / f"out-{protocol}"),
                    num_frames=2, protocol=protocol, batch_size=8, **kw)  # fmt: skip
    results = evaluate(args, progress=False)
    preds = [json.loads(x) for x in (tmp_path / f"out-{protocol}" / "predictions.jsonl").read_text().splitlines()]
    return results, preds


@pytest.mark.parametrize("protocol,key", [("lmms-eval", "videomme_correct"), ("lmms-eval-classic", "classic_correct")])
def test_lmms_eval_verdicts_on_videomme_equal_lmms_evals(tmp_path, synth_train, recorded, protocol, key):
    video = next(synth_train.glob("**/*.mp4"))
    results, preds = _eval(tmp_path, "videomme", _videomme(tmp_path / "vmme", video), protocol)
    assert [p["correct"] for p in preds] == [r[key] for r in RECORDED]
    extract = "videomme" if protocol == "lmms-eval" else "classic"
    assert [p["answer"] for p in preds] == [r[extract] for r in RECORDED]  # the letters lmms-eval extracted
    assert results["accuracy"] == pytest.approx(sum(r[key] for r in RECORDED) / len(RECORDED))
    assert results["protocol"] == protocol and recorded.max_new_tokens == 16
    # lmms-eval's prompt: its Video-MME instruction, the lettered options, its post prompt; no system message
    (message,) = recorded.asked[0]
    text = message["content"][-1]["text"]
    assert text.startswith("Select the best answer to the following multiple-choice question based on the video")
    assert "D. nothing\n\nAnswer with the option's letter from the given choices directly." in text
    no_answer = sum(r[extract] == "" for r in RECORDED) / len(RECORDED)
    assert results["no_answer_rate"] == pytest.approx(no_answer)


def _lvbench(root: Path, video: Path) -> Path:
    (root / "videos").mkdir(parents=True)
    shutil.copy(video, root / "videos" / "v.mp4")
    question = "What happens first?\n" + "\n".join(f"({o[0]}) {o[3:]}" for o in OPTIONS)
    qa = [dict(uid=str(i), question=question, answer=f"({r['solution']})", question_type=["reasoning"],
               time_reference="") for i, r in enumerate(RECORDED)]  # fmt: skip
    (root / "meta.jsonl").write_text(json.dumps(dict(key="v", type="synthetic", qa=qa)) + "\n")
    return root / "meta.jsonl"


def test_lmms_eval_lvbench_prompt_and_letters(tmp_path, synth_train, recorded):
    """LVBench under lmms-eval: its prompt (question, `(X) text` options, its post prompt) and the same extraction
    as Video-MME, letter for letter."""
    video = next(synth_train.glob("**/*.mp4"))
    results, preds = _eval(tmp_path, "lvbench", _lvbench(tmp_path / "lvb", video), "lmms-eval")
    assert [p["answer"] for p in preds] == [r["videomme"] for r in RECORDED]
    assert [p["correct"] for p in preds] == [r["videomme_correct"] for r in RECORDED]
    (message,) = recorded.asked[0]
    assert message["content"][-1]["text"] == (
        "What happens first?\n(A) a red square\n(B) a blue circle\n(C) A man opening a door\n(D) nothing\n"
        "Answer the question with the option letter"
    )


def test_lmms_eval_mvbench_verdicts_and_aggregate(tmp_path, synth_train, recorded):
    video = next(synth_train.glob("**/*.mp4"))
    results, preds = _eval(tmp_path, "mvbench", _mvbench(tmp_path / "mvb", video), "lmms-eval")
    assert [p["correct"] for p in preds] == [r["mvbench_correct"] for r in RECORDED]
    answered = [r for r in RECORDED if r["output"] != ""]  # lmms-eval leaves empty predictions out
    assert results["accuracy"] == pytest.approx(sum(r["mvbench_correct"] for r in answered) / len(answered))
    (message,) = recorded.asked[0]
    assert message["content"][-1]["text"] == (
        "Question:What happens first?\nOption:\n(A) a red square\n(B) a blue circle\n(C) A man opening a door\n"
        "(D) nothing\nOnly give the best option.\n"
    )


def test_reasoning_protocol_records_no_answers(tmp_path, synth_train, recorded):
    video = next(synth_train.glob("**/*.mp4"))
    results, preds = _eval(tmp_path, "videomme", _videomme(tmp_path / "vmme", video), "reasoning")
    assert recorded.max_new_tokens == 1024 and results["template"]["system_prompt"]
    by_output = {p["prediction"]: p for p in preds}
    assert (
        by_output["A or C"]["answered"] is False and by_output["A woman appears in the first frame"]["answer"] is None
    )
    assert by_output["A man opening a door"]["answer"] == "C"
    assert results["no_answer_rate"] == pytest.approx(sum(not p["answered"] for p in preds) / len(preds))


def test_lmms_eval_refuses_what_it_cannot_score(tmp_path, synth_train):
    with pytest.raises(ValueError, match="multiple choice only"):
        evaluate(EvalArgs(model="m", benchmark="canonical", data=str(synth_train / "manifest.jsonl"),
                          output=str(tmp_path), protocol="lmms-eval"), progress=False)  # fmt: skip


ROW = dict(id="x", problem="How many?", options=None, solution="12", problem_type="numerical")


@pytest.mark.parametrize(
    "output,solution,ptype,score,answered",
    [
        ("<think>.</think><answer>B</answer>", "B", "multiple_choice", 1.0, True),
        ("<answer>B. blue</answer>", "B", "multiple_choice", 0.0, True),  # exact string equality
        ("B", "B", "multiple_choice", 1.0, False),  # no tag: the whole output, which equals the letter
        ("<answer>12</answer>", "12", "numerical", 1.0, True),
        ("<answer>12.0</answer>", "12", "numerical", 0.0, True),  # decimals must agree with the solution's
        ("<answer>1,200</answer>", "1200", "numerical", 0.0, True),  # a comma counts as a decimal mark there
        ("<answer>10</answer>", "10", "regression", 1.0, True),
        ("<answer>8</answer>", "10", "regression", 0.6, True),  # MRA: relative error 0.2 < 1 - θ for θ ≤ 0.75
        ("<answer>9</answer>", "10", "regression", 0.9, True),
        ("<answer>STOP HERE</answer>", "STOP THERE", "ocr", 0.5, True),
    ],
)
def test_video_r1_rules(output, solution, ptype, score, answered):
    v = get_protocol("video-r1", "canonical").verdict(output, dict(ROW, solution=solution, problem_type=ptype))
    assert v.score == pytest.approx(score) and v.answered is answered


def test_video_r1_prompt_and_mra():
    text = get_protocol("video-r1", "canonical").user_text(
        dict(ROW, problem="Which first?", options=OPTIONS, problem_type="multiple_choice")
    )
    assert text.startswith("Which first?Options:\nA. a red square\n") and text.endswith(
        "Please provide only the single option letter (e.g., A, B, C, D, etc.) within the <answer> </answer> tags."
    )
    assert mean_relative_accuracy(100, 100) == 1.0 and mean_relative_accuracy(0, 100) == 0.0
