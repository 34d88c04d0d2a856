"""A learned stage 3 for TAD: a small scorer over per-candidate signals and a repulsive Plackett–Luce policy.

Stages 1–2 (variation, apexes) are TAD's own. Each candidate t gets a feature vector φ_t (:data:`FEATURES`, all read
from the :class:`~kfgrpo.tad.select.CandidateCurve`, so nothing is decoded twice) and a score u_t = w·φ_t. Keyframes are
drawn one at a time; after picks s_1..s_{j-1} the next is drawn from

    softmax_t( [u_t − β·Σ_{i<j} exp(−|t − s_i| / ℓ_c)] / τ )      over candidates not yet picked,

ℓ_c = ℓ·N/K candidates (ℓ = 1: the spacing of K evenly spread frames). The repulsion β lets a score that is high over
a whole shot still spread its K picks, which a plain top-K of u cannot. The exact log-probability of an ordered draw is
a sum of K log-softmaxes, differentiable in w, β and ℓ (:meth:`LearnedSelector.log_prob`), so ``kfgrpo tad-learn``
trains it by policy gradient from a frozen model's answers. At cache time the selector is deterministic: the greedy
draw (argmax at each step), K·N operations, chronological output.

Parameters: w (one weight per feature), β = softplus(β_raw), ℓ = softplus(ℓ_raw); τ is fixed (``temperature``).
Saved as a small JSON file (:meth:`save`), named by ``TADConfig.selector_weights``.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch

FEATURES = (
    "variation",  # g(v̂⁺_t): TAD's variation term (log-compressed as in the priority)
    "apex",  # α_t: soft apex score
    "saliency",  # s_t: TAD's saliency (min-max of the priority)
    "peak",  # 1 if t is a local maximum of ṽ with v̂ > κ (an apex before NMS)
    "variation_before",  # g(v̂⁺_{t−1}): a change just before t (t shows the new content)
    "variation_after",  # g(v̂⁺_{t+1}): a change just after t (t shows the old content's last look)
    "distinct",  # robust z-score of the distance of f_t from the video's mean feature: unusual content
    "position",  # t / (N − 1)
    "edge",  # min(t, N − 1 − t) / (N − 1): distance to the nearer end
)
FORMAT_VERSION = 1


def _softplus_inv(y: float) -> float:
    y = max(float(y), 1e-6)  # softplus(x) > 0: a zero repulsion is approached, not reached
    return float(y + math.log(-math.expm1(-y)))


def candidate_features(curve, variation_log_scale: float | None = 3.0) -> np.ndarray:
    """φ: (N, len(FEATURES)) float32 from a :class:`~kfgrpo.tad.select.CandidateCurve`."""
    n = len(curve.normalized)
    vpos = np.maximum(np.asarray(curve.normalized, dtype=np.float64), 0.0)
    if variation_log_scale:
        vpos = variation_log_scale * np.log1p(vpos / variation_log_scale)
    before = np.concatenate([[0.0], vpos[:-1]])
    after = np.concatenate([vpos[1:], [0.0]])
    peak = np.zeros(n)
    if curve.peaks is not None and len(curve.peaks):
        peak[np.asarray(curve.peaks, dtype=int)] = 1.0
    distinct = curve.distinctiveness if curve.distinctiveness is not None else np.zeros(n)
    t = np.arange(n, dtype=np.float64)
    span = max(n - 1, 1)
    cols = [vpos, curve.apex_score, curve.saliency, peak, before, after, distinct, t / span]
    cols.append(np.minimum(t, n - 1 - t) / span)
    return np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=1).astype(np.float32)


class LearnedSelector(torch.nn.Module):
    """The scorer and its repulsive Plackett–Luce policy (see the module docstring)."""

    def __init__(
        self,
        init_weights: dict[str, float] | None = None,
        repulsion: float = 2.0,
        width: float = 0.5,
        temperature: float = 1.0,
        min_gap: int = 1,
    ):
        super().__init__()
        init = {"saliency": 3.0} if init_weights is None else init_weights
        unknown = set(init) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown selector features {sorted(unknown)}; choose from {FEATURES}")
        self.weights = torch.nn.Parameter(torch.tensor([float(init.get(f, 0.0)) for f in FEATURES]))
        self.repulsion_raw = torch.nn.Parameter(torch.tensor(_softplus_inv(repulsion)))
        self.width_raw = torch.nn.Parameter(torch.tensor(_softplus_inv(width)))
        self.temperature, self.min_gap = float(temperature), max(1, int(min_gap))

    @property
    def repulsion(self) -> torch.Tensor:
        return torch.nn.functional.softplus(self.repulsion_raw)

    @property
    def width(self) -> torch.Tensor:
        return torch.nn.functional.softplus(self.width_raw)

    def scores(self, phi) -> torch.Tensor:
        return torch.as_tensor(phi, dtype=self.weights.dtype) @ self.weights

    def _kernel(self, n: int, k: int, picks: torch.Tensor) -> torch.Tensor:
        """exp(−|t − s_i| / ℓ_c) for each pick: (len(picks), n)."""
        scale = self.width * n / max(k, 1) + 1e-3
        t = torch.arange(n, dtype=self.weights.dtype)
        return torch.exp(-(t[None, :] - picks[:, None].to(t.dtype)).abs() / scale)

    def _blocked(self, n: int, picks: torch.Tensor) -> torch.Tensor:
        """(len(picks), n) bool: candidates within min_gap of each pick (the pick itself included)."""
        t = torch.arange(n)
        return (t[None, :] - picks[:, None]).abs() < self.min_gap

    def log_prob(self, phi, order) -> torch.Tensor:
        """Exact log-probability of drawing ``order`` (K candidate positions, in draw order)."""
        u = self.scores(phi)
        order = torch.as_tensor(order, dtype=torch.long)
        n, k = u.shape[0], order.shape[0]
        kern = self._kernel(n, k, order)  # (K, N)
        before = torch.cumsum(kern, 0) - kern  # repulsion felt at step j: picks 1..j−1
        blocked = torch.cumsum(self._blocked(n, order).long(), 0) - self._blocked(n, order).long()
        logits = (u[None, :] - self.repulsion * before) / self.temperature
        logits = logits.masked_fill(blocked > 0, float("-inf"))
        return (logits.gather(1, order[:, None]).squeeze(1) - torch.logsumexp(logits, dim=1)).sum()

    @torch.no_grad()
    def draw(self, phi, k: int, generator: torch.Generator | None = None, greedy: bool = False) -> list[int]:
        """K candidate positions in draw order: a sample (Gumbel-max at each step) or the greedy draw."""
        u = self.scores(phi)
        n = u.shape[0]
        k = min(k, n)
        push = torch.zeros(n, dtype=u.dtype)
        blocked = torch.zeros(n, dtype=torch.bool)
        picks: list[int] = []
        for _ in range(k):
            logits = (u - self.repulsion * push) / self.temperature
            if not greedy:
                g = torch.rand(n, generator=generator, dtype=u.dtype).clamp(1e-20, 1.0)
                logits = logits - torch.log(-torch.log(g))
            logits = logits.masked_fill(blocked, float("-inf"))
            if torch.isinf(logits).all():  # min_gap left no room: fall back to distinct candidates
                logits = torch.where(torch.isin(torch.arange(n), torch.tensor(picks)), float("-inf"), u)
            s = int(torch.argmax(logits))
            picks.append(s)
            push += self._kernel(n, k, torch.tensor([s]))[0]
            blocked |= self._blocked(n, torch.tensor([s]))[0]
        return picks

    def select(self, phi, k: int) -> np.ndarray:
        """The deterministic selection used at cache time: the greedy draw, chronological. The same steps as
        ``draw(greedy=True)`` in numpy (float64): K·N operations, no autograd, a fraction of a millisecond."""
        phi = np.asarray(phi.detach().numpy() if isinstance(phi, torch.Tensor) else phi, dtype=np.float64)
        with torch.no_grad():
            w = self.weights.double().numpy()
            beta, scale = float(self.repulsion), float(self.width)
        u = phi @ w
        n = len(u)
        k = min(k, n)
        scale = scale * n / max(k, 1) + 1e-3
        t = np.arange(n)
        push, blocked, picks = np.zeros(n), np.zeros(n, dtype=bool), []
        for _ in range(k):
            logits = np.where(blocked, -np.inf, u - beta * push)
            if np.isinf(logits).all():  # min_gap left no room: fall back to distinct candidates
                logits = np.where(np.isin(t, picks), -np.inf, u)
            s = int(np.argmax(logits))
            picks.append(s)
            push += np.exp(-np.abs(t - s) / scale)
            blocked |= np.abs(t - s) < self.min_gap
        return np.sort(np.asarray(picks, dtype=int))

    def state(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "features": list(FEATURES),
            "weights": {f: float(w) for f, w in zip(FEATURES, self.weights.detach())},
            "repulsion": float(self.repulsion.detach()),
            "width": float(self.width.detach()),
            "temperature": self.temperature,
            "min_gap": self.min_gap,
        }

    def save(self, path: str | Path) -> Path:
        """Writes the parameters as JSON, whole (``kfgrpo tad`` workers may be reading the previous version)."""
        from ...files import write_atomic

        path = Path(path)
        write_atomic(path, json.dumps(self.state(), indent=1) + "\n")
        return path

    @classmethod
    def from_state(cls, state: dict) -> LearnedSelector:
        if state.get("format_version") != FORMAT_VERSION or list(state.get("features", [])) != list(FEATURES):
            raise ValueError(
                f"selector weights of another format (version {state.get('format_version')}, features "
                f"{state.get('features')}); this kfgrpo reads version {FORMAT_VERSION} with features {list(FEATURES)}"
            )
        sel = cls(state["weights"], state["repulsion"], state["width"], state["temperature"], state["min_gap"])
        with torch.no_grad():  # the softplus round trip is exact to float32 precision; keep the weights as written
            sel.weights.copy_(torch.tensor([float(state["weights"][f]) for f in FEATURES]))
        return sel

    @classmethod
    def load(cls, path: str | Path) -> LearnedSelector:
        return cls.from_state(json.loads(Path(path).read_text()))


_LOADED: dict[tuple[str, str], LearnedSelector] = {}


def weights_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_selector(path: str | Path) -> LearnedSelector:
    """The selector in ``path``, read once per process (keyed by its content, so a rewritten file is read again)."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"selector_weights: {path}: no such file (a `kfgrpo tad-learn` output's selector.json)"
        )
    key = (str(path), weights_sha256(path))
    if key not in _LOADED:
        _LOADED[key] = LearnedSelector.load(path).eval()
    return _LOADED[key]
