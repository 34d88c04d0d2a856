"""The CPU demo's recipes (recipes/tiny-cpu/) agree with each other: the same frames and prompt in every stage."""

import pathlib
import subprocess

import yaml

from kfgrpo.chronosynth import SynthConfig
from kfgrpo.cli import _parse
from kfgrpo.data_utils import PromptArguments
from kfgrpo.eval import EvalArgs, EvalModelConfig
from kfgrpo.tad import TADConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "tiny-cpu"
PROMPT_KEYS = {f for f in PromptArguments.__dataclass_fields__}
TAD_KEYS = {f for f in TADConfig.__dataclass_fields__}


def _load(name):
    return yaml.safe_load((TINY / name).read_text())


def test_eval_selects_frames_like_the_training_cache():
    tad, ev = _load("tad.yaml"), _load("eval.yaml")
    assert {k: v for k, v in ev.items() if k in TAD_KEYS} == {k: v for k, v in tad.items() if k in TAD_KEYS}
    assert ev["num_frames"] == 8 and ev["frames"] == "tad" and ev["probe"] == "shuffle"


def test_every_stage_uses_the_same_prompt():
    prompts = [
        {k: v for k, v in _load(n).items() if k in PROMPT_KEYS}
        for n in ("sft.yaml", "kfgrpo.yaml", "eval.yaml", "shortcut.yaml")
    ]
    assert prompts[0] == prompts[1] == prompts[2] == prompts[3] and prompts[0]["question_position"] == "before"


def test_stages_chain():
    sft, rl, ev = _load("sft.yaml"), _load("kfgrpo.yaml"), _load("eval.yaml")
    assert rl["model_name_or_path"] == sft["output_dir"]  # KF-GRPO starts from the warm start
    assert ev["model"] == ev["output"] == rl["output_dir"] and ev["results_file"] == "eval.json"
    assert sft["dataset_name"] == rl["dataset_name"]


def test_demo_recipes_parse():
    parsed = _parse(
        (EvalArgs, PromptArguments, TADConfig, EvalModelConfig), ["--config", str(TINY / "eval.yaml")], "t"
    )
    args, prompt, tad, loading = parsed
    assert args.results_file == "eval.json" and prompt.question_position == "before" and tad.max_pixels == 3136
    assert loading.dtype == "float32"
    (synth,) = _parse((SynthConfig,), ["--config", str(TINY / "synth.yaml")], "t")
    assert synth.families == ["order", "count"]


def test_shortcut_recipes_parse():
    """benchmarks/bench_shortcut.py: the cue split, and the RL recipe every arm trains (the demo's but for the
    budget)."""
    (synth,) = _parse((SynthConfig,), ["--config", str(TINY / "synth-shortcut.yaml")], "t")
    assert synth.families == ["order"] and synth.shortcut == "answer_position" and synth.shortcut_strength == 0.8
    rl, demo = _load("shortcut.yaml"), _load("kfgrpo.yaml")
    budget = {"max_steps", "learning_rate", "output_dir", "model_name_or_path", "dataset_name", "seed"}
    budget |= {"save_strategy", "save_steps", "save_total_limit"}
    assert {k: v for k, v in rl.items() if k not in budget} == {k: v for k, v in demo.items() if k not in budget}


def test_tad_learn_recipe_parses_and_matches_the_demo():
    """recipes/tiny-cpu/tad-learn.yaml learns from the frozen warm start, with the demo's prompt and frames."""
    from kfgrpo.tad.learned.training import TADLearnArgs

    recipe = str(TINY / "tad-learn.yaml")
    args, tad, prompt, _ = _parse(
        (TADLearnArgs, TADConfig, PromptArguments, EvalModelConfig), ["--config", recipe], "t"
    )
    learn, sft, ev, cache = _load("tad-learn.yaml"), _load("sft.yaml"), _load("eval.yaml"), _load("tad.yaml")
    assert args.model == sft["output_dir"] and args.num_frames == [ev["num_frames"]]
    assert {k: v for k, v in learn.items() if k in PROMPT_KEYS} == {k: v for k, v in ev.items() if k in PROMPT_KEYS}
    assert {k: v for k, v in learn.items() if k in TAD_KEYS} == {k: v for k, v in cache.items() if k in TAD_KEYS}
    assert tad.selector_weights is None and prompt.question_position == "before"


def test_demo_seed_reaches_every_seeded_stage(tmp_path):
    """`make train DEMO_SEED=s` seeds the random weights, SFT and RL, and each stage reads the one before it."""
    paths = {k: tmp_path / k for k in ("model", "sft", "out", "data")}
    out = subprocess.run(
        ["make", "-n", "demo", "DEMO_SEED=3", f"DEMO_MODEL={paths['model']}", f"DEMO_SFT={paths['sft']}",
         f"DEMO_OUT={paths['out']}", f"DEMO_DATA={paths['data']}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    flat = " ".join(out.replace("\\\n", " ").split())
    assert f"kfgrpo tiny-model --output {paths['model']} --size demo --seed 3" in flat
    assert f"--model_name_or_path {paths['model']} --dataset_name {paths['data']}/train-tad" in flat
    assert f"--output_dir {paths['sft']} --seed 3" in flat
    assert f"--model_name_or_path {paths['sft']} --dataset_name {paths['data']}/train-tad" in flat
    assert f"--output_dir {paths['out']} --seed 3" in flat
    assert f"--data {paths['data']}/test/manifest.jsonl --output {paths['out']}" in flat
