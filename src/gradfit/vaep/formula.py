"""VAEP values from the two probabilities, with the standard rules (Decroos et al. 2019; socceraction 1.5).

An action's offensive value is the change in its team's probability of scoring; its defensive value is minus
the change in its probability of conceding. The "before" probability is the previous action's, seen from the
acting team: if the ball changed hands, the previous team's scoring chance is this team's conceding chance
and vice versa. Three resets: after a goal (own goals included; socceraction looks at successful shots only,
see `features.is_goal`), or after a pause of more than 10 s, the before-probabilities are 0 (a new phase:
kick-off, restart); a penalty starts from a scoring chance of 0.792453 and a corner from
0.0465 (the set-piece priors), so that winning a penalty or corner is credited to the action that won it,
not the kick. The first action of a game is its own predecessor.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gradfit.vaep.arrays import TICKS, Actions
from gradfit.vaep.features import is_goal, segment_start
from gradfit.vaep.spadl import ACTION_TYPES

SAME_PHASE_SECONDS = 10.0
PENALTY_PRIOR = 0.792453
CORNER_PRIOR = 0.046500
_PENALTY = ACTION_TYPES.index("shot_penalty")
_CORNERS = tuple(ACTION_TYPES.index(t) for t in ("corner_crossed", "corner_short"))


@jax.jit
def values(a: Actions, p_scores: jnp.ndarray, p_concedes: jnp.ndarray) -> jnp.ndarray:
    """(n, 3): offensive, defensive and total VAEP value of each action."""
    idx = jnp.arange(a.game.shape[0])
    prev = jnp.maximum(idx - 1, segment_start(a.game))
    same_team = a.team[prev] == a.team
    before_scores = jnp.where(same_team, p_scores[prev], p_concedes[prev])
    before_concedes = jnp.where(same_team, p_concedes[prev], p_scores[prev])
    new_phase = jnp.abs(a.time - a.time[prev]) > SAME_PHASE_SECONDS * TICKS
    goal, own_goal = is_goal(a)
    new_phase |= (goal | own_goal)[prev]
    before_scores = jnp.where(new_phase, 0.0, before_scores)
    before_concedes = jnp.where(new_phase, 0.0, before_concedes)
    before_scores = jnp.where(a.type == _PENALTY, PENALTY_PRIOR, before_scores)
    before_scores = jnp.where(jnp.isin(a.type, jnp.asarray(_CORNERS)), CORNER_PRIOR, before_scores)
    offensive = p_scores - before_scores
    defensive = -(p_concedes - before_concedes)
    return jnp.stack([offensive, defensive, offensive + defensive], axis=1)
