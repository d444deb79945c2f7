"""A PyTorch baseline of gradfit's biLM (`gradfit.bilm.model`): the same architecture, torch.nn.LSTM (cuDNN), AMP.

    python benchmarks/bilm_torch.py [--size elmo_small|small] [--vocab 50000] [--batch 128] [--length 20]
        [--steps 50] [--no-amp]

Used by `benchmarks/bench_bilm.py` (its "torch" section); standalone it prints one training-throughput row.

The architecture, layer for layer as in gradfit:

- characters: an embedding of `char_embed` units; per (width, count) filter a 1-d convolution over the
  characters, its maximum over the word, then relu (a bias before the maximum is the same as after it);
- highway layers: z = W h + b, gate g = sigmoid(z[second half]), h = g * h + (1 - g) * relu(z[first half]);
- a linear projection to `projection` units: the token vector;
- per direction `layers` LSTM layers with a cell of `cell` units and a recurrent projection to `projection`
  units (`torch.nn.LSTM(proj_size=...)`, one module per layer and direction), from the second layer on with a
  residual connection (the layer's input added to its output); the backward stack reads the reversed tokens;
- one softmax over the whole vocabulary, shared by both directions;
- loss: per window 0.5 x (forward + backward) mean cross-entropy over the positions whose target is not
  padding (id 0), then the mean over the windows (what gradfit's `loss_fn` and `block_step` compute).

Not mirrored: ELMo's clipping of the LSTM cell and of its projected output to +-3 (gradfit clips both in
every step). `torch.nn.LSTM` has no such option and cuDNN's LSTM has no hook for it, so the baseline runs
without the clip: a slightly cheaper cell, and the fastest LSTM PyTorch has.

Optimiser as in the benchmark's JAX rows: gradient clipping by global norm 1.0, then Adam (lr 1e-3).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class CharEncoder(nn.Module):
    """(N, T, max_chars) character ids -> (N, T, projection) token vectors."""

    def __init__(self, sizes: dict):
        super().__init__()
        emb, n = sizes["char_embed"], sum(c for _, c in sizes["filters"])
        self.chars = nn.Embedding(sizes["n_chars"], emb)
        nn.init.uniform_(self.chars.weight, -1.0, 1.0)
        self.convs = nn.ModuleList(nn.Conv1d(emb, count, width) for width, count in sizes["filters"])
        self.highway = nn.ModuleList(nn.Linear(n, 2 * n) for _ in range(sizes["highway"]))
        for layer in self.highway:
            with torch.no_grad():
                layer.bias.zero_()
                layer.bias[n:] = -2.0  # the gate starts mostly "carry", as in gradfit
        self.proj = nn.Linear(n, sizes["projection"])
        self.n = n

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        lead = chars.shape[:-1]
        x = self.chars(chars.reshape(-1, chars.shape[-1])).transpose(1, 2)  # (N, E, C)
        h = torch.cat([torch.relu(conv(x).amax(dim=2)) for conv in self.convs], dim=-1)
        n = self.n
        for layer in self.highway:
            z = layer(h)
            gate = torch.sigmoid(z[:, n:])
            h = gate * h + (1 - gate) * torch.relu(z[:, :n])
        return self.proj(h).reshape(*lead, -1)


def _lstmp(projection: int, cell: int) -> nn.LSTM:
    # ELMo (and gradfit) clip the cell and the projected output to +-3; nn.LSTM / cuDNN cannot: omitted here.
    lstm = nn.LSTM(input_size=projection, hidden_size=cell, proj_size=projection, batch_first=True)
    with torch.no_grad():  # gradfit's start: one bias, forget gate 1 (PyTorch's gate order is i, f, g, o too)
        lstm.bias_ih_l0.zero_()
        lstm.bias_hh_l0.zero_()
        lstm.bias_ih_l0[cell : 2 * cell] = 1.0
    return lstm


class BiLM(nn.Module):
    def __init__(self, sizes: dict, vocab: int):
        super().__init__()
        self.encoder = CharEncoder(sizes)
        p, c = sizes["projection"], sizes["cell"]
        self.fwd = nn.ModuleList(_lstmp(p, c) for _ in range(sizes["layers"]))
        self.bwd = nn.ModuleList(_lstmp(p, c) for _ in range(sizes["layers"]))
        self.softmax = nn.Linear(p, vocab)
        nn.init.normal_(self.softmax.weight, 0.0, (1.0 / p) ** 0.5)
        nn.init.zeros_(self.softmax.bias)

    @staticmethod
    def _stack(layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        for k, lstm in enumerate(layers):
            y, _ = lstm(x)
            x = y + x if k > 0 else y  # residual connection from the second layer on
        return x

    def forward(self, chars: torch.Tensor, yf: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """Mean over windows of 0.5 x (forward + backward) per-window mean cross-entropy (targets 0 ignored)."""
        tokens = self.encoder(chars)
        hf = self._stack(self.fwd, tokens)
        hb = self._stack(self.bwd, tokens.flip(1)).flip(1)
        per_window = 0.0
        for h, y in ((hf, yf), (hb, yb)):
            logits = self.softmax(h)  # (B, T, V); under autocast bf16, cross_entropy computes in float32
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
            nll = nll.reshape(y.shape).float() * (y != 0)
            per_window = per_window + nll.sum(1) / (y != 0).sum(1).clamp(min=1)
        return (0.5 * per_window).mean()


def window_batch(windows: torch.Tensor, char_table: torch.Tensor, to_vocab: torch.Tensor):
    """As gradfit's `window_batch`: (B, T + 2) type ids -> chars (B, T, C), forward and backward targets (B, T)."""
    return char_table[windows[:, 1:-1]], to_vocab[windows[:, 2:]], to_vocab[windows[:, :-2]]


def _data(sizes, vocab, batch, length, n_windows, seed):
    from bench_bilm import synthetic_data  # numpy only (benchmarks/ is on sys.path when a script there runs)

    return synthetic_data(2 * vocab, vocab, sizes["max_chars"], sizes["n_chars"], n_windows, length, seed)


def train_tokens_per_second(
    sizes: dict,
    vocab: int,
    batch: int,
    length: int,
    steps: int,
    amp: bool,
    device: str = "cuda",
    warmup: int = 5,
    data: tuple | None = None,
    seed: int = 0,
    tf32_matmul: bool | None = None,
) -> dict:
    """Training throughput: `steps` optimiser steps (after `warmup`), tokens = batch x length per step.

    `data`: (windows (N, length + 2), char table (n_types, max_chars), to_vocab (n_types,)) numpy arrays, or
    None for bench_bilm's synthetic data. `tf32_matmul`: set torch.backends.cuda.matmul.allow_tf32 (None: keep
    PyTorch's default, False); cuDNN's own TF32 switch (convolutions, LSTM) keeps its default, True.
    """
    torch.manual_seed(seed)
    cuda = str(device).startswith("cuda")
    if tf32_matmul is not None:
        torch.backends.cuda.matmul.allow_tf32 = tf32_matmul
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    if data is None:
        data = _data(sizes, vocab, batch, length, max(4 * batch, 1024), seed)
    windows, char_table, to_vocab = (torch.as_tensor(np.asarray(a), dtype=torch.long, device=device) for a in data)
    model = BiLM(sizes, vocab).to(device)
    try:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=cuda)
    except (TypeError, RuntimeError):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    rows = torch.randint(0, windows.shape[0], (warmup + steps, batch), generator=generator).to(device)
    amp_dtype = torch.bfloat16
    lstm_dtype = []

    def step(i):
        chars, yf, yb = window_batch(windows[rows[i]], char_table, to_vocab)
        with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=amp_dtype, enabled=amp):
            loss = model(chars, yf, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.detach()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    # which precision cuDNN's LSTM actually runs in under autocast (recorded, not assumed)
    with torch.no_grad(), torch.autocast(device_type="cuda" if cuda else "cpu", dtype=amp_dtype, enabled=amp):
        probe = model.encoder(window_batch(windows[rows[0]], char_table, to_vocab)[0])
        lstm_dtype.append(str(model.fwd[0](probe)[0].dtype).replace("torch.", ""))
    t0 = time.perf_counter()
    first = [step(i) for i in range(warmup)]
    sync()
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    losses = [step(warmup + i) for i in range(steps)]
    sync()
    seconds = time.perf_counter() - t0
    losses = torch.stack(first + losses).float().cpu().numpy()
    out = {
        "framework": "torch",
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "precision": "bf16 autocast" if amp else "float32",
        "lstm_dtype": lstm_dtype[0],
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "batch": batch,
        "length": length,
        "vocab": vocab,
        "steps": steps,
        "warmup_steps": warmup,
        "warmup_s": warmup_s,
        "seconds": seconds,
        "step_ms": 1e3 * seconds / steps,
        "tokens_per_s": steps * batch * length / seconds,
        "parameters": sum(p.numel() for p in model.parameters()),
        "loss_first": float(losses[0]),
        "loss_last": float(losses[-1]),
        "finite": bool(np.isfinite(losses).all()),
        "peak_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "peak_reserved_bytes": torch.cuda.max_memory_reserved() if cuda else None,
    }
    return out  # the model and optimiser are freed here; the next call empties the cache before it starts


def lstm_layer_timings(
    batch: int, length: int, projection: int, cell: int, device: str = "cuda", reps: int = 50
) -> list[dict]:
    """Forward + backward of one nn.LSTM layer (cuDNN) on (batch, length, projection) inputs, ms per call.

    With the projection (proj_size, gradfit's LSTMP without its clip) and without it (cell-wide output: the
    layer that jax.experimental.rnn.lstm computes), in float32 and under bf16 autocast.
    """
    cuda = str(device).startswith("cuda")
    out = []
    for proj in (projection, 0):
        for amp in (False, True):
            torch.manual_seed(0)
            lstm = nn.LSTM(input_size=projection, hidden_size=cell, proj_size=proj, batch_first=True).to(device)
            x = torch.randn(batch, length, projection, device=device, requires_grad=True)
            width = proj or cell
            ct = torch.randn(batch, length, width, device=device)

            def call(lstm=lstm, x=x, ct=ct, amp=amp):
                with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=amp):
                    y, _ = lstm(x)
                torch.autograd.grad((y.float() * ct).sum(), [x, *lstm.parameters()])
                return y

            y = call()
            dtype = str(y.dtype).replace("torch.", "")
            for _ in range(3):
                call()
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(reps):
                call()
            if cuda:
                torch.cuda.synchronize()
            ms = 1e3 * (time.perf_counter() - t0) / reps
            kernel = "cudnn" if cuda else "cpu"
            out.append(
                {
                    "row": f"torch-lstm{'p' if proj else ''}-{kernel}-{'bf16' if amp else 'float32'}",
                    "kernel": "torch.nn.LSTM (cuDNN)" if cuda else "torch.nn.LSTM (CPU)",
                    "projection": proj or None,
                    "precision": "bf16 autocast" if amp else "float32",
                    "dtype": dtype,
                    "ms": ms,
                    "batch": batch,
                    "length": length,
                    "input": projection,
                    "cell": cell,
                }
            )
            del lstm, x, ct
    return out


def main() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_bilm import sizes_dict

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="elmo_small", choices=("elmo_small", "small"))
    parser.add_argument("--vocab", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--no-amp", action="store_true")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    row = train_tokens_per_second(
        sizes_dict(args.size), args.vocab, args.batch, args.length, args.steps, not args.no_amp, device
    )
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
