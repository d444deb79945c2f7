"""The biLM against a plain numpy implementation, and the properties of its two directions and its masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradfit.bilm.model import CLIP, Setup, Sizes, Softmax, init_params, layers, loss_fn, token_nll

TINY = Sizes(max_chars=6, char_embed=3, filters=((1, 2), (2, 3)), highway=1, projection=4, cell=5, layers=2)


def tiny(vocab=7, **kw):
    return Setup(TINY, vocab, **kw)


def np_reference(params, chars, yf, yb):
    """The model written out with numpy loops: per token, per time step, per direction."""
    p = jax.tree_util.tree_map(lambda v: np.asarray(v, np.float64), params)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    B, T, C = chars.shape
    tok = np.zeros((B, T, 4))
    for b in range(B):
        for t in range(T):
            x = p["chars"][chars[b, t]]  # (C, E)
            feats = []
            for conv in p["conv"]:
                w = conv["w"]  # (width, E, count)
                width = w.shape[0]
                ys = [sum(x[i + k] @ w[k] for k in range(width)) for i in range(C - width + 1)]
                feats.append(np.maximum(np.max(ys, axis=0) + conv["b"], 0))
            h = np.concatenate(feats)
            n = h.size
            for hw in p["highway"]:
                z = h @ hw["w"] + hw["b"]
                g = sig(z[n:])
                h = g * h + (1 - g) * np.maximum(z[:n], 0)
            tok[b, t] = h @ p["proj"]["w"] + p["proj"]["b"]

    def run(stack, seq):  # seq (T, P), left to right
        x = seq
        for k, layer in enumerate(stack):
            h, c, out = np.zeros(4), np.zeros(5), []
            for t in range(x.shape[0]):
                g = x[t] @ layer["wx"] + h @ layer["wh"] + layer["b"]
                i, f, u, o = np.split(g, 4)
                c = np.clip(sig(f) * c + sig(i) * np.tanh(u), -CLIP, CLIP)
                h = np.clip((sig(o) * np.tanh(c)) @ layer["wp"], -CLIP, CLIP)
                out.append(h)
            out = np.array(out)
            x = out + x if k > 0 else out
        return x

    nll = []
    for b in range(B):
        fwd = run(p["fwd"], tok[b])
        bwd = run(p["bwd"], tok[b][::-1])[::-1]
        for h, y in ((fwd, yf[b]), (bwd, yb[b])):
            logits = h @ p["softmax"]["w"] + p["softmax"]["b"]
            logz = np.log(np.exp(logits).sum(axis=1))
            nll.append(np.where(y != 0, logz - logits[np.arange(T), y], 0.0))
    return np.array(nll[0::2]), np.array(nll[1::2])


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    chars = rng.integers(0, 261, size=(2, 4, 6)).astype(np.int32)
    yf = np.array([[3, 5, 1, 0], [2, 6, 4, 1]], np.int32)  # a padded target (0) is masked
    yb = np.array([[1, 2, 6, 4], [0, 3, 3, 5]], np.int32)
    return chars, yf, yb


def test_token_losses_equal_a_direct_numpy_computation(batch):
    chars, yf, yb = batch
    params = init_params(jax.random.key(3), tiny())
    nf, nb = token_nll(params, jnp.asarray(chars), jnp.asarray(yf), jnp.asarray(yb), tiny())
    rf, rb = np_reference(params, chars, yf, yb)
    np.testing.assert_allclose(np.asarray(nf), rf, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(np.asarray(nb), rb, rtol=2e-5, atol=2e-6)
    assert np.asarray(nf)[0, 3] == 0 and np.asarray(nb)[1, 0] == 0  # masked positions


def test_window_loss_is_half_the_two_directions_means(batch):
    chars, yf, yb = batch
    params = init_params(jax.random.key(3), tiny())
    rf, rb = np_reference(params, chars, yf, yb)
    # a window: [left, inputs..., right]; build a type table whose rows are these characters
    table = jnp.asarray(np.concatenate([np.zeros((1, 6), np.int32), chars.reshape(-1, 6)]))
    ids = np.arange(1, 9).reshape(2, 4)
    # targets through to_vocab: a per-"type" map; windows hold positions, to_vocab gives the targets
    to_vocab = np.zeros(1 + 8 + 4, np.int32)
    windows = np.zeros((2, 6), np.int32)
    for b in range(2):
        windows[b, 1:-1] = ids[b]
        left, right = 9 + 2 * b, 10 + 2 * b
        windows[b, 0], windows[b, -1] = left, right
        seq = [left, *ids[b], right]
        for t in range(4):  # forward target of position t is the next id, backward the previous
            to_vocab[seq[t + 2]] = yf[b, t]
        # backward targets: to_vocab of the previous ids; they must agree with the forward assignment
    # the two directions need consistent targets: check only where they are
    loss = loss_fn(tiny(), table, jnp.asarray(to_vocab), train=False)
    got = np.asarray(loss(params, jnp.asarray(windows), None))
    yb_consistent = np.stack([to_vocab[w[:-2]] for w in windows])
    rf, rb = np_reference(params, chars, yf, yb_consistent)
    want = 0.5 * (rf.sum(1) / (yf != 0).sum(1) + rb.sum(1) / np.maximum((yb_consistent != 0).sum(1), 1))
    np.testing.assert_allclose(got, want, rtol=2e-5)


def test_forward_sees_only_the_past_and_backward_only_the_future():
    params = init_params(jax.random.key(1), tiny())
    rng = np.random.default_rng(1)
    chars = jnp.asarray(rng.integers(5, 100, size=(1, 5, 6)), jnp.int32)
    changed = chars.at[0, 2].set(jnp.asarray(rng.integers(100, 200, size=6), jnp.int32))
    _, f1, b1 = layers(params, chars, tiny())
    _, f2, b2 = layers(params, changed, tiny())
    df = np.abs(np.asarray(f1[-1] - f2[-1])).max(axis=-1)[0]
    db = np.abs(np.asarray(b1[-1] - b2[-1])).max(axis=-1)[0]
    assert (df[:2] == 0).all() and (df[2:] > 0).all()  # token 2 changes forward states from 2 on
    assert (db[3:] == 0).all() and (db[:3] > 0).all()  # and backward states up to 2


def test_padded_rows_read_backward_from_their_own_end():
    params = init_params(jax.random.key(2), tiny())
    rng = np.random.default_rng(2)
    chars = jnp.asarray(rng.integers(5, 100, size=(1, 3, 6)), jnp.int32)
    padded = jnp.concatenate([chars, jnp.zeros((1, 2, 6), jnp.int32)], axis=1)
    _, f, b = layers(params, chars, tiny())
    _, fp, bp = layers(params, padded, tiny(), lengths=jnp.asarray([3]))
    np.testing.assert_allclose(np.asarray(bp[-1][:, :3]), np.asarray(b[-1]), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(fp[-1][:, :3]), np.asarray(f[-1]), rtol=1e-6, atol=1e-7)


def test_training_on_the_sampled_softmax_lowers_the_full_softmax_loss(batch):
    """A sampled softmax is a biased estimate of the loss but points its gradient the right way on average."""
    import optax

    chars, yf, yb = (jnp.asarray(a) for a in batch)
    setup = tiny(vocab=40, softmax=Softmax("sampled", 8))
    params = init_params(jax.random.key(3), setup)

    def full(p):
        return sum(x.sum() for x in token_nll(p, chars, yf, yb, setup))

    def sampled(p, key):
        return sum(x.sum() for x in token_nll(p, chars, yf, yb, setup, key, sampled=True))

    opt = optax.adam(0.05)
    state, before = opt.init(params), float(full(params))
    step = jax.jit(jax.grad(sampled))
    for k in range(30):
        updates, state = opt.update(step(params, jax.random.key(k)), state, params)
        params = optax.apply_updates(params, updates)
    assert float(full(params)) < 0.7 * before


def test_bf16_stays_close_to_float32(batch):
    chars, yf, yb = batch
    params = init_params(jax.random.key(3), tiny())
    a = token_nll(params, jnp.asarray(chars), jnp.asarray(yf), jnp.asarray(yb), tiny())
    b = token_nll(params, jnp.asarray(chars), jnp.asarray(yf), jnp.asarray(yb), tiny(compute="bf16"))
    np.testing.assert_allclose(np.asarray(b[0]), np.asarray(a[0]), atol=0.05)
    assert not np.array_equal(np.asarray(b[0]), np.asarray(a[0]))


def test_remat_changes_nothing_but_memory(batch):
    chars, yf, yb = batch
    params = init_params(jax.random.key(3), tiny())

    def total(setup):
        return jax.grad(lambda p: sum(x.sum() for x in token_nll(p, chars, yf, yb, setup)))(params)

    for a, b in zip(
        jax.tree_util.tree_leaves(total(tiny())), jax.tree_util.tree_leaves(total(tiny(remat=True))), strict=True
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
