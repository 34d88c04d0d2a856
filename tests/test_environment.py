"""The pinned environment: versions the code relies on, and a lock that also holds the GPU set."""

import importlib.metadata as md
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_pinned_versions_are_installed():
    assert md.version("torch").startswith("2.13.0")
    assert md.version("torchvision").startswith("0.28.0")
    assert md.version("trl") == "1.16.0"
    assert md.version("transformers").startswith("5.17.")


def test_torchvision_imports_with_torch():
    # The Qwen-VL processors need torchvision; a torch/torchvision from different builds fails right here.
    import torchvision.transforms.v2.functional as F  # noqa: F401
    from transformers import Qwen2VLImageProcessor

    Qwen2VLImageProcessor()


def test_lock_holds_the_gpu_set():
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    versions = {p["name"]: p["version"] for p in lock["package"]}
    assert versions["vllm"] == "0.31.0"
    assert versions["torch"] == "2.13.0" and versions["trl"] == "1.16.0"
    assert versions["transformers"].startswith("5.17.")
    assert "deepspeed" in versions
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["optional-dependencies"]["vllm"] == ["vllm==0.31.0; sys_platform == 'linux'"]
