"""Evaluation: benchmark readers (Video-MME, LVBench, MVBench, canonical manifests), the evaluation loop, plots."""

from .benchmarks import BENCHMARKS, read_benchmark
from .run import EvalArgs, EvalModelConfig, evaluate

__all__ = ["BENCHMARKS", "EvalArgs", "EvalModelConfig", "evaluate", "read_benchmark"]
