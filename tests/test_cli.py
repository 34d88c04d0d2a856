import json

from kfgrpo.cli import main


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("tiny-model", "synth", "tad", "train"):
        assert cmd in out


def test_unknown_command(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_synth_and_tiny_model_commands(tmp_path, capsys):
    assert (
        main(
            [
                "synth",
                "--output",
                str(tmp_path / "s"),
                "--num-videos",
                "2",
                "--seed",
                "7",
                "--families",
                "count",
                "order",
            ]
        )
        == 0
    )
    rows = [json.loads(x) for x in (tmp_path / "s" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and rows[0]["id"].startswith("cs7-")
    assert main(["tiny-model", "--output", str(tmp_path / "m"), "--arch", "qwen2_5_vl", "--size", "tiny"]) == 0
    assert (tmp_path / "m" / "config.json").exists()
    assert (tmp_path / "m" / "processor_config.json").exists()  # the processor, one file in transformers 5


def test_tad_command_exit_codes(tmp_path, synth_train, capsys):
    m = tmp_path / "m.jsonl"
    m.write_text("{broken\n")
    assert main(["tad", "--manifest", str(m), "--output", str(tmp_path / "o1"), "--num-frames", "2"]) == 1
    assert "1 of 1 rows failed" in capsys.readouterr().err
    assert (
        main(
            [
                "tad",
                "--manifest",
                str(synth_train / "manifest.jsonl"),
                "--output",
                str(tmp_path / "o2"),
                "--num-frames",
                "2",
                "--max-pixels",
                "3136",
            ]
        )
        == 0
    )
    assert "rows kept 24 / failed 0" in capsys.readouterr().out


def test_tad_plot_command(tmp_path, synth_train, capsys):
    video = synth_train / "videos" / "cs0-00000.mp4"
    assert main(["tad-plot", str(video), "--num-frames", "4", "--output", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert "keyframes at" in capsys.readouterr().out


def test_tad_learn_command_help_and_a_missing_model(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_:
        main(["tad-learn", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--samples_per_question", "--learning_rate", "--max_steps", "--selector_weights", "--config"):
        assert flag in out
    argv = ["tad-learn", "--manifest", "m.jsonl", "--model", "./no-such-model", "--output_dir", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("kfgrpo tad-learn:") and "no-such-model" in err and len(err.strip().splitlines()) == 1
