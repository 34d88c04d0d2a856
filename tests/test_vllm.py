"""vLLM integration. CPU tests check the wiring; GPU tests (CUDA + vLLM) run vLLM colocate and server for real."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import types

import datasets
import pytest
import torch

from kfgrpo.config import KFGRPOConfig
from kfgrpo.trainer import _vllm_colocate_limits, max_images

HAS_GPU_VLLM = torch.cuda.is_available() and shutil.which("vllm") is not None
gpu = pytest.mark.skipif(not HAS_GPU_VLLM, reason="needs CUDA and vLLM (pip extra `vllm`)")


def test_max_images_reads_arrow_lengths(frame_cache):
    assert max_images(datasets.load_from_disk(str(frame_cache))) == 4
    assert max_images(None) == 0


def test_colocate_llm_gets_the_image_limit(frame_cache, monkeypatch):
    import trl.generation.vllm_generation as vg

    calls = []
    monkeypatch.setattr(vg, "LLM", lambda **kw: calls.append(kw), raising=False)
    args = types.SimpleNamespace(use_vllm=True, vllm_mode="colocate", vllm_limit_images=None)
    with _vllm_colocate_limits(args, datasets.load_from_disk(str(frame_cache))):
        vg.LLM(model="m")
    vg.LLM(model="after")
    assert calls[0]["limit_mm_per_prompt"] == {"image": 4, "video": 0}
    assert "limit_mm_per_prompt" not in calls[1]  # restored after construction
    args.vllm_limit_images = 16
    with _vllm_colocate_limits(args, None):
        vg.LLM(model="m")
    assert calls[2]["limit_mm_per_prompt"]["image"] == 16


def test_sleep_mode_with_sampled_probes_is_rejected(tmp_path):
    kw = dict(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=8,
        num_generations=4,
        use_vllm=True,
        vllm_enable_sleep_mode=True,
    )
    with pytest.raises(ValueError, match="sleep"):
        KFGRPOConfig(**kw)
    KFGRPOConfig(**kw, kf_probe_mode="likelihood")


def test_prepared_frames_pass_the_processor_unchanged(tiny_model_dir, frame_cache):
    """TAD frames are patch-aligned inside the pixel limits, so the processor does not resize them: the token count
    is (h/14)·(w/14)/4 per frame on the HF side, the count vLLM must also produce (checked on GPU below)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    frames = datasets.load_from_disk(str(frame_cache))[0]["images"]
    out = processor.image_processor(images=frames, return_tensors="pt")
    for (t, gh, gw), img in zip(out["image_grid_thw"].tolist(), frames):
        assert (gh * 14, gw * 14) == (img.size[1], img.size[0]) and t == 1


# --------------------------------------------------------------------------------------------------------------------
# GPU
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model_dir(tmp_path_factory):
    from kfgrpo.tiny_model import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("small"), size="small", seed=0))


def _train_args(tmp_path, **kw):
    return KFGRPOConfig(
        output_dir=str(tmp_path),
        bf16=True,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=16,
        max_steps=2,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_vllm=True,
        vllm_gpu_memory_utilization=0.3,
        vllm_max_model_length=2048,
        **kw,
    )


def _dataset(frame_cache):
    from kfgrpo.data_utils import KFScriptArguments, to_grpo_dataset

    ds = datasets.load_from_disk(str(frame_cache)).select(range(8))
    return to_grpo_dataset(ds, KFScriptArguments(dataset_name="x"))


@gpu
def test_vllm_token_counts_match_hf(small_model_dir, frame_cache):
    from transformers import AutoProcessor
    from trl.data_utils import prepare_multimodal_messages
    from vllm import LLM

    row = _dataset(frame_cache)[0]
    processor = AutoProcessor.from_pretrained(small_model_dir)
    prompt = prepare_multimodal_messages(row["prompt"], images=row["images"])
    hf_ids = processor.apply_chat_template([prompt], tokenize=True, add_generation_prompt=True, return_dict=True)[
        "input_ids"
    ][0]
    text = processor.apply_chat_template([prompt], tokenize=False, add_generation_prompt=True)[0]
    llm = LLM(
        model=small_model_dir,
        limit_mm_per_prompt={"image": 4, "video": 0},
        gpu_memory_utilization=0.3,
        max_model_len=2048,
        enforce_eager=True,
    )
    out = llm.generate({"prompt": text, "multi_modal_data": {"image": row["images"]}}, use_tqdm=False)
    assert list(out[0].prompt_token_ids) == list(hf_ids)


@gpu
@pytest.mark.parametrize("mode", ["sample", "likelihood"])
def test_kfgrpo_trains_with_vllm_colocate(small_model_dir, frame_cache, tmp_path, mode):
    from kfgrpo.rewards import accuracy_reward, format_reward
    from kfgrpo.trainer import KFGRPOTrainer

    trainer = KFGRPOTrainer(
        small_model_dir,
        [accuracy_reward, format_reward],
        args=_train_args(tmp_path, vllm_mode="colocate", kf_probe_mode=mode),
        train_dataset=_dataset(frame_cache),
    )
    trainer.train()
    assert "kf/shuffle/gap" in trainer.state.log_history[0]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="server mode needs a second GPU for the vLLM server")
def test_kfgrpo_trains_with_vllm_server(small_model_dir, frame_cache, tmp_path):
    from kfgrpo.rewards import accuracy_reward, format_reward
    from kfgrpo.trainer import KFGRPOTrainer

    port = _free_port()
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "1"}
    trl_cli = os.path.join(os.path.dirname(sys.executable), "trl")
    server = subprocess.Popen(
        [
            trl_cli,
            "vllm-serve",
            "--model",
            small_model_dir,
            "--port",
            str(port),
            "--limit-mm-per-prompt",
            json.dumps({"image": 4, "video": 0}),
        ],
        env=env,
    )
    try:
        import requests

        for _ in range(300):
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(1)
        trainer = KFGRPOTrainer(
            small_model_dir,
            [accuracy_reward, format_reward],
            args=_train_args(tmp_path, vllm_mode="server", vllm_server_port=port),
            train_dataset=_dataset(frame_cache),
        )
        trainer.train()
        assert "kf/shuffle/gap" in trainer.state.log_history[0]
    finally:
        server.terminate()
        server.wait(timeout=60)
