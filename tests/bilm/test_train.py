"""biLM training end to end on the shipped corpus: learning, run folders, eval, embed, exact resume."""

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from gradfit.bilm.data import build_corpus, read_corpus, split, windows
from gradfit.cli.bilm_run import eval_run, train_run
from gradfit.cli.main import main

CORPUS = Path(__file__).parents[2] / "examples" / "bilm" / "corpus.txt"
TINY_MODEL = {
    "size": "small", "char_embed": 4, "filters": [[1, 8], [2, 8], [3, 16]], "highway": 1, "projection": 32,
    "cell": 64, "layers": 2, "precision": "float32",
}  # fmt: skip


def write_config(folder: Path, lines: int, **training) -> Path:
    text = CORPUS.read_text(encoding="utf-8").splitlines()[:lines]
    (folder / "corpus.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
    config = {
        "workload": "bilm",
        "name": "tiny",
        "data": {"corpus": "corpus.txt", "vocab_size": 300, "max_chars": 12, "window": 10, "validation": 0.1},
        "model": TINY_MODEL,
        "training": {"learning_rate": 0.01, "batch_size": 16, "epochs": 2, "patience": None, "seed": 0, **training},
        "metrics": {"every": 10, "analysis_every": 20, "analysis_windows": 2, "sample_windows": 16,
                    "checkpoint_every": 10},
    }  # fmt: skip
    path = folder / "bilm.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def unigram_perplexity(lines: int, config: dict) -> float:
    """Perplexity on the validation windows of predicting every token by its training frequency (add-one)."""
    sentences = read_corpus(CORPUS)[:lines]
    corpus = build_corpus(sentences, config["vocab_size"], config["max_chars"])
    train, val = split(windows(corpus.stream, config["window"]), config["validation"], 0)
    counts = Counter(corpus.to_vocab[train[:, 1:-1]].ravel().tolist())
    total = sum(counts.values()) + corpus.vocab_size
    targets = np.concatenate([corpus.to_vocab[val[:, 2:]].ravel(), corpus.to_vocab[val[:, :-2]].ravel()])
    targets = targets[targets != 0]
    return math.exp(-np.mean([math.log((counts[t] + 1) / total) for t in targets]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bilm")
    config = write_config(folder, 1200, epochs=3)
    lines = []
    run, record = train_run(config, [], folder / "runs", "t", None, lines.append)
    return folder, config, run, record, lines


def test_perplexity_drops_below_the_unigram_model(trained):
    folder, config, run, record, _ = trained
    data = yaml.safe_load(config.read_text())["data"]
    bound = unigram_perplexity(1200, data)
    # three epochs (about 100 steps) of a tiny model beat the best context-free model, with room to spare
    assert record["val_perplexity"] < 0.8 * bound, (record["val_perplexity"], bound)
    history = pd.read_csv(run.path / "history.csv")
    assert history["val_loss"].iloc[-1] < history["val_loss"].iloc[0]


def test_run_folder_holds_metrics_in_blocks_checkpoints_and_results(trained):
    _, _, run, record, lines = trained
    names = {p.name for p in run.path.iterdir()}
    assert {"config.yaml", "corpus.npz", "history.csv", "metrics.csv", "analysis.jsonl", "state.npz", "best.npz",
            "log.txt", "results.json"} <= names  # fmt: skip
    metrics = pd.read_csv(run.path / "metrics.csv")
    gaps = np.diff(np.r_[0, metrics["step"]])  # a row per device call of 10 steps; an epoch's last may be shorter
    assert (gaps <= 10).all() and (gaps == 10).sum() >= len(gaps) - 3
    assert metrics["step"].is_monotonic_increasing and metrics["sample_top5"].between(0, 1).all()
    assert (metrics["sample_top5"] >= metrics["sample_accuracy"]).all()
    analysis = [json.loads(x) for x in (run.path / "analysis.jsonl").read_text().splitlines()]
    assert analysis and all(len(a["target"]) == len(a["predicted"]) for a in analysis)
    results = json.loads((run.path / "results.json").read_text())
    assert results["workload"] == "bilm" and results["val_perplexity"] == pytest.approx(math.exp(results["val_loss"]))
    assert any("sample ppl" in line for line in lines)


def test_runs_and_show_list_the_bilm_run(trained, capsys):
    folder, _, run, record, _ = trained
    assert main(["runs", str(folder / "runs"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    (row,) = [r for r in rows if r["run"] == run.path.name]
    assert row["status"] == "complete" and row["workload"] == "bilm" and row["val_loss"] == record["val_loss"]
    assert main(["show", str(run.path)]) == 0
    assert f"validation perplexity {record['val_perplexity']:.3f}" in capsys.readouterr().out


def test_eval_reproduces_the_validation_perplexity_and_scores_new_text(trained, tmp_path):
    folder, _, run, record, _ = trained
    res = eval_run(run.path, None, 32)
    assert res["window_mean_perplexity"] == pytest.approx(record["val_perplexity"], rel=1e-4)
    held_out = tmp_path / "held_out.txt"
    held_out.write_text("\n".join(CORPUS.read_text().splitlines()[5000:5100]) + "\n")
    other = eval_run(run.path, held_out, 32)
    assert other["tokens"] > 500 and 1 < other["perplexity"] < 10 * record["val_perplexity"]
    assert 0 <= other["accuracy"] <= other["top5"] <= 1


def test_embed_writes_three_layers_and_their_mix(trained, tmp_path, capsys):
    _, _, run, _, _ = trained
    text = tmp_path / "s.txt"
    text.write_text("To be , or not to be .\nO Romeo , Romeo !\n")
    out = tmp_path / "emb.npz"
    assert main(["bilm", "embed", str(run.path), str(text), "--out", str(out)]) == 0
    z = np.load(out)
    assert z["layers"].shape == (10 + 7, 3, 64) and list(z["offsets"]) == [0, 10, 17]  # <s> words </s>
    assert list(z["tokens"][:3]) == ["<s>", "To", "be"]
    np.testing.assert_allclose(z["mix"], z["layers"].mean(axis=1), rtol=1e-5, atol=1e-6)
    # layer 0 is context-free: the same word has the same vector; layer 2 is not
    first, second = 2, 7  # "be" twice in sentence 1
    np.testing.assert_array_equal(z["layers"][first, 0], z["layers"][second, 0])
    assert not np.allclose(z["layers"][first, 2], z["layers"][second, 2])


def test_resume_continues_bit_for_bit(tmp_path):
    config = write_config(tmp_path, 300, epochs=2)
    straight, _ = train_run(config, [], tmp_path / "a", None, None, lambda line: None)

    class Stop(Exception):
        pass

    seen = []

    def stop_at_the_third_block(line):  # an interruption in epoch 2, after the checkpoint of step 10
        seen.append(line)
        if sum(x.startswith("step ") for x in seen) == 3:
            raise Stop

    with pytest.raises(Stop):
        train_run(config, [], tmp_path / "b", None, None, stop_at_the_third_block)
    (interrupted,) = (tmp_path / "b" / "tiny").glob("2*")
    assert not (interrupted / "results.json").exists() and (interrupted / "state.npz").exists()
    resumed, _ = train_run(config, [], None, None, interrupted, lambda line: None)
    a, b = np.load(straight.path / "best.npz"), np.load(resumed.path / "best.npz")
    assert [k for k in a.files if k != "meta"] == [k for k in b.files if k != "meta"]
    for key in a.files:
        if key != "meta":
            assert np.array_equal(a[key], b[key]), key
    ha, hb = pd.read_csv(straight.path / "history.csv"), pd.read_csv(resumed.path / "history.csv")
    assert list(ha["val_loss"]) == list(hb["val_loss"])


def test_bad_input_is_one_line(tmp_path, capsys):
    config = write_config(tmp_path, 100)
    assert main(["bilm", "train", str(config), "--set", "training.nope=1", "--runs-dir", str(tmp_path / "r")]) == 2
    assert main(["bilm", "train", str(config), "--batch-size", "100000", "--runs-dir", str(tmp_path / "r")]) == 2
    assert main(["bilm", "eval", str(tmp_path / "no-such-run")]) == 2
    runs = ["--runs-dir", str(tmp_path / "r")]
    assert main(["bilm", "train", str(config), "--max-steps", "1", *runs]) == 2  # less than an epoch
    assert main(["bilm", "train", str(config), "--set", "model.filters=[[13, 4]]", *runs]) == 2  # max_chars 12
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 5 and all(line.startswith("error: ") for line in err), err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("config.yaml"))


def test_grid_search_through_gradfit_sweep(tmp_path, capsys):
    write_config(tmp_path, 200, epochs=1)
    sweep = tmp_path / "grid.yaml"
    sweep.write_text(
        yaml.safe_dump({"name": "lr", "base": "bilm.yaml", "axes": {"training.learning_rate": [0.01, 0.0001]}})
    )
    assert main(["sweep", str(sweep), "--runs-dir", str(tmp_path / "runs")]) == 0
    table = pd.read_csv(tmp_path / "runs" / "lr" / "sweep.csv")
    assert len(table) == 2 and table["val_perplexity"].is_monotonic_increasing  # ranked, lowest perplexity first
    # a learning rate of 1e-4 barely moves in one short epoch: 1e-2 must win
    assert table.loc[0, "axis:training.learning_rate"] == 0.01 and bool(table.loc[0, "best"])
    assert (tmp_path / "runs" / "lr" / "best").resolve() == Path(table.loc[0, "run"]).resolve()
    assert "val_perplexity" in capsys.readouterr().out
