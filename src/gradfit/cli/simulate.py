"""`gradfit simulate`: write the synthetic seed-sized ICLV dataset, its true parameters and its spec."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def simulate(
    out: Path = typer.Option(
        Path("examples/seed_iclv"), "--out", help="Folder to write data.csv, truth.json and seed_iclv.yaml into."
    ),
    people: int = typer.Option(326, help="Number of people."),
    tasks: int = typer.Option(18, help="Choice situations per person."),
    draws: int = typer.Option(100, help="Halton draws per person in the written spec."),
    seed: int = typer.Option(2026, help="Random seed."),
) -> None:
    """Write a synthetic dataset shaped like the user's study (326 x 18, 5 latent variables, ~200 parameters)."""
    import yaml

    from gradfit.errors import GradfitError
    from gradfit.iclv.simulate import seed_model
    from gradfit.io.files import atomic_write_text

    if people < 2 or tasks < 1 or draws < 1:
        raise GradfitError("--people must be >= 2, --tasks and --draws >= 1")
    sim = seed_model(n_people=people, n_tasks=tasks, n_draws=draws, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "data.csv", sim.data.to_csv(index=False))
    atomic_write_text(out / "truth.json", json.dumps(sim.truth, indent=1) + "\n")
    header = (
        f"# Written by `gradfit simulate --people {people} --tasks {tasks} --draws {draws} --seed {seed}`:\n"
        "# the spec that estimates the synthetic data in data.csv (true values in truth.json).\n"
    )
    atomic_write_text(out / "seed_iclv.yaml", header + yaml.safe_dump(sim.spec, sort_keys=False, width=120))
    print(out / "seed_iclv.yaml")
