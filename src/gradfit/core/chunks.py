"""Sums and maps over chunks of people, so that memory grows with the chunk, not with people x draws.

A simulated likelihood is a sum over people, and the per-person quantities (log-likelihood, scores) are
independent across people. Both can therefore be computed a chunk of people at a time: `chunked_sum` runs
the chunks in a `lax.scan` whose body is rematerialised (`jax.checkpoint`), so the reverse pass keeps only
the running sum between chunks and recomputes one chunk's intermediates at a time; `chunked_map` stacks a
per-person function's outputs chunk by chunk.

Layout. Every per-person array has the people on axis 0, padded to `shards * count * m` people and, on
several devices, split into `shards` contiguous blocks (one per device). Viewing axis 0 as
(shards, count, m) keeps each device's block whole, so chunk i is the i-th slice of m people of every
device's block: each step works on all devices at once, and no array moves between devices. The views and
slices are reshapes and dynamic slices (no copies of the inputs).

With one chunk the functions are returned unchanged: the common case pays nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax import lax


@dataclass(frozen=True)
class Chunks:
    """How the people axis is cut: `shards` device blocks (1 on one device), each in `count` chunks."""

    shards: int = 1
    count: int = 1

    @property
    def multiple(self) -> int:
        """The people axis must be padded to a multiple of this."""
        return self.shards * self.count


def _take(arrays: dict, shared: frozenset[str], chunks: Chunks, i) -> dict:
    """Chunk i: m people from each of the `shards` blocks, as arrays with (shards * m) people on axis 0."""

    def take(x):
        x = x.reshape(chunks.shards, chunks.count, x.shape[0] // chunks.multiple, *x.shape[1:])
        y = lax.dynamic_index_in_dim(x, i, axis=1, keepdims=False)
        return y.reshape(-1, *y.shape[2:])

    return {k: (v if k in shared else jax.tree_util.tree_map(take, v)) for k, v in arrays.items()}


def chunked_sum(fn: Callable, chunks: Chunks, shared: frozenset[str]) -> Callable:
    """fn(theta, arrays) -> scalar, a sum over people, computed chunk by chunk.

    The running sum has theta's dtype: with float64 parameters and float32 arrays (precision 'mixed') the
    chunks' values, and in the reverse pass their gradients, accumulate in float64.
    """
    if chunks.count == 1:
        return fn

    def total(theta, arrays):
        def body(acc, i):
            return acc + fn(theta, _take(arrays, shared, chunks, i)).astype(acc.dtype), None

        # checkpoint: the reverse pass recomputes each chunk from (theta, i) instead of storing its
        # intermediates, so the memory held across the scan is one scalar per chunk.
        acc, _ = lax.scan(jax.checkpoint(body), jnp.zeros((), theta.dtype), jnp.arange(chunks.count))
        return acc

    return total


def chunked_map(fn: Callable, chunks: Chunks, shared: frozenset[str]) -> Callable:
    """fn(theta, arrays) -> pytree of per-person arrays (people on axis 0), computed chunk by chunk."""
    if chunks.count == 1:
        return fn

    def mapped(theta, arrays):
        out = lax.map(lambda i: fn(theta, _take(arrays, shared, chunks, i)), jnp.arange(chunks.count))

        def people_first(y):  # (count, shards * m, ...) -> (shards * count * m, ...), the input's order
            y = y.reshape(chunks.count, chunks.shards, -1, *y.shape[2:])
            return jnp.swapaxes(y, 0, 1).reshape(-1, *y.shape[3:])

        return jax.tree_util.tree_map(people_first, out)

    return mapped


def plan_chunks(n_people: int, shards: int, bytes_per_person: float, budget_bytes: float, size=None) -> Chunks:
    """The chunking for `n_people` on `shards` devices.

    size: people per chunk and device (a spec's estimation.chunk_size); None or 'auto': one chunk if a
    device's share of the work fits `budget_bytes`, else the fewest chunks that fit (at least one person).
    """
    per_shard = -(-n_people // shards)
    if size in (None, "auto"):
        size = max(int(budget_bytes // max(bytes_per_person, 1.0)), 1)
    count = -(-per_shard // min(int(size), per_shard))
    return Chunks(shards=shards, count=count)
