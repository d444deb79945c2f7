"""Gradient accumulation equals the large batch; a run continued from a saved state repeats the uninterrupted one."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gradfit.train import TrainSettings, train
from gradfit.train.loop import block_step


def data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -1.0, 0.5, 0.0]) + rng.normal(size=n) > 0).astype(np.float32)
    return x, y


def mlp_loss(params, batch, key):
    x, y = batch
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    z = h @ params["w2"] + params["b2"]
    return -(y * jax.nn.log_sigmoid(z) + (1 - y) * jax.nn.log_sigmoid(-z))


def init():
    k1, k2 = jax.random.split(jax.random.key(1))
    return {
        "w1": jax.random.normal(k1, (4, 8), jnp.float32) * 0.5,
        "b1": jnp.zeros(8, jnp.float32),
        "w2": jax.random.normal(k2, (8,), jnp.float32) * 0.5,
        "b2": jnp.zeros((), jnp.float32),
    }


def test_accumulated_micro_batches_equal_one_large_batch():
    x, y = data()
    rows = jnp.arange(256).reshape(1, 256)
    keys = jax.random.split(jax.random.key(0), 1)
    opt = optax.sgd(0.5)
    params = init()
    big = block_step(mlp_loss, opt, 256, 1)(params, opt.init(params), (x, y), rows, keys)
    small = block_step(mlp_loss, opt, 64, 4)(params, opt.init(params), (x, y), rows, keys)
    for a, b in zip(jax.tree_util.tree_leaves(big[0]), jax.tree_util.tree_leaves(small[0]), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(big[2][0]), float(small[2][0]), rtol=1e-6)
    # and it is not trivially equal: one micro-batch alone gives another step
    alone = block_step(mlp_loss, opt, 64, 1)(params, opt.init(params), (x, y), rows[:, :64], keys)
    assert not np.allclose(np.asarray(alone[0]["w1"]), np.asarray(big[0]["w1"]), atol=1e-4)


def test_resume_from_a_saved_state_is_bit_for_bit():
    x, y = data()
    xv, yv = data(128, seed=1)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.05))
    settings = TrainSettings(epochs=4, batch_size=32, patience=None, seed=3, accumulate=2, block_steps=3)
    saved = []

    def keep(block):
        # a checkpoint: the state copied to the host, as a run folder would store it
        saved.append(jax.tree_util.tree_map(lambda v: np.asarray(v) if isinstance(v, jax.Array) else v, block.state))

    whole = train(init(), mlp_loss, opt, (x, y), (xv, yv), settings, on_block=keep)
    assert whole.epochs_run == 4 and len(saved) == 4 * 3  # 8 steps an epoch in blocks of 3, 3, 2
    for cut in (4, 5, 6):  # inside an epoch, after an epoch's last block, at an epoch's first block
        state = jax.tree_util.tree_map(jnp.asarray, saved[cut])
        again = train(init(), mlp_loss, opt, (x, y), (xv, yv), settings, state=state)
        for a, b in zip(
            jax.tree_util.tree_leaves(whole.state.params), jax.tree_util.tree_leaves(again.state.params), strict=True
        ):
            assert np.array_equal(np.asarray(a), np.asarray(b))
        assert [h["val_loss"] for h in again.history] == [h["val_loss"] for h in whole.history]


def test_blocks_report_device_losses_and_max_steps_stops():
    x, y = data()
    seen = []
    settings = TrainSettings(epochs=10, batch_size=64, patience=None, block_steps=2, max_steps=5)
    result = train(init(), mlp_loss, optax.adam(0.01), (x, y), (x, y), settings, on_block=seen.append)
    assert result.stopped == "max steps" and result.state.step == 5
    assert [b.step for b in seen] == [2, 4, 5] and [b.losses.shape for b in seen] == [(2,), (2,), (1,)]
    assert all(isinstance(b.losses, jax.Array) for b in seen)
