"""Where a model's arrays live: one accelerator, or the people split across the CPU's cores.

On a CPU, gradfit.runtime has asked JAX for one device per core; the people are split across them: the
likelihood is a sum over people, so each device computes its share and XLA adds the results. On a GPU one
device holds everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gradfit.errors import GradfitError
from gradfit.iclv.build import pad_people, shared_keys


def select_devices(kind: str) -> tuple:
    """The devices a model runs on for estimation.device = 'cpu', 'gpu' or 'auto' (the default backend)."""
    if kind == "auto":
        kind = jax.default_backend()
    try:
        devices = jax.devices(kind)
    except RuntimeError:
        raise GradfitError(
            f"estimation.device: no {kind} device is visible to JAX; install gradfit[cuda] or use device: cpu"
        ) from None
    # Accelerators: one device per model for now; several GPUs are a separate decision (memory, transfer cost).
    return tuple(devices) if kind == "cpu" else (devices[0],)


@dataclass(frozen=True)
class Placement:
    """Puts a model's array pytree and its parameter vectors onto `devices`, people split along axis 0."""

    devices: tuple

    @property
    def device(self):
        return self.devices[0]

    def describe(self) -> str:
        d = self.device
        return f"{d.platform}:{d.id}" if len(self.devices) == 1 else f"{d.platform} x{len(self.devices)}"

    @cached_property
    def _shardings(self):
        """(people split, replicated): built once, since `vector` runs on every optimiser step."""
        if len(self.devices) == 1:
            return self.device, self.device
        mesh = Mesh(np.array(self.devices), ("people",))
        return NamedSharding(mesh, PartitionSpec("people")), NamedSharding(mesh, PartitionSpec())

    def arrays(self, arrays: dict, dtype) -> dict:
        """Cast floating arrays to `dtype`, pad the people to equal shares and place them."""
        split, whole = self._shardings
        shared = shared_keys(arrays)
        arrays = pad_people(arrays, len(self.devices))

        def put(x, target):
            x = np.asarray(x)
            if np.issubdtype(x.dtype, np.floating):
                x = x.astype(dtype, copy=False)  # no copy of a large draws array already in dtype
            return jax.device_put(x, target)

        return {
            k: jax.tree_util.tree_map(lambda x, t=(whole if k in shared else split): put(x, t), v)
            for k, v in arrays.items()
        }

    def vector(self, x, dtype) -> jax.Array:
        """A parameter vector, replicated on every device."""
        return jax.device_put(jnp.asarray(x, dtype), self._shardings[1])
