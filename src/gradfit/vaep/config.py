"""The VAEP training file (YAML, validated): data, features, labels, model, training, baseline.

workload: vaep
name: vaep                      # model name: runs go to <runs dir>/<name>/<stamp>[-<run name>]/
data:
  actions: data/actions.parquet # SPADL actions from `gradfit vaep convert` (relative to this file)
  players: data/players.parquet # minutes played, from the same command (for per-90 ratings)
  validation_games: 0.15        # a fraction of the games (or a count, >= 1), for early stopping
  test_games: 0.15              # held-out games for the metrics table
  split_seed: 0
features: {previous_actions: 3}
labels: {horizon: 10}
model: {hidden: [256, 128], precision: bf16}
training: {learning_rate: 0.001, batch_size: 4096, epochs: 50, patience: 5, seed: 0, pos_weight: 1.0}
baseline: {xgboost: true, trees: 100, max_depth: 3, early_stopping: 10}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gradfit.errors import SpecError

_NAME = r"^[A-Za-z0-9_.-]+$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    actions: str = Field(description="SPADL actions (Parquet or CSV), relative to the config file.")
    players: str | None = Field(None, description="Minutes played per player and game (for per-90 ratings).")
    validation_games: Annotated[float, Field(gt=0)] = Field(
        0.15, description="Validation games: a fraction (< 1) of the games, or a count (>= 1)."
    )
    test_games: Annotated[float, Field(ge=0)] = Field(
        0.15, description="Held-out test games: a fraction (< 1) or a count (>= 1); 0 for none."
    )
    split_seed: int = Field(0, ge=0)


class FeatureConfig(_Section):
    previous_actions: Annotated[int, Field(ge=1, le=10)] = Field(
        3, description="Actions in a game state (the current one included)."
    )


class LabelConfig(_Section):
    horizon: Annotated[int, Field(ge=1, le=100)] = Field(10, description="k: a goal within the next k actions.")


class ModelConfig(_Section):
    hidden: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [256, 128])
    precision: Literal["bf16", "float32"] = Field(
        "bf16", description="Matrix products in bfloat16 (float32 master weights and loss) or all float32."
    )


class TrainingConfig(_Section):
    learning_rate: Annotated[float, Field(gt=0)] = 1e-3
    batch_size: Annotated[int, Field(ge=1)] = 4096
    epochs: Annotated[int, Field(ge=1)] = 50
    patience: Annotated[int, Field(ge=1)] | None = Field(5, description="Early stopping; null: never stop early.")
    seed: int = Field(0, ge=0)
    pos_weight: float | Literal["balanced"] = Field(
        1.0, description="Weight of positive labels (> 0), or 'balanced' (negatives / positives per head)."
    )
    keep_checkpoints: Literal["all", "best"] = Field("all", description="Per-epoch checkpoints, or the best only.")

    @model_validator(mode="after")
    def _positive_weight(self):
        if not isinstance(self.pos_weight, str) and self.pos_weight <= 0:
            raise ValueError("pos_weight must be positive or 'balanced'")
        return self


class BaselineConfig(_Section):
    xgboost: bool = Field(True, description="Also fit gradient-boosted trees on the same features and split.")
    trees: Annotated[int, Field(ge=1)] = 100
    max_depth: Annotated[int, Field(ge=1)] = 3
    learning_rate: Annotated[float, Field(gt=0)] = 0.3
    early_stopping: Annotated[int, Field(ge=1)] = 10


class VaepConfig(_Section):
    workload: Literal["vaep"] = "vaep"
    name: str = Field("vaep", pattern=_NAME, description="Model name: the folder of its runs.")
    data: DataConfig
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    labels: LabelConfig = Field(default_factory=LabelConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)


def config_from_dict(raw: dict, base_dir: Path | None = None, source: str = "config") -> VaepConfig:
    """Validate; relative data paths are made absolute against `base_dir` (the config file's folder)."""
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: a VAEP config is a YAML mapping with workload, name, data, ...")
    raw = dict(raw)
    data = raw.get("data")
    if base_dir is not None and isinstance(data, dict):
        data = dict(data)
        for key in ("actions", "players"):
            if isinstance(data.get(key), str) and not Path(data[key]).is_absolute():
                data[key] = str((base_dir / data[key]).resolve())
        raw["data"] = data
    try:
        return VaepConfig.model_validate(raw)
    except ValidationError as exc:
        raise SpecError.from_validation(exc, source) from None
