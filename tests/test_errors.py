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
