"""Scale-out paths on CPU: recipes, accelerate configs, the Makefile launch line, SLURM dry-run, one ZeRO-2 step."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from accelerate.commands.config.config_args import load_config_from_file

from kfgrpo.train import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
REAL_RECIPES = sorted(p for p in (ROOT / "recipes").glob("qwen*/kfgrpo.yaml"))


def test_real_recipes_exist():
    assert {p.parent.name for p in REAL_RECIPES} == {"qwen2.5-vl-7b", "qwen2.5-vl-3b", "qwen3-vl-8b"}


@pytest.mark.parametrize("recipe", REAL_RECIPES, ids=lambda p: p.parent.name)
@pytest.mark.parametrize("preset", ["kf-grpo", "t-grpo", "grpo"])
def test_recipes_parse_with_every_preset(recipe, preset, capsys):
    assert cli(["--config", str(recipe), "--dry_run", "--kf_preset", preset]) is None
    cfg = json.loads(capsys.readouterr().out)
    t = cfg["training"]
    assert t["kf_preset"] == preset and t["use_vllm"] and t["learning_rate"] == 1e-6 and t["num_generations"] == 8
    assert t["kf_probes"] == {"grpo": [], "t-grpo": ["shuffle"], "kf-grpo": ["shuffle", "swap_salient"]}[preset]
    assert cfg["model"]["model_name_or_path"].startswith("Qwen/") and cfg["model"]["use_peft"] is False


def test_lora_and_checkpointing_switch_from_the_command_line(capsys):
    cli(["--config", str(REAL_RECIPES[0]), "--dry_run", "--use_peft", "true", "--gradient_checkpointing", "false"])
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["model"]["use_peft"] is True and cfg["model"]["lora_r"] == 64
    assert cfg["training"]["gradient_checkpointing"] is False


@pytest.mark.parametrize(
    "name,kind,stage", [("ddp", "MULTI_GPU", None), ("zero2", "DEEPSPEED", 2), ("zero3", "DEEPSPEED", 3)]
)
def test_accelerate_configs_load(name, kind, stage):
    cfg = load_config_from_file(str(ROOT / "recipes" / "accelerate" / f"{name}.yaml"))
    assert cfg.distributed_type.name == kind and cfg.mixed_precision == "bf16"
    if stage:
        assert cfg.deepspeed_config["zero_stage"] == stage


def test_make_train_launches_real_recipes_with_accelerate():
    out = subprocess.run(
        [
            "make",
            "-n",
            "train",
            "RECIPE=recipes/qwen2.5-vl-7b/kfgrpo.yaml",
            "ACCELERATE=zero2",
            "NUM_PROCESSES=4",
            "ARGS=--kf_preset t-grpo",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (
        "accelerate launch --config_file recipes/accelerate/zero2.yaml --num_processes 4 --mixed_precision $precision "
        "-m kfgrpo.cli train "
        "--config recipes/qwen2.5-vl-7b/kfgrpo.yaml --kf_preset t-grpo"
    ) in " ".join(out.split())
    tiny = subprocess.run(["make", "-n", "train"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "kfgrpo train --config recipes/tiny-cpu/kfgrpo.yaml" in tiny and "accelerate launch" not in tiny


def _slurm(*args, nodes="n1,n2,n3"):
    env = {**os.environ, "SLURM_JOB_NODELIST": nodes, "GPUS_PER_NODE": "8"}
    return subprocess.run(
        ["bash", "slurm/train.slurm", "--dry-run", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()


def test_slurm_dry_run_colocate():
    (train,) = _slurm("--recipe", "recipes/qwen2.5-vl-7b/kfgrpo.yaml", nodes="n1,n2")
    assert train.startswith("train: srun --nodes=2 --ntasks=2 --nodelist=n1,n2")
    assert "--config_file recipes/accelerate/zero3.yaml --num_machines 2 --num_processes 16" in train
    assert (
        "--main_process_ip n1" in train and "-m kfgrpo.cli train --config recipes/qwen2.5-vl-7b/kfgrpo.yaml" in train
    )


def test_slurm_dry_run_server_mode_reserves_the_last_node():
    vllm, train = _slurm(
        "--recipe", "recipes/qwen2.5-vl-7b/kfgrpo.yaml", "--accelerator", "zero2", "--args", "--vllm_mode server"
    )
    assert vllm.startswith("vllm: srun --nodes=1 --ntasks=1 --nodelist=n3 trl vllm-serve")
    assert "--model Qwen/Qwen2.5-VL-7B-Instruct" in vllm and '--limit-mm-per-prompt \'{"image":16,"video":0}\'' in vllm
    assert "--nodelist=n1,n2" in train and "--num_processes 16" in train and "zero2.yaml" in train
    assert train.rstrip('"').endswith("--vllm_mode server --vllm_server_host n3")


def test_deepspeed_zero2_step_on_cpu(tiny_model_dir, frame_cache, tmp_path):
    pytest.importorskip("deepspeed")
    ds_config = tmp_path / "zero2.json"
    ds_config.write_text(
        json.dumps(
            {
                "zero_optimization": {"stage": 2},
                "train_micro_batch_size_per_gpu": "auto",
                "gradient_accumulation_steps": "auto",
                "gradient_clipping": "auto",
                "train_batch_size": "auto",
            }
        )
    )
    script = (
        "import sys; from kfgrpo.train import cli; t = cli(sys.argv[1:]); "
        "print('ZERO', t.accelerator.state.deepspeed_plugin.zero_stage, t.is_deepspeed_enabled, t.state.global_step)"
    )
    args = [
        "--config",
        str(ROOT / "recipes" / "tiny-cpu" / "kfgrpo.yaml"),
        "--model_name_or_path",
        tiny_model_dir,
        "--dataset_name",
        str(frame_cache),
        "--output_dir",
        str(tmp_path / "out"),
        "--max_steps",
        "1",
        "--save_strategy",
        "no",
        "--max_completion_length",
        "8",
        "--use_cpu",
        "false",
        "--deepspeed",
        str(ds_config),
    ]
    # DeepSpeed on CPU (gloo) needs the launcher variables and use_cpu=False; it runs in its own process because it
    # initialises process-wide distributed state.
    env = {
        **os.environ,
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "0",  # one process: the store binds a port the OS picks
        "CUDA_VISIBLE_DEVICES": "",
    }
    out = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ZERO 2 True 1" in out.stdout


def test_token_is_never_written(tiny_model_dir, frame_cache, tmp_path, monkeypatch):
    """`--hub_token` on the command line: the token reaches huggingface_hub through the environment and no output
    file holds it, transformers' pickled arguments (training_args.bin of the run and of its checkpoint) included."""
    secret = "hf_kfgrpoSECRETtoken0000000000000000"
    monkeypatch.setenv("HF_TOKEN", "placeholder")  # restored (unset) after the test, whatever the run sets
    monkeypatch.delenv("HF_TOKEN")
    out = tmp_path / "run"
    trainer = cli(
        [
            "--config", str(ROOT / "recipes" / "tiny-cpu" / "kfgrpo.yaml"), "--model_name_or_path", tiny_model_dir,
            "--dataset_name", str(frame_cache), "--output_dir", str(out), "--max_steps", "1", "--save_steps", "1",
            "--max_completion_length", "8", "--hub_model_id", "me/model", "--hub_token", secret,
        ]
    )  # fmt: skip
    assert os.environ["HF_TOKEN"] == secret and trainer.args.hub_token is None
    files = [f for f in out.rglob("*") if f.is_file()]
    pickles = [f for f in files if f.name == "training_args.bin"]
    assert len(pickles) == 2  # the run's and its checkpoint's: the check covers the pickles
    for f in files:
        assert secret.encode() not in f.read_bytes(), f
    import torch

    assert torch.load(pickles[0], weights_only=False).hub_token is None


def test_tad_slurm_array_runs_one_command_per_task():
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "3", "SLURM_CPUS_PER_TASK": "8"}
    out = subprocess.run(
        [
            "bash",
            "slurm/tad.slurm",
            "--dry-run",
            "--manifest",
            "m.jsonl",
            "--output",
            "/shared/tad",
            "--num_frames",
            "16",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "task 3: .venv/bin/kfgrpo tad --num_proc 8 --manifest m.jsonl --output /shared/tad --num_frames 16"
    bad = subprocess.run(["bash", "slurm/tad.slurm", "--dry-run", "--output", "x"], cwd=ROOT, capture_output=True)
    assert bad.returncode == 2


def test_the_slurm_log_folder_exists_in_every_clone():
    """SLURM opens a job's --output before the script runs and does not create its folder: with `logs/` missing,
    `sbatch slurm/train.slurm` fails at launch (JobLaunchFailure, measured on the local cluster), so the folder is
    part of the repository."""
    assert (ROOT / "logs" / ".gitignore").is_file()
    for script in ("train.slurm", "tad.slurm"):
        assert "#SBATCH --output=logs/" in (ROOT / "slurm" / script).read_text()
