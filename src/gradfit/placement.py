"""Where a model's arrays live: the people split across devices (data parallel), the rest replicated.

The likelihood is a sum over people, so each device computes its share and the shares are added (one
reduction). On a CPU, gradfit.runtime has asked JAX for one device per core; on GPUs every visible GPU takes
a share unless estimation.devices says otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gradfit.errors import GradfitError
from gradfit.iclv.build import pad_people, shared_keys

# Arrays used after each person's integral over the draws: kept in the outer precision.
OUTER_KEYS = ("log_weights", "person_weight")


def select_devices(kind: str, count: int | str = "all") -> tuple:
    """The devices a model runs on: estimation.device = 'cpu', 'gpu' or 'auto' (the default backend), and
    estimation.devices = 'all' or how many of them.

    jax.devices() lists every process's devices, so under jax.distributed the people are split across all
    hosts' devices as well.
    """
    if kind == "auto":
        kind = jax.default_backend()
    try:
        devices = jax.devices(kind)
    except RuntimeError:
        raise GradfitError(
            f"estimation.device: no {kind} device is visible to JAX; install gradfit[cuda] or use device: cpu"
        ) from None
    if count == "all":
        return tuple(devices)
    if count > len(devices):
        raise GradfitError(
            f"estimation.devices: {count} {kind} devices asked for, {len(devices)} visible; use 'all' or fewer"
        )
    return tuple(devices[:count])


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
    def _mesh(self) -> Mesh:
        return Mesh(np.array(self.devices), ("people",))

    @cached_property
    def _shardings(self):
        """(people split, replicated): built once, since `vector` runs on every optimiser step."""
        if len(self.devices) == 1:
            return self.device, self.device
        return NamedSharding(self._mesh, PartitionSpec("people")), NamedSharding(self._mesh, PartitionSpec())

    def sum_over_people(self, fn, shared: frozenset[str]):
        """fn(theta, arrays) -> a sum over the people in `arrays`, over this placement's devices: per GPU
        (`per_device_sum`), and through XLA's partitioner on CPUs and on one device (fn itself, given arrays
        split over the devices).

        GPUs need the per-device form for the Pallas kernels (see per_device_sum). CPUs run no kernels and keep
        the partitioner, their long-tested path and about as fast (seed model, 2 cores, interleaved: 13.3 ms
        through the partitioner, 13.0 per device; benchmarks/RESULTS.md). The per-device form on CPUs is how
        a JAX 0.11.2 crash came to light: empty arrays of parameters under shard_map (a logit without latent
        variables in its utilities; iclv.choice no longer builds them).
        """
        if len(self.devices) == 1 or self.device.platform == "cpu":
            return fn
        return self.per_device_sum(fn, shared)

    def per_device_sum(self, fn, shared: frozenset[str]):
        """fn summed per device over its own block of people (shard_map), the blocks added by one psum.

        Written per device rather than left to XLA's partitioner because a Pallas kernel (gradfit.kernels) is
        an opaque call that the partitioner cannot split: inside shard_map each device runs the kernel on its
        own people, so the kernels serve several GPUs as they serve one.
        """
        people = PartitionSpec("people")

        def local(theta, arrays):
            return jax.lax.psum(fn(theta, arrays), "people")

        def total(theta, arrays):
            specs = {k: PartitionSpec() if k in shared else people for k in arrays}
            # check_vma=False: a Pallas call's outputs carry no record of how they vary across devices.
            return jax.shard_map(
                local, mesh=self._mesh, in_specs=(PartitionSpec(), specs), out_specs=PartitionSpec(), check_vma=False
            )(theta, arrays)

        return total

    def arrays(self, arrays: dict, dtype, multiple: int | None = None, outer_dtype=None) -> dict:
        """Cast floating arrays to `dtype`, pad the people to a multiple of `multiple` (default: the number
        of devices; chunks need more) and place them.

        outer_dtype: the type of the draw weights and person weights, which enter after each person's
        integral over the draws (float64 under precision 'mixed'); default `dtype`.
        """
        split, whole = self._shardings
        shared = shared_keys(arrays)
        arrays = pad_people(arrays, multiple or len(self.devices))

        def put(x, target, dt):
            x = np.asarray(x)
            if np.issubdtype(x.dtype, np.floating):
                x = x.astype(dt, copy=False)  # no copy of a large draws array already in dtype
            if jax.process_count() == 1:
                return jax.device_put(x, target)
            # Several processes (jax.distributed): each one holds the whole host array and hands over the
            # blocks of its own devices.
            return jax.make_array_from_callback(x.shape, target, lambda index: x[index])

        def place(key, tree):
            target = whole if key in shared else split
            dt = (outer_dtype or dtype) if key in OUTER_KEYS else dtype
            return jax.tree_util.tree_map(lambda x: put(x, target, dt), tree)

        return {k: place(k, v) for k, v in arrays.items()}

    def free_bytes(self) -> float:
        """Free memory of the fullest of this process's devices; a CPU's devices share the machine's RAM."""
        mine = [d for d in self.devices if d.process_index == jax.process_index()]
        if mine[0].platform == "cpu":
            return available_ram() / len(mine)
        frees = []
        for d in mine:
            stats = d.memory_stats() or {}
            if "bytes_limit" not in stats:
                return float("inf")  # the backend does not say: no limit known, no chunking
            frees.append(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
        return float(min(frees))

    def vector(self, x, dtype) -> jax.Array:
        """A parameter vector, replicated on every device.

        A host vector goes straight to its devices: through jnp.asarray it would first be copied to the
        default device (H100 VM: 0.30 against 0.25 ms per optimiser step; benchmarks/step_cost.py)."""
        x = x.astype(dtype) if isinstance(x, jax.Array) else np.asarray(x, dtype)
        return jax.device_put(x, self._shardings[1])


def available_ram() -> float:
    """Bytes of RAM available to new allocations (Linux: MemAvailable), else the free pages."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return float("inf")
