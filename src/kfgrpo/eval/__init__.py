"""Evaluation: benchmark readers (Video-MME, LVBench, MVBench, canonical manifests), the evaluation loop, plots."""

from .benchmarks import BENCHMARKS, read_benchmark
from .run import EvalArgs, evaluate

__all__ = ["BENCHMARKS", "EvalArgs", "evaluate", "read_benchmark"]
