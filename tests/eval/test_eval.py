import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kfgrpo.cli import main
from kfgrpo.errors import UserError
from kfgrpo.eval import EvalArgs, evaluate, read_benchmark
from kfgrpo.eval.run import conversation_images


def _synth_rows(synth_train):
    return [json.loads(x) for x in (synth_train / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def layouts(synth_train, tmp_path_factory):
    """The four public layouts, written from ChronoSynth videos and questions."""
    root = tmp_path_factory.mktemp("benchmarks")
    rows = [r for r in _synth_rows(synth_train) if r["problem_type"] == "multiple_choice"][:6]
    # Video-MME: parquet + data/<videoID>.mp4; one question points at a missing video.
    (root / "vmme" / "videomme").mkdir(parents=True)
    (root / "vmme" / "data").mkdir()
    table = []
    for i, r in enumerate(rows):
        vid = r["video"].split("/")[-1][:-4]
        shutil.copy(synth_train / r["video"], root / "vmme" / "data" / f"{vid}.mp4")
        table.append(
            dict(
                video_id=f"{i:03d}",
                duration=["short", "medium"][i % 2],
                domain="Synthetic",
                sub_category=r["family"],
                url="",
                videoID=vid,
                question_id=f"{i:03d}-1",
                task_type=r["family"].capitalize(),
                question=r["problem"],
                options=r["options"],
                answer=r["solution"],
            )
        )
    table.append(dict(table[0], question_id="missing-1", videoID="nope"))
    pq.write_table(pa.Table.from_pylist(table), root / "vmme" / "videomme" / "test-00000-of-00001.parquet")
    # LVBench: JSONL with the options inside the question.
    (root / "lvb" / "videos").mkdir(parents=True)
    with open(root / "lvb" / "video_info.meta.jsonl", "w") as fh:
        for i, r in enumerate(rows[:4]):
            key = f"v{i}"
            shutil.copy(synth_train / r["video"], root / "lvb" / "videos" / f"{key}.mp4")
            question = r["problem"] + "\n" + "\n".join(f"({o[0]}) {o[3:]}" for o in r["options"])
            fh.write(
                json.dumps(
                    dict(
                        key=key,
                        type="synthetic",
                        qa=[
                            dict(
                                uid=str(100 + i),
                                question=question,
                                answer=f"({r['solution']})",
                                question_type=["temporal reasoning", r["family"]],
                                time_reference="",
                            )
                        ],
                    )
                )
                + "\n"
            )
    # MVBench: json/<task>.json + video/<task>/<file>.
    for task in ("action_sequence", "object_existence"):
        (root / "mvb" / "video" / task).mkdir(parents=True)
    (root / "mvb" / "json").mkdir()
    for task, chunk in (("action_sequence", rows[:2]), ("object_existence", rows[2:4])):
        items = []
        for r in chunk:
            name = r["video"].split("/")[-1]
            shutil.copy(synth_train / r["video"], root / "mvb" / "video" / task / name)
            cands = [o[3:] for o in r["options"]]
            items.append(
                dict(video=name, question=r["problem"], candidates=cands, answer=cands["ABCD".index(r["solution"])])
            )
        (root / "mvb" / "json" / f"{task}.json").write_text(json.dumps(items))
    return dict(
        videomme=root / "vmme",
        lvbench=root / "lvb" / "video_info.meta.jsonl",
        mvbench=root / "mvb",
        canonical=synth_train / "manifest.jsonl",
    )


def test_readers(layouts, synth_train):
    vm = read_benchmark("videomme", str(layouts["videomme"]))
    assert len(vm) == 7 and vm[0]["options"][0].startswith("A. ") and vm[0]["categories"]["duration"] == "short"
    lv = read_benchmark("lvbench", str(layouts["lvbench"]))
    first = _synth_rows(synth_train)
    mc = [r for r in first if r["problem_type"] == "multiple_choice"]
    assert lv[0]["problem"] == mc[0]["problem"] and lv[0]["options"] == mc[0]["options"]
    assert lv[0]["solution"] == mc[0]["solution"] and lv[0]["categories"]["question_type"][0] == "temporal reasoning"
    mv = read_benchmark("mvbench", str(layouts["mvbench"]))
    assert [r["solution"] for r in mv] == [r["solution"] for r in mc[:4]]
    assert {r["categories"]["task"] for r in mv} == {"action_sequence", "object_existence"}
    can = read_benchmark("canonical", str(layouts["canonical"]))
    assert len(can) == 24 and can[0]["categories"]["family"] == "order"


@pytest.mark.parametrize("benchmark", ["videomme", "lvbench", "mvbench", "canonical"])
@pytest.mark.parametrize("frames", ["tad", "uniform"])
def test_eval_writes_results_and_predictions(tiny_model_dir, layouts, tmp_path, benchmark, frames):
    out = tmp_path / "out"
    assert (
        main(
            [
                "eval",
                "--model",
                tiny_model_dir,
                "--benchmark",
                benchmark,
                "--data",
                str(layouts[benchmark]),
                "--frames",
                frames,
                "--num-frames",
                "4",
                "--output",
                str(out),
                "--limit",
                "8",
                "--max_new_tokens",
                "6",
                "--max_pixels",
                "3136",
            ]
            + (["--probe", "shuffle"] if frames == "tad" else [])
        )
        == 0
    )
    res = json.loads((out / "results.json").read_text())
    lines = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    preds = [p for p in lines if "unreadable" not in p]  # one line per question; unreadable ones say why
    assert len(lines) == res["num_questions"]
    assert res["frames"] == frames and res["num_frames"] == 4 and res["decoding"]["do_sample"] is False
    assert res["template"]["prompt_template"] and res["model"] == tiny_model_dir
    assert len(preds) == res["num_scored"] == res["num_questions"] - res["num_unreadable"]
    assert all(len(p["timestamps"]) == 4 and p["timestamps"] == sorted(p["timestamps"]) for p in preds)
    assert res["per_category"]
    assert (res["tad_config"] is not None) == (frames == "tad")
    if frames == "tad":
        assert res["frame_sensitivity"] == pytest.approx(res["accuracy"] - res["accuracy_shuffled"])
        assert 0 < res["chance"] < 1
    if benchmark == "videomme":
        assert res["num_unreadable"] == 1 and res["unreadable"][0]["id"] == "missing-1"


def test_scores_and_breakdowns_are_consistent(tiny_model_dir, layouts, tmp_path, monkeypatch):
    """With an answer-A-always model, accuracy is the share of A solutions, per category too."""
    import kfgrpo.eval.run as run

    class AlwaysA:
        def __init__(self, args, model_args=None):
            pass

        def generate(self, conversations):
            return ["<think>.</think><answer>A</answer>"] * len(conversations)

    monkeypatch.setattr(run, "HFBackend", AlwaysA)
    res = evaluate(
        EvalArgs(model="m", benchmark="videomme", data=str(layouts["videomme"]), output=str(tmp_path), num_frames=2),
        progress=False,
    )
    rows = [r for r in read_benchmark("videomme", str(layouts["videomme"])) if r["id"] != "missing-1"]
    assert res["accuracy"] == pytest.approx(sum(r["solution"] == "A" for r in rows) / len(rows))
    assert res["accuracy_all"] == pytest.approx(res["accuracy"] * len(rows) / (len(rows) + 1))
    for dur, stats in res["per_category"]["duration"].items():
        sub = [r for r in rows if r["categories"]["duration"] == dur]
        assert stats["n"] == len(sub) and stats["accuracy"] == pytest.approx(
            sum(r["solution"] == "A" for r in sub) / len(sub)
        )


def test_chance_accuracy():
    from kfgrpo.eval.run import chance_accuracy

    mc = dict(problem_type="multiple_choice", options=["A. x", "B. y", "C. z", "D. w"], solution="A")
    assert chance_accuracy([mc]) == pytest.approx(0.25)
    # Numbers: a uniform pick among the split's distinct answers {2, 3, 4}.
    nums = [dict(problem_type="numerical", options=None, solution=str(n)) for n in (2, 3, 3, 4)]
    assert chance_accuracy(nums) == pytest.approx(1 / 3)
    assert chance_accuracy([mc, *nums]) == pytest.approx((0.25 + 4 / 3) / 5)


def test_frame_sensitivity_is_real_minus_shuffled(tiny_model_dir, layouts, tmp_path, monkeypatch):
    """A stub that answers A on frames in their real order and Z otherwise: shuffling costs it exactly its wins."""
    import kfgrpo.eval.run as run

    real_frames, row_of = {}, {}
    real_conversation = run.build_conversation

    def recording(row, frames, timestamps, prompt_args, protocol=None, **kw):
        conv = real_conversation(row, frames, timestamps, prompt_args, protocol, **kw)
        real_frames.setdefault(row["id"], list(frames))  # the first call per row carries the real order
        row_of[id(conv)] = row["id"]
        return conv

    def images(conv):
        return [
            p["image"] for m in conv if isinstance(m["content"], list) for p in m["content"] if p["type"] == "image"
        ]

    class OrderAware:
        def __init__(self, args, model_args=None):
            pass

        def generate(self, conversations):
            return [
                "<answer>A</answer>"
                if all(a is b for a, b in zip(images(c), real_frames[row_of[id(c)]]))
                else "<answer>Z</answer>"
                for c in conversations
            ]

    monkeypatch.setattr(run, "HFBackend", OrderAware)
    monkeypatch.setattr(run, "build_conversation", recording)
    res = evaluate(
        EvalArgs(
            model="m",
            benchmark="videomme",
            data=str(layouts["videomme"]),
            output=str(tmp_path),
            num_frames=3,
            probe="shuffle",
            results_file="eval.json",
        ),
        progress=False,
    )
    assert (tmp_path / "eval.json").exists() and not (tmp_path / "results.json").exists()
    rows = [r for r in read_benchmark("videomme", str(layouts["videomme"])) if r["id"] != "missing-1"]
    share_a = sum(r["solution"] == "A" for r in rows) / len(rows)
    assert res["accuracy"] == pytest.approx(share_a) and res["chance"] == pytest.approx(0.25)
    assert res["accuracy_shuffled"] == 0.0 and res["frame_sensitivity"] == pytest.approx(share_a)


def test_blind_probe_answers_the_question_without_frames(tiny_model_dir, layouts, tmp_path, monkeypatch):
    """A stub that answers A when it sees frames and B when it sees none: the blind accuracy is the share of B."""
    import kfgrpo.eval.run as run

    seen = []

    class FrameAware:
        def __init__(self, args, model_args=None):
            pass

        def generate(self, conversations):
            counts = [len(run.conversation_images(c)) for c in conversations]
            seen.extend(counts)
            return ["<answer>A</answer>" if n else "<answer>B</answer>" for n in counts]

    monkeypatch.setattr(run, "HFBackend", FrameAware)
    res = evaluate(
        EvalArgs(model="m", benchmark="videomme", data=str(layouts["videomme"]), output=str(tmp_path), num_frames=3,
                 probe="blind"),
        progress=False,
    )  # fmt: skip
    rows = [r for r in read_benchmark("videomme", str(layouts["videomme"])) if r["id"] != "missing-1"]
    share = {x: sum(r["solution"] == x for r in rows) / len(rows) for x in "AB"}
    assert seen.count(0) == len(rows) and seen.count(3) == len(rows)  # each question with its frames, then without
    assert res["accuracy"] == pytest.approx(share["A"]) and res["accuracy_blind"] == pytest.approx(share["B"])
    assert res["blind_gap"] == pytest.approx(share["A"] - share["B"])
    assert "frame_sensitivity" not in res


def test_eval_plot(tmp_path, tiny_model_dir, layouts):
    dirs = []
    for frames in ("tad", "uniform"):
        out = tmp_path / frames
        evaluate(
            EvalArgs(
                model=tiny_model_dir,
                benchmark="mvbench",
                data=str(layouts["mvbench"]),
                output=str(out),
                frames=frames,
                num_frames=2,
                max_new_tokens=4,
            ),
            progress=False,
        )
        dirs.append(str(out))
    assert main(["eval-plot", *dirs, "--output", str(tmp_path / "cmp.png")]) == 0
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"
    # The CPU demo writes eval.json (`results_file`): a folder holding it, or the file itself, plots too.
    (tmp_path / "demo").mkdir()
    (tmp_path / "tad" / "results.json").rename(tmp_path / "demo" / "eval.json")
    assert (
        main(["eval-plot", str(tmp_path / "demo"), dirs[1] + "/results.json", "--output", str(tmp_path / "b.png")])
        == 0
    )
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(FileNotFoundError, match="eval.json"):
        main(["eval-plot", str(tmp_path / "tad"), "--output", str(tmp_path / "c.png")])


class _Counting:
    """A deterministic stub backend that answers from the frames' content and counts the questions it answered;
    ``fail_after`` questions into a run it raises, as an interrupted job would."""

    answered = []
    fail_after = None

    def __init__(self, args, model_args=None):
        pass

    def generate(self, conversations):
        if _Counting.fail_after is not None and len(_Counting.answered) >= _Counting.fail_after:
            raise KeyboardInterrupt
        out = []
        for conv in conversations:
            images = conversation_images(conv)
            out.append(f"<answer>{'ABCD'[sum(img.getpixel((0, 0))[0] for img in images) % 4]}</answer>")
        _Counting.answered += conversations
        return out


def test_eval_streams_and_resumes_after_an_interruption(tiny_model_dir, layouts, tmp_path, monkeypatch, capsys):
    import kfgrpo.eval.run as run

    monkeypatch.setattr(run, "HFBackend", _Counting)

    def args(out):
        return EvalArgs(
            model="m", benchmark="videomme", data=str(layouts["videomme"]), output=str(out), num_frames=3, batch_size=2
        )

    _Counting.answered, _Counting.fail_after = [], None
    whole = evaluate(args(tmp_path / "whole"), progress=False)
    expected = (tmp_path / "whole" / "predictions.jsonl").read_text().splitlines()
    total = len(_Counting.answered)

    _Counting.answered, _Counting.fail_after = [], 4  # dies in the third batch
    with pytest.raises(KeyboardInterrupt):
        evaluate(args(tmp_path / "cut"), progress=False)
    written = (tmp_path / "cut" / "predictions.jsonl").read_text().splitlines()
    assert 0 < len(written) < len(expected)
    with open(tmp_path / "cut" / "predictions.jsonl", "a") as fh:
        fh.write('{"id": "half a line')  # killed mid-write
    _Counting.answered, _Counting.fail_after = [], None
    resumed = evaluate(args(tmp_path / "cut"), progress=False)
    assert len(_Counting.answered) == total - 4  # only the questions not yet written were answered again
    got = (tmp_path / "cut" / "predictions.jsonl").read_text().splitlines()
    assert sorted(got) == sorted(expected)
    for key in ("accuracy", "num_scored", "num_unreadable", "chance"):
        assert resumed[key] == whole[key]

    other = args(tmp_path / "cut")
    other.num_frames = 2
    with pytest.raises(UserError, match="other settings"):
        evaluate(other, progress=False)

    # A kill in the middle of writing the last record: that question is dropped and answered again, nothing else.
    torn = tmp_path / "torn"
    torn.mkdir()
    for name in ("predictions.jsonl", "eval_state.json"):
        (torn / name).write_bytes((tmp_path / "whole" / name).read_bytes())
    lines = (torn / "predictions.jsonl").read_text().splitlines()
    answered = next(i for i, line in enumerate(lines) if "unreadable" not in json.loads(line))
    lines.append(lines.pop(answered))  # the record being written when killed: one the model answered
    (torn / "predictions.jsonl").write_text("".join(x + "\n" for x in lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    _Counting.answered = []
    capsys.readouterr()
    assert evaluate(args(torn), progress=True)["accuracy"] == whole["accuracy"]
    assert len(_Counting.answered) == 1  # that question alone, and the rerun says so
    assert f"{len(expected) - 1} finished prediction(s) reused from" in capsys.readouterr().out
    assert sorted((torn / "predictions.jsonl").read_text().splitlines()) == sorted(expected)


def test_a_retrained_model_is_not_resumed(layouts, tmp_path, monkeypatch):
    """Predictions of a model folder's earlier weights are refused, not resumed (a model retrained in place)."""
    import os

    import kfgrpo.eval.run as run

    monkeypatch.setattr(run, "HFBackend", _Counting)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"v1")
    args = EvalArgs(model=str(model), benchmark="videomme", data=str(layouts["videomme"]), output=str(model),
                    num_frames=2, limit=2)  # fmt: skip
    _Counting.answered, _Counting.fail_after = [], None
    evaluate(args, progress=False)
    evaluate(args, progress=False)  # the same weights: everything resumed, although results.json is in the folder
    assert len(_Counting.answered) == 2
    (model / "model.safetensors").write_bytes(b"v2 retrained")
    os.utime(model / "model.safetensors", ns=(1, 1))
    with pytest.raises(UserError, match="version of the model's weights"):
        evaluate(args, progress=False)


def test_eval_skips_malformed_lines_and_videos_outside_the_root(tmp_path, synth_train, monkeypatch):
    """A malformed manifest line or one naming a video outside the manifest's folder is reported in results.json and
    skipped, as `kfgrpo tad` does; the other questions are answered."""
    import kfgrpo.eval.run as run

    class Echo:
        def __init__(self, args, model_args=None):
            pass

        def generate(self, conversations):
            return ["<answer>A</answer>"] * len(conversations)

    monkeypatch.setattr(run, "HFBackend", Echo)
    rows = [json.loads(x) for x in (synth_train / "manifest.jsonl").read_text().splitlines()[:2]]
    data = tmp_path / "bench"
    (data / "videos").mkdir(parents=True)
    shutil.copy(synth_train / rows[0]["video"], data / "videos" / "a.mp4")
    lines = [json.dumps(dict(rows[0], video="videos/a.mp4")), "{not json",
             json.dumps(dict(rows[1], id="escape", video="../../etc/passwd"))]  # fmt: skip
    (data / "m.jsonl").write_text("\n".join(lines) + "\n")
    args = EvalArgs(model="m", benchmark="canonical", data=str(data / "m.jsonl"), output=str(tmp_path / "out"),
                    num_frames=2)  # fmt: skip
    results = evaluate(args, progress=False)
    assert results["num_questions"] == 1 and results["num_invalid"] == 2
    assert [e["line"] for e in results["invalid"]] == [2, 3]
    assert "malformed JSON" in results["invalid"][0]["reason"]
    assert "outside the video root" in results["invalid"][1]["reason"]


def test_eval_resume_never_copies_one_questions_score_to_another(tmp_path, synth_train, monkeypatch):
    """Two questions with one id: both are answered (the second as `id#2`), and an interrupted run resumed on the
    same output answers the one it had not, instead of copying the first one's score."""
    import kfgrpo.eval.run as run

    asked = []

    class Answers:
        def __init__(self, args, model_args=None):
            pass

        def generate(self, conversations):
            asked.extend(conversations)
            return ["<answer>A</answer>" if "first" in c[-1]["content"][-1]["text"] else "<answer>B</answer>"
                    for c in conversations]  # fmt: skip

    monkeypatch.setattr(run, "HFBackend", Answers)
    rows = [json.loads(x) for x in (synth_train / "manifest.jsonl").read_text().splitlines()]
    order = [r for r in rows if r["problem_type"] == "multiple_choice"][:1][0]
    data = tmp_path / "bench"
    (data / "videos").mkdir(parents=True)
    shutil.copy(synth_train / order["video"], data / "videos" / "a.mp4")
    first = dict(order, id="q", video="videos/a.mp4", problem="Which object appeared first?", solution="A")
    second = dict(order, id="q", video="videos/a.mp4", problem="Which object appeared last?", solution="B")
    (data / "m.jsonl").write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n")
    out = tmp_path / "out"
    args = EvalArgs(model="m", benchmark="canonical", data=str(data / "m.jsonl"), output=str(out), num_frames=2,
                    batch_size=1, limit=1)  # fmt: skip
    evaluate(args, progress=False)  # interrupted after the first question
    args.limit = None
    results = evaluate(args, progress=False)
    preds = {p["id"]: p for p in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    assert sorted(preds) == ["q", "q#2"] and len(asked) == 2
    assert preds["q"]["answer"] == "A" and preds["q#2"]["answer"] == "B"
    assert results["accuracy"] == 1.0


def test_eval_on_the_video_path(tiny_model_dir, layouts, tmp_path):
    """``--visual_input video``: the hf backend answers on the frames as one video (the blind probe on none)."""
    import kfgrpo.eval.run as run

    seen = []
    generate = run.HFBackend.generate

    def recording(self, conversations):
        seen.extend(
            sum(
                len(p["video"])
                for m in c
                if isinstance(m["content"], list)
                for p in m["content"]
                if p["type"] == "video"
            )
            for c in conversations
        )
        assert not any(conversation_images(c) for c in conversations)
        return generate(self, conversations)

    run.HFBackend.generate = recording
    try:
        args = ["eval", "--model", tiny_model_dir, "--benchmark", "videomme", "--data", str(layouts["videomme"])]
        args += ["--num-frames", "4", "--output", str(tmp_path), "--limit", "3", "--max_new_tokens", "4"]
        assert main([*args, "--max_pixels", "3136", "--visual_input", "video", "--probe", "blind"]) == 0
    finally:
        run.HFBackend.generate = generate
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["visual_input"] == "video" and res["num_scored"] == 3
    assert seen == [4, 4, 4, 0, 0, 0]  # the questions on their 4-frame videos, then blind


def test_visual_input_auto_follows_training_then_the_protocol(tiny_model_dir, tmp_path):
    from transformers import AutoConfig

    from kfgrpo.data_utils import PromptArguments
    from kfgrpo.eval.run import EvalModelConfig, resolve_visual_input

    trained = tmp_path / "trained"
    shutil.copytree(tiny_model_dir, trained)
    config = AutoConfig.from_pretrained(trained)
    config.kfgrpo_visual_input = "video"
    config.save_pretrained(trained)

    def mode(model, protocol="reasoning", prompt=None, **kw):
        args = EvalArgs(model=str(model), benchmark="videomme", data="d", output="o", protocol=protocol, **kw)
        return resolve_visual_input(args, prompt or PromptArguments(), EvalModelConfig())

    assert mode(trained) == "video" and mode(trained, "lmms-eval") == "video"
    assert mode(tiny_model_dir) == "images" and mode(tiny_model_dir, visual_input="video") == "video"
    assert mode(tiny_model_dir, "lmms-eval") == "video" and mode(tiny_model_dir, "video-r1") == "video"
    assert mode(tiny_model_dir, "lmms-eval", visual_input="images") == "images"
    assert mode(trained, backend="vllm") == "video"
    with pytest.raises(UserError, match="no frame_template"):
        mode(trained, prompt=PromptArguments(frame_template="Frame {index}:"))
