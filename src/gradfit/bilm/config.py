"""The biLM training file (YAML, validated): data, model, training, metrics.

workload: bilm
name: bilm                        # model name: runs go to <runs dir>/<name>/<stamp>[-<run name>]/
data:
  corpus: corpus.txt              # plain UTF-8 text, one sentence per line (relative to this file)
  vocab_size: 5000                # output vocabulary: the most frequent types (specials included)
  max_chars: 50
  window: 20                      # tokens per training window
  validation: 0.05                # share of the windows held out (early stopping, perplexity)
  split_seed: 0
model:
  size: small                     # small (a laptop CPU) or elmo_small (ELMo's 2x1024_128_2048cnn_1xhighway)
  projection: null                # any of char_embed, filters, highway, projection, cell, layers overrides the preset
  softmax: full                   # or sampled (for large vocabularies), with `samples` classes per step
  samples: 8192
  precision: float32              # or bf16 (float32 master weights)
  remat: false                    # recompute LSTM steps in the backward pass (less memory)
training: {learning_rate: 0.001, clip_norm: 1.0, batch_size: 32, accumulate: 1, epochs: 5, max_steps: null,
           patience: 3, seed: 0}
metrics: {every: 50, analysis_every: 500, analysis_windows: 4, sample_windows: 64, checkpoint_every: 500}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gradfit.bilm.model import ELMO_SMALL, Setup, Sizes, Softmax
from gradfit.errors import SpecError

PRESETS = {"small": Sizes(), "elmo_small": ELMO_SMALL}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    corpus: str = Field(description="Plain UTF-8 text, one sentence per line (relative to the config file).")
    vocab_size: Annotated[int, Field(ge=4)] = 5000
    max_chars: Annotated[int, Field(ge=3)] = 50
    window: Annotated[int, Field(ge=1)] = 20
    validation: Annotated[float, Field(gt=0, lt=1)] = 0.05
    split_seed: int = Field(0, ge=0)


class ModelConfig(_Section):
    size: Literal["small", "elmo_small"] = "small"
    char_embed: Annotated[int, Field(ge=1)] | None = None
    filters: list[tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]]] | None = Field(
        None, description="[width, count] pairs."
    )
    highway: Annotated[int, Field(ge=0)] | None = None
    projection: Annotated[int, Field(ge=1)] | None = None
    cell: Annotated[int, Field(ge=1)] | None = None
    layers: Annotated[int, Field(ge=1)] | None = None
    softmax: Literal["full", "sampled"] = "full"
    samples: Annotated[int, Field(ge=1)] = 8192
    precision: Literal["float32", "bf16"] = "float32"
    remat: bool = False

    def setup(self, vocab: int) -> Setup:
        base = PRESETS[self.size]
        changes = {k: getattr(self, k) for k in ("char_embed", "highway", "projection", "cell", "layers")}
        changes = {k: v for k, v in changes.items() if v is not None}
        if self.filters is not None:
            changes["filters"] = tuple(tuple(f) for f in self.filters)
        sizes = Sizes(**{**base.__dict__, **changes})
        softmax = Softmax(self.softmax, min(self.samples, vocab))
        return Setup(sizes, vocab, softmax, "bf16" if self.precision == "bf16" else "float32", self.remat)


class TrainingConfig(_Section):
    learning_rate: Annotated[float, Field(gt=0)] = 1e-3
    clip_norm: Annotated[float, Field(gt=0)] | None = Field(1.0, description="Gradient clipping by global norm.")
    batch_size: Annotated[int, Field(ge=1)] = 32
    accumulate: Annotated[int, Field(ge=1)] = Field(1, description="Micro-batches per optimiser step.")
    epochs: Annotated[int, Field(ge=1)] = 5
    max_steps: Annotated[int, Field(ge=1)] | None = None
    patience: Annotated[int, Field(ge=1)] | None = 3
    seed: int = Field(0, ge=0)


class MetricsConfig(_Section):
    every: Annotated[int, Field(ge=1)] = Field(
        50, description="Steps per device call; the step losses, perplexity, accuracy and top-5 accuracy then."
    )
    analysis_every: Annotated[int, Field(ge=1)] = Field(500, description="Steps between error-analysis samples.")
    analysis_windows: Annotated[int, Field(ge=1)] = 4
    sample_windows: Annotated[int, Field(ge=1)] = Field(64, description="Validation windows for the step metrics.")
    checkpoint_every: Annotated[int, Field(ge=1)] = Field(500, description="Steps between resumable checkpoints.")


class BilmConfig(_Section):
    workload: Literal["bilm"] = "bilm"
    name: str = Field("bilm", pattern=r"^[A-Za-z0-9_.-]+$")
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)


def config_from_dict(raw: dict, base_dir: Path | None = None, source: str = "config") -> BilmConfig:
    """Validate; a relative corpus path is made absolute against `base_dir` (the config file's folder)."""
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: a biLM config is a YAML mapping with workload, name, data, ...")
    raw = dict(raw)
    data = raw.get("data")
    if base_dir is not None and isinstance(data, dict) and isinstance(data.get("corpus"), str):
        if not Path(data["corpus"]).is_absolute():
            raw["data"] = {**data, "corpus": str((base_dir / data["corpus"]).resolve())}
    try:
        return BilmConfig.model_validate(raw)
    except ValidationError as exc:
        raise SpecError.from_validation(exc, source) from None
