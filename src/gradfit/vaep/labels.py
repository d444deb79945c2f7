"""VAEP labels: does the acting team score (concede) within its game's next k actions, this one included?

As socceraction's `scores` / `concedes`: a goal is a successful shot (any shot type); an own goal counts
for the other team — here any action with result owngoal (SPADL's bad_touch/owngoal), where socceraction
only looks at shots and so misses own goals (see `features.is_goal`). Near the end of a game the window
is cut at the game's last action. One vectorised pass: k shifted gathers, no loop over actions or games.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from gradfit.vaep.arrays import Actions
from gradfit.vaep.features import is_goal, segment_end


@partial(jax.jit, static_argnames=("horizon",))
def labels(a: Actions, horizon: int = 10) -> jnp.ndarray:
    """(n, 2) booleans: column 0 "scores", column 1 "concedes", within `horizon` actions."""
    goal, own = is_goal(a)
    last = segment_end(a.game)
    idx = jnp.arange(a.game.shape[0])
    scores, concedes = goal, own  # the action itself: a goal scores, an own goal concedes
    for i in range(1, horizon):
        j = jnp.minimum(idx + i, last)
        same = a.team[j] == a.team
        scores = scores | (goal[j] & same) | (own[j] & ~same)
        concedes = concedes | (goal[j] & ~same) | (own[j] & same)
    return jnp.stack([scores, concedes], axis=1)
