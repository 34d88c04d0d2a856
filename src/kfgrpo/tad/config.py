"""``TADConfig``: every constant of Temporal Apex Distillation. Defaults follow the method spec (§2.6) except where
real footage measured better (see each field and docs/tad.md: smoothing, ρ, centring, fill)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

METHODS = ("tad", "uniform", "gumbel")


@dataclass
class TADConfig:
    """Knobs of Temporal Apex Distillation. Candidate positions are counted in candidates, not video frames."""

    # Candidates
    candidate_fps: float = field(default=2.0, metadata={"help": "Candidate frames per second of video (fps_c)."})
    max_candidates: int = field(
        default=256, metadata={"help": "Cap on candidates per video (N_max); longer videos are sampled sparser."}
    )
    min_candidates_per_frame: float = field(
        default=2.0,
        metadata={
            "help": "At least this many candidates per keyframe asked (a short video is sampled denser than "
            "candidate_fps), so that K keyframes come back with room to choose whenever the video has K frames."
        },
    )
    min_video_frames: int = field(
        default=2, metadata={"help": "Videos with fewer decodable frames are rejected as too short."}
    )
    truncation_tolerance: float = field(
        default=0.9,
        metadata={"help": "Reject a video as truncated when fewer than this fraction of its declared frames decode."},
    )
    decode_skip: bool = field(
        default=True,
        metadata={
            "help": "Decode only what the candidates need: GOPs and GOP tails without a candidate are not sent to "
            "the decoder and non-reference frames that are not candidates are skipped (the candidates come out "
            "bit-identical to a full decode, at ~0.6× its time on H.264). false decodes every frame."
        },
    )
    decode_threads: int = field(default=0, metadata={"help": "Decoder threads (0 = FFmpeg's choice)."})
    decode_thread_type: str = field(
        default="SLICE", metadata={"help": "PyAV thread type: SLICE, FRAME or AUTO (SLICE measured fastest here)."}
    )
    # Features
    encoder: str = field(
        default="pixel",
        metadata={"help": "Frame features: `pixel` (colour layout + histogram) or `hf:<path-or-id>` (CLIP/SigLIP)."},
    )
    pixel_grid: int = field(default=8, metadata={"help": "Pixel features: colour layout grid (g×g blocks per plane)."})
    pixel_hist_bins: int = field(default=4, metadata={"help": "Pixel features: histogram bins per YUV channel."})
    pixel_hist_weight: float = field(
        default=0.7, metadata={"help": "Pixel features: weight of the histogram part against the layout part."}
    )
    pixel_hist_power: float = field(
        default=0.25,
        metadata={"help": "Pixel features: histogram power (<1 lets small objects weigh more; 0.5 = Hellinger)."},
    )
    pixel_hist_floor: float = field(
        default=0.005,
        metadata={
            "help": "Pixel features: histogram mass below this fraction of the frame is dropped (edge and "
            "compression noise)."
        },
    )
    center_features: bool = field(
        default=True,
        metadata={
            "help": "Subtract the video's mean feature before comparing candidates: what all frames share (letterbox "
            "bars, a static background) otherwise dominates the cosine and hides cuts between similar-looking shots."
        },
    )
    hf_batch_size: int = field(default=32, metadata={"help": "hf encoder: candidates per forward pass."})
    hf_device: str | None = field(default=None, metadata={"help": "hf encoder device (default: cuda if available)."})
    # Stage 1: variation scoring
    scales: list[int] = field(
        default_factory=lambda: [1, 2, 4], metadata={"help": "Lags k of the multi-scale change."}
    )
    scale_weights: list[float] = field(
        default_factory=lambda: [0.5, 0.3, 0.2], metadata={"help": "Weights w_k of the lags."}
    )
    smoothing_sigma: float = field(
        default=0.0,
        metadata={
            "help": "Gaussian smoothing σ_s, in candidates (the spec's 1.0 blurs a cut into its neighbours and moves "
            "the apex off the cut's first frame)."
        },
    )
    mad_scale: float = field(default=1.4826, metadata={"help": "MAD → standard deviation factor."})
    norm_eps: float = field(default=1e-6, metadata={"help": "ε of the robust normalisation."})
    # Stage 2: apex (inflection) detection
    apex_threshold: float = field(default=0.5, metadata={"help": "κ: an apex needs normalised variation > κ."})
    nms_window: int | None = field(
        default=None, metadata={"help": "NMS half-window w in candidates (default max(1, ⌊N/(2K)⌋))."}
    )
    curvature_threshold: float = field(
        default=0.0, metadata={"help": "τ_a: an apex needs curvature ṽ[t+1] − 2ṽ[t] + ṽ[t−1] < −τ_a."}
    )
    soft_tau1: float = field(default=0.5, metadata={"help": "τ_1 of the soft apex score (threshold gate)."})
    soft_tau2: float = field(default=0.05, metadata={"help": "τ_2 of the soft apex score (local-max gate)."})
    soft_delta: float = field(default=1e-3, metadata={"help": "δ of the soft apex score."})
    # Stage 3: prioritized distillation
    lambda_variation: float = field(default=1.0, metadata={"help": "λ_v: weight of max(v̂, 0) in the priority."})
    variation_clip: float | None = field(
        default=None,
        metadata={
            "help": "Clip v̂⁺ at this value in the priority, so one huge change (a cut) does not outweigh "
            "several ordinary events; null = no clip."
        },
    )
    variation_log_scale: float | None = field(
        default=3.0,
        metadata={
            "help": "c: v̂⁺ enters the priority as c·ln(1 + v̂⁺/c), about v̂⁺ below c and logarithmic above, so a hard "
            "cut does not outweigh several ordinary events yet still outranks a weaker one (saliency keeps ranking "
            "cuts, where a clip would tie them); null = v̂⁺ as is."
        },
    )
    lambda_apex: float = field(default=1.0, metadata={"help": "λ_a: weight of the soft apex score."})
    lambda_query: float = field(
        default=0.5, metadata={"help": "λ_q: weight of query relevance (used only with a query and an hf encoder)."}
    )
    apex_fraction: float = field(
        default=0.75,
        metadata={"help": "ρ: apexes fill at most ⌈ρK⌉ slots; the rest cover the timeline (spec: 0.5)."},
    )
    fill_gamma: float = field(default=2.0, metadata={"help": "γ: fill slots sample the priority density P^γ."})
    fill_uniform_mix: float = field(
        default=0.0,
        metadata={"help": "β: fill density (1 − β)·P^γ/mean(P^γ) + β; β > 0 keeps calm stretches covered."},
    )
    fill_snap: bool = field(
        default=True,
        metadata={
            "help": "A fill slot moves to the strongest change (a local maximum of ṽ with v̂ > κ) inside its cell of "
            "the segment, if there is one: cuts left without an apex slot are still hit, and the slot keeps its "
            "share of the timeline."
        },
    )
    fill_edge_weight: float = field(
        default=1.5,
        metadata={
            "help": "Fill slots go to segments by length; the first and last segments count this many times their "
            "length, since no keyframe lies beyond the video's ends (their farthest point is a whole segment from a "
            "keyframe, an inner segment's only half), so the opening and closing shots are not left empty (2 is that "
            "geometry; 1.5 keeps more slots for events on ChronoSynth)."
        },
    )
    min_gap: int = field(default=1, metadata={"help": "Minimum distance between selected candidates."})
    use_anchors: bool = field(
        default=True, metadata={"help": "First and last candidates bound the fill segments (coverage of the ends)."}
    )
    selector_weights: str | None = field(
        default=None,
        metadata={
            "help": "A learned stage 3: the selector.json that `kfgrpo tad-learn` writes (its tad.yaml sets this). "
            "With method `tad`, the K keyframes are then the learned selector's greedy draw over the same candidates "
            "and curve (kfgrpo.tad.learned.selector), still deterministic; null = the hand-set distillation above. A relative "
            "path is read from the current directory."
        },
    )
    gumbel_tau: float = field(default=0.1, metadata={"help": "Temperature of method='gumbel' sampling on saliency."})
    # Output frames
    num_distractors: int | None = field(
        default=None, metadata={"help": "Lowest-saliency candidates kept as distractors (default ⌈K/2⌉)."}
    )
    min_pixels: int = field(default=28 * 28, metadata={"help": "Fewest pixels per output frame."})
    max_pixels: int = field(default=128 * 28 * 28, metadata={"help": "Most pixels per output frame."})
    resize_interpolation: str = field(
        default="AREA",
        metadata={
            "help": "swscale filter for output frames (AREA: antialiased downscaling, and faster than BILINEAR)."
        },
    )
    patch_factor: int = field(
        default=28, metadata={"help": "Output sides are multiples of this: 28 for Qwen2/2.5-VL, 32 for Qwen3-VL."}
    )

    def __post_init__(self):
        if len(self.scales) != len(self.scale_weights):
            raise ValueError("scales and scale_weights must have the same length")
        if self.candidate_fps <= 0 or self.max_candidates < 1:
            raise ValueError("candidate_fps must be > 0 and max_candidates >= 1")
        if not 0.0 <= self.apex_fraction <= 1.0:
            raise ValueError("apex_fraction must be in [0, 1]")
        if self.decode_thread_type not in ("SLICE", "FRAME", "AUTO"):
            raise ValueError("decode_thread_type must be SLICE, FRAME or AUTO")
        if self.encoder != "pixel" and not self.encoder.startswith("hf:"):
            raise ValueError(f"encoder must be 'pixel' or 'hf:<path-or-id>', got {self.encoder!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def selector(self) -> dict:
        """Which stage 3 makes the selection, for provenance: the hand-set distillation or a learned selector (its
        file and the SHA-256 of its weights)."""
        if not self.selector_weights:
            return {"kind": "distill"}
        from .learned.selector import weights_sha256

        return {"kind": "learned", "weights": self.selector_weights, "sha256": weights_sha256(self.selector_weights)}
