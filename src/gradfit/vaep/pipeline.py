"""The VAEP workload end to end, without I/O: SPADL table -> features and labels -> trained MLP -> values.

`prepare` puts a competition's actions on the device and computes every feature and label there in one call;
`split_games` holds out whole games (actions of one game are not independent); `gradfit.train.vaep` fits
the MLP; `rate` gives each action its probabilities and VAEP values. A trained model is a
`VaepModel` (weights, feature scaler, positive weights, settings) that round-trips through `to_bytes`.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from gradfit.errors import DataError
from gradfit.vaep import model as mlp
from gradfit.vaep.arrays import Actions, actions_arrays
from gradfit.vaep.features import feature_names, features
from gradfit.vaep.formula import values
from gradfit.vaep.labels import labels

HEADS = ("scores", "concedes")


class Prepared(NamedTuple):
    actions: Actions  # on the device
    x: jnp.ndarray  # (n, features) float32, on the device
    y: jnp.ndarray | None  # (n, 2) bool: scores, concedes (None when prepared for rating only)
    game: np.ndarray  # (n,) int game code per action (host)
    game_ids: np.ndarray  # game code -> the table's game_id


class VaepModel(NamedTuple):
    params: dict
    scaler: mlp.Scaler
    pos_weight: np.ndarray  # (2,) the positive weights used in training (undone at prediction)
    precision: str  # "bf16" or "float32"
    previous_actions: int


def prepare(
    frame: pd.DataFrame, previous_actions: int = 3, horizon: int | None = 10, source: str = "actions"
) -> Prepared:
    """Actions on the device with their features, and their labels unless `horizon` is None (rating needs none)."""
    host = actions_arrays(frame, source=source)
    game_ids = pd.unique(frame["game_id"])
    acts = jax.device_put(host)
    x = features(acts, previous_actions)
    y = None if horizon is None else labels(acts, horizon)
    return Prepared(acts, x, y, np.asarray(host.game), np.asarray(game_ids))


def _count(spec: float, total: int) -> int:
    """A fraction (< 1) of `total`, at least 1 when positive; or a count (>= 1)."""
    if spec <= 0:
        return 0
    return max(1, int(round(spec * total))) if spec < 1 else int(spec)


def split_games(n_games: int, validation: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """Game codes of the train / validation / test sets: a seeded shuffle of whole games."""
    n_val, n_test = _count(validation, n_games), _count(test, n_games)
    if n_games - n_val - n_test < 1:
        raise DataError(
            f"{n_games} game(s) cannot give {n_val} validation and {n_test} test game(s) and still leave one to "
            "train on; lower data.validation_games / data.test_games or add games"
        )
    order = np.random.default_rng(seed).permutation(n_games)
    return {"validation": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}


def rows(prepared: Prepared, games: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isin(prepared.game, games))


def positive_weights(setting: float | str, y_train: np.ndarray) -> np.ndarray:
    """The configured weight for both heads, or 'balanced': negatives / positives of each head."""
    if setting == "balanced":
        pos = y_train.sum(axis=0)
        if (pos == 0).any():
            raise DataError("training games have no goal within the horizon; 'balanced' weights are undefined")
        return ((len(y_train) - pos) / pos).astype(np.float32)
    return np.full(2, float(setting), np.float32)


def predict(model: VaepModel, x: jnp.ndarray) -> jnp.ndarray:
    """(n, 2) probabilities of scoring and conceding."""
    compute = mlp.COMPUTE[model.precision]
    z = mlp.standardize(model.scaler, x, compute)
    return mlp.predict(model.params, z, jnp.asarray(model.pos_weight), compute)


def rate(model: VaepModel, prepared: Prepared) -> jnp.ndarray:
    """(n, 5): P(scores), P(concedes), offensive, defensive and total VAEP value of every action."""
    if prepared.x.shape[1] != len(feature_names(model.previous_actions)):
        raise DataError("the actions' features do not match the model's (different previous_actions)")
    p = predict(model, prepared.x)
    return jnp.concatenate([p, values(prepared.actions, p[:, 0], p[:, 1])], axis=1)


def to_bytes(model: VaepModel) -> bytes:
    """An .npz of the weights and scaler, with the settings as JSON: loads without pickle."""
    leaves = jax.tree_util.tree_leaves(model.params)  # dict keys sorted: the order from_bytes rebuilds
    arrays = {f"p{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}
    meta = {
        "hidden": [int(layer["w"].shape[1]) for layer in model.params["hidden"]],
        "inputs": int(model.scaler.mean.shape[0]),
        "precision": model.precision,
        "previous_actions": model.previous_actions,
        "leaves": len(leaves),
    }
    buf = io.BytesIO()
    np.savez(
        buf,
        meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
        mean=np.asarray(model.scaler.mean),
        scale=np.asarray(model.scaler.scale),
        pos_weight=np.asarray(model.pos_weight),
        **arrays,
    )
    return buf.getvalue()


def from_bytes(data: bytes, source: str = "model") -> VaepModel:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            meta = json.loads(bytes(npz["meta"]).decode())
            leaves = [jnp.asarray(npz[f"p{i}"]) for i in range(meta["leaves"])]
            scaler = mlp.Scaler(jnp.asarray(npz["mean"]), jnp.asarray(npz["scale"]))
            pos_weight = np.asarray(npz["pos_weight"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{source}: not a gradfit VAEP model ({exc}); train it again") from None
    template = mlp.init_params(jax.random.key(0), meta["inputs"], tuple(meta["hidden"]), np.full(2, 0.5))
    params = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(template), leaves)
    return VaepModel(params, scaler, pos_weight, meta["precision"], meta["previous_actions"])
