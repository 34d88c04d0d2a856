import csv
import json

from kfgrpo.cli import main
from kfgrpo.prepare import PrepareArgs, prepare


def _read(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_video_r1(tmp_path, synth_train):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.mp4").write_bytes((synth_train / "videos" / "cs0-00000.mp4").read_bytes())
    (tmp_path / "img.jpg").write_bytes(b"jpg")
    items = [
        dict(
            problem_id=1,
            problem="Which came first?",
            data_type="video",
            problem_type="multiple choice",
            options=["A. red", "B. blue"],
            solution="<answer>B</answer>",
            path="./videos/a.mp4",
            data_source="x",
        ),
        dict(
            problem_id=2,
            problem="How many?",
            data_type="video",
            problem_type="numerical",
            options=[],
            solution="<answer>3</answer>",
            path="./videos/a.mp4",
            data_source="x",
        ),
        dict(
            problem_id=3,
            problem="Area?",
            data_type="image",
            problem_type="regression",
            options=[],
            solution="<answer>2.5</answer>",
            path="./img.jpg",
            data_source="y",
        ),
        dict(
            problem_id=4,
            problem="?",
            data_type="video",
            problem_type="essay",
            options=[],
            solution="<answer>x</answer>",
            path="./videos/a.mp4",
        ),
        dict(
            problem_id=5,
            problem="?",
            data_type="video",
            problem_type="OCR",
            options=[],
            solution="<answer>x</answer>",
            path="./videos/missing.mp4",
        ),
        dict(problem_id=6, data_type="video", problem_type="OCR", solution="x", path="./videos/a.mp4"),
    ]
    src = tmp_path / "Video-R1-260k.json"
    src.write_text(json.dumps(items))
    out = tmp_path / "m" / "manifest.jsonl"
    summary = prepare(PrepareArgs(format="video-r1", input=str(src), output=str(out), video_root=str(tmp_path)))
    assert summary == dict(written=2, skipped=1, failed=3)
    rows = _read(out)
    assert rows[0] == dict(
        id="1",
        video="../videos/a.mp4",
        problem="Which came first?",
        options=["A. red", "B. blue"],
        solution="B",
        problem_type="multiple_choice",
        source_problem_type="multiple choice",
        data_type="video",
        data_source="x",
    )
    assert (out.parent / rows[0]["video"]).exists()
    assert rows[1]["solution"] == "3" and rows[1]["problem_type"] == "numerical"
    errors = _read(tmp_path / "m" / "manifest.jsonl.errors.jsonl")
    assert [(e["line"], e["id"]) for e in errors] == [(4, "4"), (5, "5"), (6, "6")]
    assert "unknown problem_type" in errors[0]["reason"] and "video not found" in errors[1]["reason"]
    assert "missing field 'problem'" in errors[2]["reason"]
    kept = prepare(
        PrepareArgs(
            format="video-r1",
            input=str(src),
            output=str(tmp_path / "k.jsonl"),
            video_root=str(tmp_path),
            keep_images=True,
        )
    )
    assert kept["written"] == 3 and _read(tmp_path / "k.jsonl")[2]["source_problem_type"] == "regression"


def test_nextqa(tmp_path, synth_train):
    (tmp_path / "vids").mkdir()
    (tmp_path / "vids" / "4010069381.mp4").write_bytes((synth_train / "videos" / "cs0-00001.mp4").read_bytes())
    header = [
        "video",
        "frame_count",
        "width",
        "height",
        "question",
        "answer",
        "qid",
        "type",
        "a0",
        "a1",
        "a2",
        "a3",
        "a4",
    ]
    rows = [
        [
            "4010069381",
            "369",
            "640",
            "480",
            "why did the boy pick up the ball",
            "2",
            "6",
            "CW",
            "x",
            "y",
            "z",
            "u",
            "v",
        ],
        ["4010069381", "369", "640", "480", "what happened next", "7", "7", "TN", "x", "y", "z", "u", "v"],
        ["999", "10", "640", "480", "what", "0", "1", "DO", "x", "y", "z", "u", "v"],
    ]
    src = tmp_path / "val.csv"
    with open(src, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    out = tmp_path / "nextqa.jsonl"
    assert (
        main(
            [
                "prepare",
                "--format",
                "nextqa",
                "--input",
                str(src),
                "--video-root",
                str(tmp_path / "vids"),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    (row,) = _read(out)
    assert row["id"] == "4010069381-6" and row["solution"] == "C" and row["options"][2] == "C. z"
    assert row["problem"] == "why did the boy pick up the ball?" and row["type"] == "CW"
    errors = _read(tmp_path / "nextqa.jsonl.errors.jsonl")
    assert [e["line"] for e in errors] == [3, 4] and "out of range" in errors[0]["reason"]


def test_generic_jsonl(tmp_path, synth_train):
    (tmp_path / "a.mp4").write_bytes((synth_train / "videos" / "cs0-00000.mp4").read_bytes())
    lines = [
        json.dumps(dict(qid="q1", clip="a.mp4", question="What?", answer="A", choices=["red", "blue"], extra=1)),
        "{oops",
        json.dumps(dict(qid="q3", clip="a.mp4")),
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "o.jsonl"
    s = prepare(
        PrepareArgs(
            format="jsonl",
            input=str(src),
            output=str(out),
            video_root=str(tmp_path),
            field_map=["id=qid", "video=clip", "problem=question", "solution=answer", "options=choices"],
        )
    )
    assert s == dict(written=1, skipped=0, failed=2)
    (row,) = _read(out)
    assert row["options"] == ["A. red", "B. blue"] and row["extra"] == 1 and row["problem_type"] == "multiple_choice"
    errors = _read(tmp_path / "o.jsonl.errors.jsonl")
    assert [e["line"] for e in errors] == [2, 3]
    assert "malformed JSON" in errors[0]["reason"] and "missing fields: problem, solution" in errors[1]["reason"]


def test_video_r1_paths_leaving_the_video_root_are_refused(tmp_path, synth_train, capsys):
    """A downloaded JSON naming ``../../../../etc/passwd`` (or an absolute path elsewhere) does not become a manifest
    row unless --allow_outside_root; a repeated problem_id becomes X#2 with one warning line."""
    root = tmp_path / "raw"
    (root / "videos").mkdir(parents=True)
    (root / "videos" / "a.mp4").write_bytes((synth_train / "videos" / "cs0-00000.mp4").read_bytes())
    base = dict(problem="Which came first?", data_type="video", problem_type="multiple choice",
                options=["A. red", "B. blue"], solution="<answer>B</answer>")  # fmt: skip
    items = [
        dict(base, problem_id=1, path="./videos/a.mp4"),
        dict(base, problem_id=2, path="../../../../etc/passwd"),
        dict(base, problem_id=3, path="/etc/passwd"),
        dict(base, problem_id=1, path="./videos/a.mp4", problem="Which came last?"),
    ]
    src = tmp_path / "Video-R1-260k.json"
    src.write_text(json.dumps(items))
    out = tmp_path / "manifest.jsonl"
    args = PrepareArgs(format="video-r1", input=str(src), output=str(out), video_root=str(root), check_videos=False)
    assert prepare(args) == dict(written=2, skipped=0, failed=2)
    assert [r["id"] for r in _read(out)] == ["1", "1#2"]
    errors = _read(tmp_path / "manifest.jsonl.errors.jsonl")
    assert [e["id"] for e in errors] == ["2", "3"] and all("outside the video root" in e["reason"] for e in errors)
    assert capsys.readouterr().err.count("repeated id") == 1
    args.allow_outside_root = True
    assert prepare(args)["written"] == 4


def test_a_field_map_key_that_is_not_canonical_is_one_line(tmp_path, capsys):
    from kfgrpo.cli import main

    args = ["prepare", "--format", "jsonl", "--input", str(tmp_path / "x.jsonl"), "--video-root", str(tmp_path)]
    assert main([*args, "--output", str(tmp_path / "m.jsonl"), "--field-map", "question=problem"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--field-map 'question=problem'" in err and "'problem_type'" in err
    assert not (tmp_path / "m.jsonl").exists()
