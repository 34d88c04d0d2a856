"""kfgrpo blind-filter: questions answered without their frames are dropped; the rest is a TAD cache that trains."""

import json

import pytest

from kfgrpo import blind_filter
from kfgrpo.cli import main


def _argv(model, cache, out, *extra):
    return ["blind-filter", "--model_name_or_path", model, "--dataset_name", str(cache), "--output", str(out),
            "--num_samples", "2", "--max_new_tokens", "4", *extra]  # fmt: skip


def test_the_model_answers_the_question_alone(tiny_model_dir, frame_cache):
    """The real generation path: N samples per question, no image in the prompt, a share in [0, 1]."""
    from kfgrpo.cache import load_tad_dataset
    from kfgrpo.data_utils import KFScriptArguments, to_grpo_dataset
    from kfgrpo.model_utils import KFModelConfig, load_model, load_processor

    rows = to_grpo_dataset(load_tad_dataset(frame_cache), KFScriptArguments(dataset_name="x"))
    rows = [rows[i] for i in range(3)]
    model_args = KFModelConfig(model_name_or_path=tiny_model_dir)
    processor = load_processor(model_args)
    seen = []
    apply = processor.apply_chat_template

    def spy(conversations, **kw):
        seen.extend(p for c in conversations for m in c for p in m["content"] if isinstance(m["content"], list))
        return apply(conversations, **kw)

    processor.apply_chat_template = spy
    args = blind_filter.BlindFilterArguments(output="x", num_samples=3, max_new_tokens=4)
    out = blind_filter.blind_accuracy(load_model(model_args), processor, rows, args)
    assert [r["id"] for r in out] == [r["id"] for r in rows]
    assert all(len(r["answers"]) == 3 and 0.0 <= r["blind_accuracy"] <= 1.0 for r in out)
    assert seen and all(p["type"] == "text" for p in seen)  # the question alone


def test_filter_drops_what_the_text_answers_resumes_and_writes_a_cache_that_trains(
    tiny_model_dir, frame_cache, tmp_path, monkeypatch
):
    from kfgrpo.data_utils import KFScriptArguments, load_keyframe_dataset

    calls = []

    def known(model, processor, rows, args):  # questions of video 0 are answered blind, the others not
        calls.append([r["id"] for r in rows])
        return [dict(id=r["id"], blind_accuracy=1.0 if r["video"].endswith("000.mp4") else 0.5 * (i % 2),
                     answers=[]) for i, r in enumerate(rows)]  # fmt: skip

    monkeypatch.setattr(blind_filter, "blind_accuracy", known)
    out = tmp_path / "filtered"
    assert main(_argv(tiny_model_dir, frame_cache, out, "--threshold", "0.5")) == 0
    results = [json.loads(line) for line in (out / "blind_accuracy.jsonl").read_text().splitlines()]
    summary = json.loads((out / "blind_filter.json").read_text())
    dropped = {r["id"] for r in results if r["blind_accuracy"] >= 0.5}
    assert summary["dropped"] == len(dropped) > 0 and summary["kept"] == len(results) - len(dropped) > 0
    kept = load_keyframe_dataset(KFScriptArguments(dataset_name=str(out / "cache"), drop_unsupported=False))
    assert set(kept["id"]) == {r["id"] for r in results} - dropped
    assert len(kept[0]["images"]) == 4  # frames joined from the original cache's frame table
    # a rerun answers nothing again ...
    n = len(calls)
    assert main(_argv(tiny_model_dir, frame_cache, out, "--threshold", "0.5")) == 0
    assert len(calls) == n
    # ... but a question whose line a kill tore is asked again
    path = out / "blind_accuracy.jsonl"
    path.write_bytes(path.read_bytes()[:-5])
    assert main(_argv(tiny_model_dir, frame_cache, out, "--threshold", "0.5")) == 0
    assert calls[n:] == [[results[-1]["id"]]]
    assert len(path.read_text().splitlines()) == len(results)


@pytest.mark.parametrize("flag,value", [("--num_samples", "0"), ("--threshold", "0")])
def test_bad_arguments_are_one_line(tiny_model_dir, frame_cache, tmp_path, flag, value, capsys):
    assert main([*_argv(tiny_model_dir, frame_cache, tmp_path / "x"), flag, value]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
