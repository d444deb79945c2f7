"""Block shapes of the Pallas kernels: people x draws per program, and warps per program."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

from jax.experimental import pallas as pl


class Block(NamedTuple):
    people: int
    draws: int
    warps: int


# One person per program on one warp, and the longest run of draws that still leaves MIN_PROGRAMS programs to
# spread over the GPU (an H100 has 132 multiprocessors; each program loops over its person's indicators or
# rows in series, so too few programs leave most of them idle). Measured on an H100, seed model,
# value+gradient (benchmarks/small_blocks.py, RESULTS.md): 1 x 32 at 326 x 100 (0.39 ms; 2 x 128, the
# shape chosen at 10,000 x 1,000 before, 0.56), 1 x 64 at 1,000 x 200, 1 x 128 at 2,000 x 500 and at
# 10,000 x 1,000 (12.5 ms against 14.1 for 2 x 128). More people or warps per program run out of registers.
DRAWS = (128, 64, 32)
MIN_PROGRAMS = 2048

override: Block | None = None  # benchmarks and tests set it to run other shapes

# A person's items (the ordered kernels' indicators) are split between up to this many programs where the
# blocks alone leave fewer than PART_PROGRAMS programs, at least MIN_PART_ITEMS items each.
PART_PROGRAMS = 4096
MIN_PART_ITEMS = 4
override_parts: int | None = None  # benchmarks and tests


def padding(n: int, multiple: int) -> int:
    """How much to add to n to reach a whole number of `multiple`s."""
    return -n % multiple


def pow2_padding(n: int) -> int:
    """How much to add to n (>= 1) to reach a power of two, as Triton wants for a block's inner sizes."""
    return max(1 << (n - 1).bit_length(), 1) - n


def block_for(n_people: int, n_draws: int) -> Block:
    if override is not None:
        return override
    for draws in DRAWS:
        if n_people * -(-n_draws // draws) >= MIN_PROGRAMS:
            return Block(1, draws, 1)
    return Block(1, DRAWS[-1], 1)


def parts_for(programs: int, items: int) -> int:
    """Into how many programs to split each block's items, for `programs` blocks."""
    if override_parts is not None:
        return max(1, min(override_parts, items))
    return max(1, min(items // MIN_PART_ITEMS, -(-PART_PROGRAMS // max(programs, 1))))


def cuts(items: int, parts: int) -> list[tuple[int, int]]:
    """[start, stop) of each of `parts` nearly equal runs of `items`."""
    edges = [round(q * items / parts) for q in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def each_part(parts: tuple, run) -> None:
    """Inside a kernel on a grid whose last axis numbers the parts: run(parts[q]) for this program's part q."""
    if len(parts) == 1:
        run(parts[0])
        return
    for q, part in enumerate(parts):
        pl.when(pl.program_id(2) == q)(partial(run, part))
