"""The public `Model`: a spec and its data bound to compiled likelihood functions, and `fit()`.

This facade sits above the workload (`iclv`) and the estimation layer and composes them; neither of those
knows about the other.
"""

from __future__ import annotations

import platform
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from gradfit.core.chunks import chunked_map, chunked_sum, plan_chunks
from gradfit.core.generated_draws import seed_key
from gradfit.errors import EstimationError, GradfitError
from gradfit.estimate import FitResult, Problem, covariances, maximize
from gradfit.iclv.build import build, integration_nodes, shared_keys
from gradfit.iclv.measurement import level_shares
from gradfit.iclv.spec import ModelSpec
from gradfit.io import load_data, read_spec, spec_from_dict
from gradfit.placement import Placement, select_devices
from gradfit.runtime import ready

# Functions each optimiser calls before its first iteration; everything else compiles in the background.
_NEEDED_FIRST = {
    "newton": ("value_and_grad", "hessian"),
    "trust_bfgs": ("value_and_grad", "scores"),
    "bfgs": ("value_and_grad",),
}

# The compiled functions, by name (see Model.compile).
FUNCTIONS = ("value_and_grad", "scores", "hessian", "choice")

# Elements (people x draws x widest component) processed at once when building the Hessian column by column.
HESSIAN_BATCH_ELEMENTS = 50_000_000
# Arrays of people x draws x widest component that a value+gradient holds at once (XLA's memory analysis of
# the compiled program: up to 10 on the CPU for Optima classic, 2.4 on an H100 for the seed model at
# 10,000 x 1,000, which XLA's GPU backend fuses more; see benchmarks/NOTES.md), with a margin; with
# CHUNK_MEMORY_SHARE of the free memory it sets the chunks.
WORK_ARRAYS = {"cpu": 12, "gpu": 4}
CHUNK_MEMORY_SHARE = 0.5
# XLA options for the optimiser's programs on GPUs, for problems of at most CONCURRENT_MAX_ELEMENTS per device
# and chunk. The whole program runs as one CUDA graph; by default XLA chains its kernels one after another, and
# at small sizes (the seed model: 68 kernels of 1-40 us) the GPU works through that chain mostly idle.
# CONCURRENT links each kernel only to those whose buffers it reads or overwrites, so independent branches
# (the indicators' and the choice model's passes, the many small reductions that assemble the gradient) run
# side by side. H100, value+gradient, interleaved processes (benchmarks/RESULTS.md): seed model 0.37-0.44 ->
# 0.21-0.32 ms, 2,000 x 500 1.75 -> 1.63 ms; at 10,000 x 1,000 no faster and 1.5x the peak memory (fewer
# buffers can share memory), hence the limit. Benchmarks set it to None to compare.
CONCURRENT_MAX_ELEMENTS = 100_000_000
GPU_COMPILER_OPTIONS = {"xla_gpu_command_buffer_scheduling_mode": "CONCURRENT"}


# On one GPU, the value and the value+gradient of a model whose arrays take at most BIND_MAX_BYTES are compiled
# with the arrays as constants of the program rather than as its arguments. A call then hands XLA one argument
# instead of one per array (15 for the seed model), and XLA computes once, while compiling, what depends on the
# data alone (transposes, pads and masks that the kernels want; 8 of the seed gradient's 67 kernels). H100, seed
# model, interleaved: 0.277 -> 0.244 ms (benchmarks/RESULTS.md). Larger arrays stay arguments: folding them costs
# compile time, and a copy of them would live in the program.
BIND_MAX_BYTES = 16 << 20


def compiler_options(platform: str, chunk_elements: float) -> dict | None:
    """XLA options for a model's optimiser programs: GPU_COMPILER_OPTIONS on a GPU for small problems."""
    return GPU_COMPILER_OPTIONS if platform == "gpu" and chunk_elements <= CONCURRENT_MAX_ELEMENTS else None


class Model:
    """An ICLV model ready to evaluate and estimate.

    spec: a `ModelSpec`, a path to a YAML spec, or a dict with the same structure.
    data: optionally a DataFrame to use instead of the spec's data file.
    """

    def __init__(self, spec: ModelSpec | str | Path | dict, data: pd.DataFrame | None = None, _built=None):
        if isinstance(spec, str | Path):
            spec = read_spec(spec)
        elif isinstance(spec, dict):
            spec = spec_from_dict(spec)
        self.spec: ModelSpec = spec
        self._data = data
        t0 = time.perf_counter()
        if _built is None:  # (given by `variant`: the same model and data under other estimation settings)
            frame = load_data(spec.data, data, source=spec.name)
            _built = build(spec, frame, source=spec.name, label=None if data is None else "data (DataFrame)")
        self._built = _built
        est = spec.estimation
        self.placement = Placement(select_devices(est.device, est.devices))
        self.device = self.placement.device
        # dtype: parameters, per-person log-likelihoods and sums; work_dtype: data, draws, per-draw work.
        self.dtype = jnp.float32 if est.precision == "float32" else jnp.float64
        self.work_dtype = jnp.float64 if est.precision == "float64" else jnp.float32
        self.chunks = plan_chunks(
            self._built.panel.n_people,
            len(self.placement.devices),
            self._work_bytes_per_person(),
            self._chunk_budget(),
            est.chunk_size,
        )
        self._arrays = self.placement.arrays(self._built.arrays, self.work_dtype, self.chunks.multiple, self.dtype)
        self._setup_s = time.perf_counter() - t0
        lik = self._built.likelihood.for_device(self.device.platform, self.work_dtype)
        self._likelihood = lik
        self._layout = lik.layout
        self._shared = frozenset(shared_keys(self._built.arrays))
        self._total = chunked_sum(lik.total, self.chunks, self._shared)  # XLA only: the Hessian differentiates it
        fast = lik.with_kernels(self.device.platform, self.work_dtype)
        fast_total = chunked_sum(self.placement.sum_over_people(fast.total, self._shared), self.chunks, self._shared)
        opts = compiler_options(self.device.platform, self._chunk_elements())
        bound = self._arrays if self._bind_arrays() else None
        self._f = _AheadOfTime(fast_total, opts, bound)
        self._vg = _AheadOfTime(jax.value_and_grad(fast_total), opts, bound)
        self._hess = _AheadOfTime(self._hessian_fn(), opts)
        self._per_person = jax.jit(chunked_map(lik.per_person, self.chunks, self._shared))
        self._scores = _AheadOfTime(chunked_map(self._score_fn(), self.chunks, self._shared), opts)
        self._choice_ll = (
            _AheadOfTime(chunked_sum(lik.choice_only, self.chunks, self._shared), opts)
            if lik.choice is not None
            else None
        )
        self._compiled: set[str] = set()
        self._components = self._component_grads = self._posterior = None  # compiled on first use
        self._row_probs = self._indicator_probs = None

    def _bind_arrays(self) -> bool:
        """Whether the per-iteration programs take the arrays as constants (see BIND_MAX_BYTES)."""
        if len(self.placement.devices) != 1 or self.device.platform != "gpu" or self.chunks.count != 1:
            return False
        return sum(x.nbytes for x in jax.tree_util.tree_leaves(self._arrays)) <= BIND_MAX_BYTES

    def _chunk_elements(self) -> float:
        """The likelihood's elementwise work (people x draws x widest component) per device and chunk."""
        return self._built.elements / (self.chunks.count * self.chunks.shards)

    def _hessian_fn(self):
        """Exact Hessian as Hessian-vector products (forward over reverse), a batch of columns at a time.

        jax.hessian would push all P directions through the model at once, holding P copies of the gradient's
        intermediates (gigabytes at the seed's size); batches keep memory near a few gradients' worth. On a CPU
        one column at a time is fastest, and compiles fastest: a batch's wider arrays only add memory traffic
        (2 cores: seed model 10.9 -> 6.6 s, compile 4.3 -> 2.5 s; Optima classic 2.2 -> 1.6 s). A GPU needs the
        batch to fill it.
        """
        grad = jax.grad(self._total)
        n_params = len(self._layout.free)
        per_chunk = self._chunk_elements()
        batch = int(np.clip(HESSIAN_BATCH_ELEMENTS // max(per_chunk, 1), 1, max(n_params, 1)))
        if all(d.platform == "cpu" for d in self.placement.devices):
            batch = 1

        def hessian(theta, arrays):
            def column(direction):
                return jax.jvp(lambda t: grad(t, arrays), (theta,), (direction,))[1]

            h = jax.lax.map(column, jnp.eye(n_params, dtype=theta.dtype), batch_size=batch)
            return 0.5 * (h + h.T)

        return hessian

    def _chunk_budget(self) -> float:
        """Bytes one device may spend on a chunk's work: a share of its free memory less its inputs."""
        size = jnp.dtype(self.work_dtype).itemsize
        inputs = sum(
            x.size * (size if np.issubdtype(x.dtype, np.floating) else x.itemsize)
            for x in jax.tree_util.tree_leaves(self._built.arrays)
        )
        return CHUNK_MEMORY_SHARE * self.placement.free_bytes() - inputs / len(self.placement.devices)

    def _work_bytes_per_person(self) -> float:
        """Memory one person's share of the value+gradient (or the scores) needs while it is computed."""
        per_person = self._built.elements / max(self._built.panel.n_people, 1)
        arrays = WORK_ARRAYS.get(self.device.platform, WORK_ARRAYS["cpu"])
        return per_person * jnp.dtype(self.work_dtype).itemsize * arrays

    def _score_fn(self):
        """Per-person gradients in one batched reverse pass: people are independent, so vmap over them."""
        lik = self._likelihood
        # Everything is per person except the draw weights, the coefficient constants, and quadrature nodes.
        shared = shared_keys(self._built.arrays)
        axes = {
            k: (None if k in shared else jax.tree_util.tree_map(lambda _: 0, v)) for k, v in self._built.arrays.items()
        }

        def one(theta, a):
            a = {k: (v if k in shared else jax.tree_util.tree_map(lambda x: x[None], v)) for k, v in a.items()}
            return lik.per_person(theta, a)[0]

        return jax.vmap(jax.grad(one), in_axes=(None, axes))

    # -- parameters ---------------------------------------------------------------------------------
    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The free parameters, in spec order."""
        return self._layout.free

    @property
    def start_params(self) -> dict[str, float]:
        return self._layout.to_dict(self._layout.start)

    @property
    def n_individuals(self) -> int:
        return self._built.panel.n_people

    @property
    def n_observations(self) -> int:
        return self._built.panel.n_rows

    def _theta(self, params: dict[str, float] | None) -> jnp.ndarray:
        if params is None:
            vec = self._layout.start
        else:
            try:
                vec = self._layout.to_vector(params)
            except KeyError as exc:
                raise GradfitError(f"{self.spec.name}: {exc.args[0]}") from None
        return self.placement.vector(vec, self.dtype)

    # -- evaluation ---------------------------------------------------------------------------------
    def loglikelihood(self, params: dict[str, float] | None = None) -> float:
        """Simulated log-likelihood at `params` (free parameters; default: the start values)."""
        return float(self._f(self._theta(params), self._arrays))

    def gradient(self, params: dict[str, float] | None = None) -> dict[str, float]:
        """Exact gradient of the simulated log-likelihood (autodiff), by free parameter."""
        _, g = self._vg(self._theta(params), self._arrays)
        return self._layout.to_dict(g)

    def value_and_grad(self, theta) -> tuple[Any, Any]:
        """Log-likelihood and gradient at a free-parameter vector, as device arrays (no host sync)."""
        return self._vg(self.placement.vector(theta, self.dtype), self._arrays)

    def hessian(self, params: dict[str, float] | None = None) -> pd.DataFrame:
        h = np.asarray(self._hess(self._theta(params), self._arrays))
        return pd.DataFrame(h, index=self.parameter_names, columns=self.parameter_names)

    def loglikelihood_per_person(self, params: dict[str, float] | None = None) -> np.ndarray:
        return np.asarray(self._per_person(self._theta(params), self._arrays))[: self.n_individuals]

    def posterior_latent(self, params: dict[str, float] | None = None) -> pd.DataFrame:
        """Each person's posterior mean and standard deviation of each latent variable, given the person's
        indicators and choices (simulated with the estimation draws): columns <LV>_mean and <LV>_sd, one row
        per person (index: the person id)."""
        if self._posterior is None:
            self._posterior = jax.jit(chunked_map(self._likelihood.posterior_latent, self.chunks, self._shared))
        out = np.asarray(self._posterior(self._theta(params), self._arrays))[: self.n_individuals]
        names = list(self.spec.latent_variables)
        cols = {f"{lv}_{stat}": out[:, k, j] for k, lv in enumerate(names) for j, stat in enumerate(("mean", "sd"))}
        return pd.DataFrame(cols, index=pd.Index(self.person_ids, name=self.spec.data.person))

    # -- predictions ----------------------------------------------------------------------------------
    def row_probabilities(self, theta, arrays: dict | None = None) -> jax.Array:
        """(rows, alternatives) simulated choice probabilities of the data rows, in the data's row order, at a
        free-parameter vector; a JAX function of theta (differentiable: the delta method uses its Jacobian).
        arrays: another data set's arrays (`data_arrays`) instead of the model's own."""
        if self._likelihood.choice is None:
            raise GradfitError(f"{self.spec.name}: the model has no choice part, so there is nothing to predict")
        if self._row_probs is None:
            panel = self._built.panel
            probs = chunked_map(self._likelihood.choice_probabilities, self.chunks, self._shared)
            self._row_probs = jax.jit(lambda t, a: probs(t, a)[panel.person, panel.slot])
        return self._row_probs(self.placement.vector(theta, self.dtype), self._arrays if arrays is None else arrays)

    def data_arrays(self, data: pd.DataFrame) -> dict:
        """The model's arrays built from another DataFrame with the same people and rows (a scenario: changed
        attributes), placed like the model's own, for `row_probabilities`."""
        built = build(self.spec, load_data(self.spec.data, data, source=self.spec.name), self.spec.name, "data")
        if built.panel.mask.shape != self._built.panel.mask.shape or not np.array_equal(
            built.panel.person, self._built.panel.person
        ):
            raise GradfitError(f"{self.spec.name}: the new data do not have the model's people and rows")
        return self.placement.arrays(built.arrays, self.work_dtype, self.chunks.multiple, self.dtype)

    def choice_probabilities(self, params: dict[str, float] | None = None) -> pd.DataFrame:
        """Simulated probability of each alternative on each data row (latent variables drawn from their
        structural equations, not conditioned on the person's answers): columns row (1-based file row), the
        person column, chosen (the alternative chosen) and P_<alternative> for each alternative."""
        p = np.asarray(self.row_probabilities(self._theta(params)))
        panel, alts = self._built.panel, list(self.spec.choice.alternatives)
        chosen = np.asarray(self._built.arrays["choice"]["chosen"])[panel.person, panel.slot].argmax(axis=-1)
        frame = {"row": panel.file_rows, self.spec.data.person or "person": panel.person_ids[panel.person]}
        frame["chosen"] = np.asarray(alts, dtype=object)[chosen]
        frame.update({f"P_{a}": p[:, j] for j, a in enumerate(alts)})
        return pd.DataFrame(frame)

    def indicator_distribution(self, params: dict[str, float] | None = None) -> pd.DataFrame:
        """Observed and predicted share of each response level of each discrete indicator (columns indicator,
        level, observed, predicted); predicted: the simulated level probabilities, unconditional as in
        `choice_probabilities`, averaged over the answers observed (each person's rows for row-level ones)."""
        if self._indicator_probs is None:
            self._indicator_probs = jax.jit(
                chunked_map(self._likelihood.indicator_probabilities, self.chunks, self._shared)
            )
        probs = self._indicator_probs(self._theta(params), self._arrays)
        probs = {k: np.asarray(v)[: self.n_individuals] for k, v in probs.items()}
        return level_shares(self._likelihood.indicators, self._built.arrays["measurement"], probs, self.spec)

    def scores(self, params: dict[str, float] | None = None) -> np.ndarray:
        """(individuals, free parameters) gradients of each person's log-likelihood."""
        return np.asarray(self._scores(self._theta(params), self._arrays))[: self.n_individuals]

    # -- diagnosis ----------------------------------------------------------------------------------
    def components(self, params: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """Each component's log-likelihood per person and draw, (individuals, draws), plus 'structural':
        the number of non-finite latent-variable values per person and draw (0 where all are finite)."""
        if self._components is None:
            lik = self._likelihood

            def parts(theta, arrays):
                out = dict(lik.components(theta, arrays))
                out["structural"] = (~jnp.isfinite(lik.latent(theta, arrays))).sum(axis=-1).astype(theta.dtype)
                return out

            self._components = jax.jit(chunked_map(parts, self.chunks, self._shared))
        out = self._components(self._theta(params), self._arrays)
        return {k: np.asarray(v)[: self.n_individuals] for k, v in out.items()}

    def component_gradients(self, params: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """Gradient of each component's sum over people and draws, by free parameter (a vector each)."""
        if self._component_grads is None:
            lik = self._likelihood

            names = [f"measurement:{g.key}" for g in lik.indicators] + (["choice"] if lik.choice else [])

            def grads(theta, arrays):
                def part(name):
                    def total(t, a):
                        per_draw = lik.components(t, a)[name].astype(t.dtype)
                        return (per_draw * a["person_weight"][:, None]).sum()

                    return chunked_sum(total, self.chunks, self._shared)

                return {name: jax.grad(part(name))(theta, arrays) for name in names}

            self._component_grads = jax.jit(grads)
        return {k: np.asarray(v) for k, v in self._component_grads(self._theta(params), self._arrays).items()}

    def value_and_grad_with_draws(
        self, seed: int, params: dict[str, float] | None = None, kind: str | None = None
    ) -> tuple[float, np.ndarray]:
        """Log-likelihood and gradient (vector) with another set of draws (integration.seed = `seed`, and
        optionally another integration.type of the same size), through the same compiled function."""
        update = {"seed": seed} | ({"type": kind} if kind else {})
        spec = self.spec.model_copy(update={"integration": self.spec.integration.model_copy(update=update)})
        if spec.integration.store_draws:
            draws, log_w = integration_nodes(spec, self.n_individuals)
            other = {"draws": draws, "log_weights": log_w}
        else:  # regenerated on the device: only the key changes
            integ = spec.integration
            other = {"draw_seed": seed_key(integ.type, seed, integ.n, len(spec.latent_variables), integ.antithetic)}
        arrays = self.placement.arrays(
            {**self._built.arrays, **other}, self.work_dtype, self.chunks.multiple, self.dtype
        )
        value, grad = self._vg(self._theta(params), arrays)
        return float(value), np.asarray(grad, dtype=float)

    def variant(self, spec: ModelSpec) -> Model:
        """Another model on the same data (the DataFrame this one was given, or the spec's file).

        A spec that differs only in `estimation` (precision, devices, chunks, optimiser) reuses this model's
        built arrays instead of reading and building the data again.
        """
        if spec.model_copy(update={"estimation": self.spec.estimation}) == self.spec:
            return Model(spec, data=self._data, _built=self._built)
        return Model(spec, data=self._data)

    @property
    def log_weights(self) -> np.ndarray:
        """Log-weights of the draws or quadrature nodes, (draws,): -log R for Monte Carlo draws."""
        return np.asarray(self._built.arrays["log_weights"], dtype=float)

    @property
    def person_ids(self) -> np.ndarray:
        return self._built.panel.person_ids

    def file_rows_of(self, person: int) -> np.ndarray:
        """1-based file rows of the person at index `person` (0..individuals-1)."""
        panel = self._built.panel
        return panel.file_rows[panel.person == person]

    # -- estimation ---------------------------------------------------------------------------------
    def problem(self) -> Problem:
        arrays, n = self._arrays, self.n_individuals

        def dev(x):
            return self.placement.vector(x, self.dtype)

        def vg(x):
            # Both copies to the host start as soon as the call is queued, so that one wait covers both
            # (device_get alone already started them together: H100 VM, 0.43 against 0.78 ms per optimiser
            # step on top of the call; benchmarks/step_cost.py). The call is waited for by runtime.ready (a
            # spin, then a block: no thread wake-up on a short call), and device_get then finds the copies
            # done or nearly so.
            out = self._vg(dev(x), arrays)
            for leaf in out:
                leaf.copy_to_host_async()
            v, g = jax.device_get(ready(out))
            return float(v), np.asarray(g, dtype=float)

        return Problem(
            names=self._layout.free,
            start=self._layout.start.astype(float),
            lower=self._layout.lower,
            upper=self._layout.upper,
            value_and_grad=vg,
            hessian=lambda x: np.asarray(self._hess(dev(x), arrays), dtype=float),
            scores=lambda x: np.asarray(self._scores(dev(x), arrays), dtype=float)[:n],
            rounding=0.0 if self.work_dtype == jnp.float64 else float(jnp.finfo(self.work_dtype).eps),
            observations=n,
        )

    def compile(self, which: tuple[str, ...] = FUNCTIONS) -> float:
        """Compile the named functions (default: every one a fit uses) if not done yet; returns the seconds taken.

        Compiled ahead of time for the model's own argument shapes, without being run (the Hessian's one run
        costs as much as ~50 gradients).
        """
        calls = {
            "value_and_grad": self._vg,
            "scores": self._scores,
            "hessian": self._hess,
            "choice": self._choice_ll,
        }
        t0 = time.perf_counter()
        theta = self._theta(None)
        todo = [calls[n] for n in which if n not in self._compiled and calls[n] is not None]
        # XLA compiles one program on one thread: several at once take the time of the longest.
        with ThreadPoolExecutor(max_workers=max(len(todo), 1), thread_name_prefix="gradfit-compile") as pool:
            for future in [pool.submit(fn.compile, theta, self._arrays) for fn in todo]:
                future.result()
        self._compiled.update(which)
        return time.perf_counter() - t0

    def fit(self, optimizer: str | None = None, progress=None, start: dict[str, float] | None = None) -> FitResult:
        """Maximise the simulated log-likelihood and compute standard errors (Hessian, robust, BHHH).

        progress: called with each `Iterate` (iteration, LL, gradient norm, step, elapsed, parameters).
        start: free-parameter values to start from instead of the spec's (e.g. a checkpoint's); every free
        parameter must be given.
        """
        est = self.spec.estimation
        method = optimizer or est.optimizer
        problem = self.problem()
        if start is not None:
            problem = replace(problem, start=np.asarray(self._theta(start), dtype=float))
        # What the optimiser needs is compiled first; the rest (the Hessian's compilation is the longest of all)
        # compiles in a background thread while the optimiser runs, so progress starts sooner and the wait
        # after the optimiser is only what the optimiser did not cover.
        compile_s = self.compile(_NEEDED_FIRST.get(method, ("value_and_grad",)))
        background = _Background(self.compile, tuple(f for f in FUNCTIONS if f not in self._compiled))
        t0 = time.perf_counter()
        initial_ll = problem.value_and_grad(problem.start)[0]
        opt = maximize(problem, method, est.tolerance, est.max_iterations, progress)
        t1 = time.perf_counter()
        if not np.isfinite(opt.loglikelihood):
            raise EstimationError(f"{self.spec.name}: the optimiser ended at a non-finite log-likelihood")
        background_s = background.join()
        t_inference = time.perf_counter()
        compile_s += t_inference - t1
        hess = problem.hessian(opt.theta)
        cov = covariances(hess, problem.scores(opt.theta))
        choice_ll = None
        if self._choice_ll is not None:
            choice_ll = float(self._choice_ll(self.placement.vector(opt.theta, self.dtype), self._arrays))
        t2 = time.perf_counter()
        fixed = {
            n: float(v)
            for n, v in zip(self._layout.names, self._layout.values, strict=True)
            if n not in self._layout.free
        }
        return FitResult(
            model_name=self.spec.name,
            names=self._layout.free,
            theta=opt.theta,
            gradient=opt.gradient,
            hessian=hess,
            cov=cov,
            loglikelihood=opt.loglikelihood,
            initial_loglikelihood=float(initial_ll),
            null_loglikelihood=self._built.null_choice_ll,
            choice_loglikelihood=choice_ll,
            n_observations=self.n_observations,
            n_individuals=self.n_individuals,
            converged=opt.converged,
            iterations=opt.iterations,
            message=opt.message,
            optimizer=method,
            history=tuple(opt.history),
            timings={
                "setup_s": self._setup_s,
                "compile_s": compile_s,  # wall time spent waiting for compilation
                "background_compile_s": background_s,  # compilation overlapped with the optimiser
                "estimate_s": t1 - t0,
                "inference_s": t2 - t_inference,
                "total_s": self._setup_s + compile_s + (t1 - t0) + (t2 - t_inference),
            },
            fixed=fixed,
            settings={
                "integration": self.spec.integration.model_dump(),
                "precision": self.spec.estimation.precision,
                "chunks": self.chunks.count,
                "device": self.placement.describe(),
                "versions": {"jax": jax.__version__, "numpy": np.__version__, "python": platform.python_version()},
            },
        )


class _Background:
    """Runs `fn(arg)` in a daemon thread (JAX compiles and dispatches from any thread); `join` waits for it,
    returns the seconds it took and re-raises its exception. Daemon: an interrupted fit does not wait for it."""

    # Tracing and lowering (the Hessian's above all) is Python that holds the GIL for seconds. With the
    # interpreter's default 5 ms switch interval the optimiser's thread then waits up to 5 ms for the GIL at
    # each hand-over, which matters on a GPU, where a step's own work takes a fraction of a millisecond: on an
    # H100 the seed model's first fit optimised in 1.7-1.8 s with it and in 1.0-1.2 s with 0.1 ms (0.01 ms is
    # no better; 0.44 s with nothing compiling beside it). The interval is restored when the thread ends.
    SWITCH_INTERVAL = 1e-4

    def __init__(self, fn, arg) -> None:
        self._seconds = 0.0
        self._error: BaseException | None = None
        self._interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._interval, self.SWITCH_INTERVAL))
        self._thread = threading.Thread(target=self._run, args=(fn, arg), daemon=True, name="gradfit-compile")
        self._thread.start()

    def _run(self, fn, arg) -> None:
        try:
            self._seconds = fn(arg)
        except BaseException as exc:  # handed to the caller by join()
            self._error = exc
        finally:
            sys.setswitchinterval(self._interval)

    def join(self) -> float:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._seconds


class _AheadOfTime:
    """A jitted function of (theta, arrays) that can be compiled for given arguments without running it.

    Calls go to the compiled executable when one exists and the arguments match it (shapes, dtypes,
    placement), otherwise to the jitted function, which compiles for what it is given as usual (e.g. another
    set of draws of a different size). With `bound` arrays, calls given exactly those arrays (the same object)
    run a program that holds them as constants and takes theta alone (see BIND_MAX_BYTES); other arrays take
    the general program.
    """

    def __init__(self, fn, compiler_options: dict | None = None, bound: dict | None = None) -> None:
        self.jitted = jax.jit(fn, compiler_options=compiler_options)
        self.executable = None
        self._bound = bound
        self._bound_jitted = (
            None if bound is None else jax.jit(lambda theta: fn(theta, bound), compiler_options=compiler_options)
        )
        self._bound_executable = None

    def lower(self, theta, arrays):
        """The lowered program that a call with these arguments runs."""
        return self._bound_jitted.lower(theta) if arrays is self._bound else self.jitted.lower(theta, arrays)

    def compile(self, theta, arrays) -> None:
        if arrays is self._bound:
            if self._bound_executable is None:
                self._bound_executable = self.lower(theta, arrays).compile()
        elif self.executable is None:
            self.executable = self.lower(theta, arrays).compile()

    def __call__(self, theta, arrays):
        bound = arrays is self._bound
        executable = self._bound_executable if bound else self.executable
        if executable is not None:
            try:
                return executable(theta) if bound else executable(theta, arrays)
            except TypeError:  # the executable checks its arguments' types before running anything
                pass
        return self._bound_jitted(theta) if bound else self.jitted(theta, arrays)
