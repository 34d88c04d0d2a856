"""The canonical manifest row: one definition of its fields, problem types, option letters and video paths."""

import pytest

from kfgrpo.manifest import OPTION_LETTERS, RowError, letter_options, parse_line, resolve_video, validate_row
from kfgrpo.rewards.accuracy import SCORERS, score_answer

ROW = dict(id="q1", video="v.mp4", problem="?", solution="B", problem_type="multiple_choice")


@pytest.mark.parametrize(
    "line, reason",
    [
        ("{not json", "malformed JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"id": "q1", "video": "v.mp4"}', "missing fields: problem, solution, problem_type"),
        ('{"id": "q", "video": "v", "problem": "?", "solution": 1, "problem_type": "essay"}', "unknown problem_type"),
        (
            '{"id": "q", "video": "v", "problem": "?", "solution": 1, "problem_type": "numerical", "options": "A"}',
            "list",
        ),
    ],
)
def test_bad_rows_say_why(line, reason):
    with pytest.raises(RowError, match=reason):
        parse_line(line)


def test_valid_row_is_normalised():
    row = validate_row(dict(ROW, solution=3, problem_type="numerical"))
    assert row["solution"] == "3" and row["options"] == []


def test_one_alphabet_for_lettering_and_scoring():
    options = letter_options([f"option {i}" for i in range(10)])
    assert [o[0] for o in options] == list(OPTION_LETTERS) == list("ABCDEFGHIJ")
    assert letter_options(["A. kept", "new"]) == ["A. kept", "B. new"]
    with pytest.raises(RowError, match="at most 10"):
        letter_options(["x"] * 11)
    for letter in OPTION_LETTERS:  # I and J score too
        assert score_answer(f"<answer>{letter}</answer>", letter, "multiple_choice") == 1.0


def test_every_problem_type_has_a_scorer():
    from kfgrpo.manifest import PROBLEM_TYPES

    assert set(SCORERS) == set(PROBLEM_TYPES)


def test_video_paths_resolve_against_the_manifest_folder(tmp_path):
    assert resolve_video("clips/a.mp4", tmp_path) == str(tmp_path / "clips" / "a.mp4")
    assert resolve_video("/abs/a.mp4", tmp_path) == "/abs/a.mp4"


def test_eval_reports_the_malformed_manifest_line(tmp_path):
    from kfgrpo.eval.benchmarks import read_benchmark

    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"id": "ok", "video": "a.mp4", "problem": "?", "solution": "A", "problem_type": "multiple_choice"}\n{"id": "bad"}\n'
    )
    with pytest.raises(RowError, match=r"m.jsonl:2: missing fields"):
        read_benchmark("canonical", str(manifest))


def test_an_answer_that_is_not_among_the_options_is_a_row_error():
    import pytest

    from kfgrpo.manifest import RowError, validate_row

    row = dict(id="x", video="v.mp4", problem="?", problem_type="multiple_choice", options=["A. a", "B. b"])
    for solution in ("E", "<answer>E</answer>", "(E)"):
        with pytest.raises(RowError, match="not among the options"):
            validate_row(dict(row, solution=solution))
    for solution in ("B", "B. b", "<answer>A</answer>", "a b"):  # a letter among them, or text (not a letter)
        assert validate_row(dict(row, solution=solution))["solution"] == solution
