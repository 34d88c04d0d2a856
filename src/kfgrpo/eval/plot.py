"""``kfgrpo eval-plot DIR ... --output PNG``: accuracy per category, runs side by side."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _label(results: dict, path: Path) -> str:
    return f"{path.name} ({results['frames']}, K={results['num_frames']})"


RESULT_FILES = ("results.json", "eval.json")  # `kfgrpo eval`'s default and the CPU demo's `results_file`


def load_results(path: str | Path) -> dict:
    """The results of one `kfgrpo eval` run: a results file, or an output folder holding one (see RESULT_FILES)."""
    path = Path(path)
    if path.is_file():
        return json.loads(path.read_text())
    for name in RESULT_FILES:
        if (path / name).is_file():
            return json.loads((path / name).read_text())
    raise FileNotFoundError(f"{path}: no {' or '.join(RESULT_FILES)} (is it a `kfgrpo eval` output folder?)")


def plot_results(dirs: list[str], output: str, title: str | None = None) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [(Path(d), load_results(d)) for d in dirs]
    names = sorted({name for _, r in runs for name in r["per_category"]})
    panels = [("overall", {"all": None})] + [(n, None) for n in names]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.0, 1.2 * 6), 2.8 * len(panels)), squeeze=False)
    width = 0.8 / len(runs)
    for ax, (name, _) in zip(axes[:, 0], panels):
        if name == "overall":
            values = ["all"]
        else:
            values = sorted({v for _, r in runs for v in r["per_category"].get(name, {})})
        x = np.arange(len(values))
        for i, (path, r) in enumerate(runs):
            if name == "overall":
                acc = [r["accuracy"]]
            else:
                acc = [r["per_category"].get(name, {}).get(v, {}).get("accuracy", np.nan) for v in values]
            bars = ax.bar(x + (i - (len(runs) - 1) / 2) * width, acc, width, label=_label(r, path))
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xticks(x, values, rotation=20 if len(values) > 4 else 0, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("accuracy")
        ax.set_title(name, fontsize=10)
    axes[0, 0].legend(fontsize=8, loc="upper right")
    fig.suptitle(title or "kfgrpo eval", fontsize=11)
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output
