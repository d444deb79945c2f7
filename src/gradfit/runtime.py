"""Process-wide settings that make JAX fast on a CPU, applied once when gradfit is imported, and `ready`, the
way gradfit waits for a call's results (a short spin before blocking; see SPIN_S).

The settings are measured on the seed model (benchmarks/RESULTS.md) and each can be turned off:

- One JAX device per core. XLA's CPU backend runs most of a jitted function on one thread; with one device
  per core the people are split across them (gradfit.placement). 2 cores: value 43 -> 15 ms.
- JAX's persistent compilation cache: a model compiled once (same structure, shapes, device and versions) is
  read back from disk in later processes instead of compiled again (the Hessian of Optima's classic model
  takes ~20 s to compile on an H100 host). GRADFIT_COMPILATION_CACHE=0 turns it off, =DIR moves it from the
  default $XDG_CACHE_HOME/gradfit/jax (~/.cache/gradfit/jax).
- glibc's malloc keeps freed memory instead of returning it. XLA allocates each large intermediate afresh
  on every call; by default glibc serves blocks of that size with mmap and unmaps them on free, so each call
  page-faults every intermediate in again (zeroed by the kernel). That costs as much as the arithmetic: 2
  cores, value+gradient 60 -> 30 ms. The price: the process keeps its peak memory until it exits.
"""

from __future__ import annotations

import ctypes
import os
import platform
import time
from pathlib import Path

import jax

# More CPU devices than this gives each one too little work to pay for the split.
MAX_CPU_DEVICES = 16
ENV_CPU_DEVICES = "GRADFIT_CPU_DEVICES"
ENV_MALLOC = "GRADFIT_MALLOC_TUNING"
ENV_CACHE = "GRADFIT_COMPILATION_CACHE"

# mallopt parameter numbers from glibc's malloc.h.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def configure_cpu_devices() -> None:
    """Ask JAX for one CPU device per available core; a no-op once JAX's backends have started.

    GRADFIT_CPU_DEVICES=n overrides the count (1 turns the split off); an XLA_FLAGS device count set by the
    user wins over both.
    """
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    wanted = os.environ.get(ENV_CPU_DEVICES, "").strip()
    count = int(wanted) if wanted.isdigit() and int(wanted) > 0 else min(cores, MAX_CPU_DEVICES)
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except (RuntimeError, AttributeError):
        pass  # the caller's JAX is already running (or too old for the option): keep its devices


def configure_compilation_cache() -> str | None:
    """Point JAX's persistent compilation cache at gradfit's cache folder; returns it (None when off).

    A user's own jax_compilation_cache_dir (set before importing gradfit) is kept.
    """
    setting = os.environ.get(ENV_CACHE, "").strip()
    if setting == "0" or jax.config.jax_compilation_cache_dir:
        return None
    if setting:
        folder = Path(setting).expanduser()
    else:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gradfit" / "jax"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # read-only home, say: compile every time rather than fail
    jax.config.update("jax_compilation_cache_dir", str(folder))
    # JAX caches only programs that took over a second to compile; the scores and the choice part of a model
    # take less, and reading them back is still faster.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    return str(folder)


def tune_allocator() -> bool:
    """Keep large freed blocks in glibc's heap (see the module docstring); False where it does not apply.

    GRADFIT_MALLOC_TUNING=0 turns it off. Other C libraries (macOS, musl) are left alone.
    """
    if os.environ.get(ENV_MALLOC, "1").strip() == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    ok = libc.mallopt(_M_MMAP_THRESHOLD, 2**31 - 1)
    ok &= libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    ok &= libc.mallopt(_M_TOP_PAD, 1 << 30)
    return bool(ok)


# How long `ready` spins before it blocks, on arrays held by accelerators. A blocking wait
# (jax.block_until_ready) puts the thread to sleep until the device's completion event wakes it; on the H100
# VM the wake-up alone costs ~20-30 us (a trivial call 74 -> 56 us, the seed model's value+gradient 220 -> 191
# us; benchmarks/RESULTS.md). An optimiser waits on every value and gradient, so short waits spin on
# is_ready() instead; a call still running after SPIN_S is waited for by blocking, so long calls do not keep a
# core busy. Arrays on CPU devices are never spun for: the spinning thread would take a core from the
# computation it waits for (2 cores, seed model: an optimiser step 13.7 -> 17.5 ms).
SPIN_S = 0.002
NO_SPIN = ("cpu",)  # platforms whose arrays are waited for by blocking at once


def ready(tree):
    """Wait until every JAX array in `tree` is computed (on accelerators spinning up to SPIN_S, then
    blocking); returns tree."""
    leaves = [x for x in jax.tree_util.tree_leaves(tree) if isinstance(x, jax.Array)]
    if any(d.platform in NO_SPIN for x in leaves for d in x.devices()):
        return jax.block_until_ready(tree)
    deadline = time.perf_counter() + SPIN_S
    for x in leaves:
        while not x.is_ready():
            if time.perf_counter() > deadline:
                return jax.block_until_ready(tree)
    return tree
