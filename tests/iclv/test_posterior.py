"""Posterior latent variables: against the true latent variables of the synthetic seed example, and by hand."""

import numpy as np
import pandas as pd

import gradfit
from gradfit.iclv.simulate import seed_model


def test_posterior_means_track_the_true_latent_variables():
    sim = seed_model(n_people=400, n_draws=200)
    model = gradfit.Model(sim.spec, data=sim.data)
    post = model.posterior_latent(sim.truth)  # at the true parameters: what an estimate converges to
    assert list(post.index[:3]) == [1, 2, 3] and len(post) == 400
    for lv in sim.spec["latent_variables"]:
        r = np.corrcoef(post[f"{lv}_mean"], sim.latent.loc[post.index, lv])[0, 1]
        # six Likert indicators per variable (loadings 0.8-1.6) pin a person's latent value down well: the
        # correlation of posterior mean and truth is about 0.9; the bound leaves room for simulation noise
        assert r > 0.8, (lv, r)
        # the data shrink the uncertainty: six indicators of loading ~1.2 carry the information of about six
        # ordered-logit observations, so the posterior sd is about 0.45 on average against the prior's 1
        assert 0.3 < post[f"{lv}_sd"].mean() < 0.6 and (post[f"{lv}_sd"] > 0).all()


def test_posterior_equals_the_weighted_draws_by_hand():
    sim = seed_model(n_people=30, n_draws=50)
    model = gradfit.Model(sim.spec, data=sim.data)
    post = model.posterior_latent(sim.truth)
    # by hand: per-draw joint log-likelihood from the components, latent draws from the likelihood itself
    comps = model.components(sim.truth)
    total = sum(v for k, v in comps.items() if k != "structural")
    log_w = total + model.log_weights[None, :]
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    eta = np.asarray(model._likelihood.latent(model._theta(sim.truth), model._arrays))[:30]
    mean = np.einsum("nr,nrl->nl", w, eta)
    sd = np.sqrt(np.einsum("nr,nrl->nl", w, (eta - mean[:, None, :]) ** 2))
    names = list(sim.spec["latent_variables"])
    np.testing.assert_allclose(post[[f"{lv}_mean" for lv in names]].to_numpy(), mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(post[[f"{lv}_sd" for lv in names]].to_numpy(), sd, rtol=1e-8, atol=1e-10)
    assert isinstance(post, pd.DataFrame) and post.index.name == "id"
