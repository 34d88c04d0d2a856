"""User mistakes are one line on stderr and exit code 2 in every subcommand; --debug shows the traceback."""

import os
from pathlib import Path

import pytest

from kfgrpo.cli import main

ROOT = Path(__file__).resolve().parents[1]
RECIPE = str(ROOT / "recipes" / "tiny-cpu" / "kfgrpo.yaml")


def _one_line(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_misspelled_yaml_key_names_the_nearest_valid_one(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(RECIPE).read_text() + "kf_presett: grpo\n")
    assert main(["train", "--config", str(bad)]) == 2
    _one_line(capsys, "kf_presett", "did you mean `kf_preset`?", "config file")


def test_misspelled_flag_names_the_nearest_valid_one(capsys):
    assert main(["train", "--config", RECIPE, "--learnig_rate", "1e-5"]) == 2
    _one_line(capsys, "learnig_rate", "did you mean `learning_rate`?", "command line")


def test_a_typo_is_named_before_the_relation_its_default_breaks(tmp_path, capsys):
    """`num_generation: 2` leaves num_generations at its default (8), which breaks the batch's divisibility: the typo is
    reported, not the relation its default breaks; a minimal config without use_cpu (bf16 on a CPU machine) likewise
    names its typo first."""
    recipe = Path(RECIPE).read_text()
    assert "num_generations: 4" in recipe
    typo = tmp_path / "typo.yaml"
    typo.write_text(recipe.replace("num_generations: 4", "num_generation: 2") + "per_device_train_batch_size: 4\n")
    assert main(["train", "--config", str(typo), "--dry_run"]) == 2
    _one_line(capsys, "`num_generation` (did you mean `num_generations`?)", "config file")
    assert main(["train", "--config", RECIPE, "--num_generation", "2", "--dry_run"]) == 2
    _one_line(capsys, "`num_generation` (did you mean `num_generations`?)", "command line")
    minimal = tmp_path / "minimal.yaml"
    minimal.write_text("model_name_or_path: m\ndataset_name: d\nlerning_rate: 1e-5\n")
    assert main(["train", "--config", str(minimal)]) == 2
    _one_line(capsys, "`lerning_rate` (did you mean `learning_rate`?)")


@pytest.mark.parametrize("command", ["train", "sft", "tad", "eval", "tad-plot", "synth", "prepare"])
def test_missing_config_file(command, capsys):
    assert main([command, "--config", "/no/such/recipe.yaml"]) == 2
    _one_line(capsys, f"kfgrpo {command}: --config /no/such/recipe.yaml: no such file")


def test_invalid_choice_and_group_divisibility(capsys):
    assert main(["train", "--config", RECIPE, "--kf_preset", "nope"]) == 2
    _one_line(capsys, "kf_preset must be one of")
    assert main(["train", "--config", RECIPE, "--per_device_train_batch_size", "6"]) == 2
    _one_line(capsys, "num_generations")


def test_local_model_path_that_does_not_exist(tmp_path, capsys):
    missing = str(tmp_path / "outputs" / "no-such-model")
    assert main(["train", "--config", RECIPE, "--model_name_or_path", missing]) == 2
    _one_line(capsys, f"model {missing}: no such folder")
    data = tmp_path / "m.jsonl"
    data.write_text("")
    eval_args = ["--benchmark", "canonical", "--data", str(data), "--output", str(tmp_path / "e")]
    assert main(["eval", "--model", missing, *eval_args]) == 2
    _one_line(capsys, f"model {missing}: no such folder")


def test_debug_shows_the_traceback(monkeypatch):
    with pytest.raises(Exception, match="kf_preset must be one of"):
        main(["train", "--config", RECIPE, "--kf_preset", "nope", "--debug"])
    monkeypatch.setenv("KFGRPO_DEBUG", "1")
    with pytest.raises(Exception, match="kf_preset must be one of"):
        main(["train", "--config", RECIPE, "--kf_preset", "nope"])


def test_unexpected_exceptions_keep_their_traceback(monkeypatch):
    import kfgrpo.cli as cli

    def broken(argv):
        raise KeyError("a bug, not a user mistake")

    monkeypatch.setitem(cli.HANDLERS, "synth", broken)
    with pytest.raises(KeyError):
        main(["synth"])


def test_push_without_a_token_fails_before_any_work(tmp_path, synth_train, monkeypatch, capsys):
    for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored login
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-home" / "stored_tokens"))
    out = tmp_path / "tad"
    args = ["tad", "--manifest", str(synth_train / "manifest.jsonl"), "--output", str(out), "--num-frames", "2"]
    assert main([*args, "--push-to-hub", "me/keyframes"]) == 2
    _one_line(capsys, "--push-to-hub me/keyframes: no Hugging Face token")
    assert not out.exists()  # not one video decoded


def test_push_offline_fails_before_any_work(tmp_path, tiny_model_dir, frame_cache, monkeypatch, capsys):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "run"
    argv = ["train", "--config", RECIPE, "--model_name_or_path", tiny_model_dir, "--dataset_name", str(frame_cache),
            "--output_dir", str(out), "--push_to_hub", "true", "--hub_model_id", "me/model"]  # fmt: skip
    assert main(argv) == 2
    _one_line(capsys, "--push_to_hub me/model: the Hub is offline here (HF_HUB_OFFLINE=1)")
    assert not out.exists() or not any(out.iterdir())
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # conftest's offline guard is untouched


def test_a_dataset_that_does_not_exist_is_one_line_before_any_work(tmp_path, tiny_model_dir, capsys):
    missing = str(tmp_path / "data" / "no-such-cache")
    args = ["train", "--config", RECIPE, "--model_name_or_path", str(tiny_model_dir), "--dataset_name", missing]
    assert main([*args, "--output_dir", str(tmp_path / "o")]) == 2
    _one_line(capsys, f"dataset {missing}: no such folder")
    assert main([*args[:-1], "me/no-such-dataset", "--output_dir", str(tmp_path / "o")]) == 2  # offline in tests
    _one_line(capsys, "dataset me/no-such-dataset: not a local folder, and the Hub is offline (HF_HUB_OFFLINE=1)")
    assert not (tmp_path / "o").exists()


def test_the_offline_message_names_the_variable_that_is_set(monkeypatch, capsys):
    from kfgrpo.errors import UserError, check_model_path

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with pytest.raises(UserError, match=r"the Hub is offline \(TRANSFORMERS_OFFLINE=1\)"):
        check_model_path("Qwen/Qwen2.5-VL-7B-Instruct")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE")
    check_model_path("Qwen/Qwen2.5-VL-7B-Instruct")  # online: left to the Hub


def test_tad_plot_on_a_missing_or_broken_video_is_one_line(tmp_path, capsys):
    missing = tmp_path / "none.mp4"
    assert main(["tad-plot", str(missing), "--output", str(tmp_path / "p.png")]) == 2
    _one_line(capsys, f"video {missing}: no such file")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    assert main(["tad-plot", str(broken), "--output", str(tmp_path / "p.png")]) == 2
    _one_line(capsys, f"video {broken}:")
    assert not (tmp_path / "p.png").exists()


def test_eval_mistakes_are_one_line_before_the_model_loads(tmp_path, synth_train, monkeypatch, capsys):
    """A protocol that cannot score a row's type, and a rerun into an output made with other settings."""
    import json

    import kfgrpo.eval.run as run

    def no_model(*a, **k):
        raise AssertionError("the model was loaded")

    rows = [json.loads(x) for x in (synth_train / "manifest.jsonl").read_text().splitlines()][:2]
    rows[1] = dict(rows[1], problem_type="numerical", solution="3", options=[])
    data = synth_train / "mixed.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(run, "HFBackend", no_model)
    base = ["eval", "--model", str(tmp_path), "--benchmark", "canonical", "--data", str(data)]
    assert main([*base, "--output", str(tmp_path / "e"), "--protocol", "lmms-eval"]) == 2
    _one_line(capsys, "--protocol lmms-eval scores multiple choice only", rows[1]["id"])
    out = tmp_path / "e2"
    out.mkdir()
    (out / "predictions.jsonl").write_text(json.dumps(dict(id=rows[0]["id"])) + "\n")
    (out / "eval_state.json").write_text(json.dumps(dict(fingerprint="made with other settings")))
    assert main([*base, "--output", str(out)]) == 2
    _one_line(capsys, "holds predictions made with other settings")


def test_make_train_gives_the_launcher_the_recipes_precision():
    """`bf16: false` under the ZeRO configs (mixed_precision: bf16) failed after a minute; the launcher now follows."""
    import subprocess

    from kfgrpo.model_utils import recipe_mixed_precision

    tiny, gpu = RECIPE, str(ROOT / "recipes" / "qwen2.5-vl-7b" / "kfgrpo.yaml")
    assert recipe_mixed_precision(["--config", tiny]) == "no"
    assert recipe_mixed_precision(["--config", gpu]) == "bf16"
    assert recipe_mixed_precision(["--config", gpu, "--bf16", "false"]) == "no"
    assert recipe_mixed_precision(["--config", gpu, "--bf16=false", "--fp16", "true"]) == "fp16"
    dry = subprocess.run(["make", "-n", "train", f"RECIPE={tiny}"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "recipe_mixed_precision" in dry and "--mixed_precision $precision" in dry
