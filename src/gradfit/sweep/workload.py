"""What a sweep needs to know about a workload: how to read and check its base file, and how to score a run.

The sweep itself (queue, workers, tables) is the same for every workload; the CLI passes the workload whose
base file the sweep names (ICLV model specs by default; a file with `workload: vaep` is a VAEP config).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gradfit.io import read_spec


@dataclass(frozen=True)
class Workload:
    name: str
    read_base: Callable[[Path], BaseModel]  # the validated base file
    build: Callable[..., BaseModel] | None  # validates a changed base (apply_overrides' `build`); None: ICLV
    criteria: Mapping[str, int]  # criterion -> +1 when higher is better, -1 when lower is better
    default_criterion: str
    metrics: Callable[[dict], dict[str, Any]]  # a run's results record -> the numbers a sweep row keeps
    starts: bool = False  # random starts over the base's free parameters (multistart)

    def criterion(self, name: str, metrics: dict) -> float:
        """Higher is better: the metric itself, or minus it for criteria where lower is better."""
        value = metrics.get(name)
        value = float(value) if value is not None else math.nan
        return self.criteria[name] * value if math.isfinite(value) else math.nan


def _iclv_metrics(record: dict) -> dict:
    return {
        "loglikelihood": record["loglikelihood"],
        "aic": record["aic"],
        "bic": record["bic"],
        "converged": record["converged"],
        "iterations": record["iterations"],
        "estimates": record["estimates"],
    }


ICLV = Workload(
    name="iclv",
    read_base=read_spec,
    build=None,
    criteria={"loglikelihood": 1, "aic": -1, "bic": -1},
    default_criterion="loglikelihood",
    metrics=_iclv_metrics,
    starts=True,
)
