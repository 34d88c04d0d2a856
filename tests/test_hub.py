"""The Hub without the Hub: what `kfgrpo tad --push-to-hub` uploads, laid out in a local folder exactly as in the
dataset repo, reads back through `datasets.load_dataset` and trains through `kfgrpo train` as a Hub id would."""

import datasets

from kfgrpo.cache import CacheArgs, load_tad_dataset, provenance
from kfgrpo.data_utils import KFScriptArguments, load_keyframe_dataset
from kfgrpo.hub import export_tad_dataset
from kfgrpo.tad import TADConfig


def test_pushed_layout_reads_back_and_joins_like_the_cache(frame_cache, tmp_path):
    folder = tmp_path / "repo"
    args = CacheArgs(manifest="manifest.jsonl", output=str(frame_cache), num_frames=4)
    export_tad_dataset(frame_cache, folder, provenance(args, TADConfig(max_pixels=56 * 56)),
                       dict(kept=24, failed=0), name="me/keyframes")  # fmt: skip
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "data", "frames"]
    assert list((folder / "data").glob("train-*.parquet")) and list((folder / "frames").glob("train-*.parquet"))
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n- config_name: default\n") and "config_name: frames" in card
    assert "# me/keyframes" in card and "temporal-apex-distillation" in card
    questions = datasets.load_dataset(str(folder), split="train")
    frames = datasets.load_dataset(str(folder), "frames", split="train")
    assert "frames_key" in questions.column_names and "images" in frames.column_names
    assert isinstance(frames.features["images"], datasets.List) and isinstance(
        frames.features["images"].feature, datasets.Image
    )
    pushed = load_keyframe_dataset(KFScriptArguments(dataset_name=str(folder), drop_unsupported=False))  # every row
    local = load_tad_dataset(frame_cache)
    assert len(pushed) == len(local) == 24
    for i in (0, 9, 23):
        assert pushed[i]["id"] == local[i]["id"] and pushed[i]["timestamps"] == local[i]["timestamps"]
        assert [im.tobytes() for im in pushed[i]["images"]] == [im.tobytes() for im in local[i]["images"]]
        assert [im.tobytes() for im in pushed[i]["distractor_images"]] == [
            im.tobytes() for im in local[i]["distractor_images"]
        ]


def test_kfgrpo_train_reads_the_pushed_layout(frame_cache, tiny_model_dir, tmp_path):
    from pathlib import Path

    from kfgrpo.train import cli

    folder = tmp_path / "repo"
    args = CacheArgs(manifest="manifest.jsonl", output=str(frame_cache), num_frames=4)
    export_tad_dataset(frame_cache, folder, provenance(args, TADConfig()), dict(kept=24, failed=0), name="x/y")
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "tiny-cpu" / "kfgrpo.yaml"
    trainer = cli(["--config", str(recipe), "--model_name_or_path", tiny_model_dir, "--dataset_name", str(folder),
                   "--output_dir", str(tmp_path / "run"), "--max_steps", "1", "--save_strategy", "no",
                   "--max_completion_length", "8"])  # fmt: skip
    assert trainer.state.global_step == 1
    assert len(trainer.train_dataset[0]["images"]) == 4
