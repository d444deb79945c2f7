"""The `postgres_url` fixture gives a working Optuna RDB storage shared between study objects."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState


def test_postgres_storage_hands_trials_between_study_objects(postgres_url):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    first = optuna.create_study(storage=postgres_url, study_name="probe")
    try:
        first.enqueue_trial({"x": 1.5})
        # A second object on the same storage (as another sweep worker would have) takes the enqueued trial ...
        second = optuna.load_study(study_name="probe", storage=postgres_url)
        taken = second.ask()
        assert taken.suggest_float("x", 0.0, 2.0) == 1.5
        # ... so the first object's ask gets a new trial, not the same one.
        fresh = first.ask()
        assert fresh.number != taken.number
        assert fresh._trial_id != taken._trial_id
        second.tell(taken, 2.25)
        first.tell(fresh, state=TrialState.PRUNED)
        states = {t.number: t.state for t in first.get_trials(deepcopy=False)}
        assert states == {taken.number: TrialState.COMPLETE, fresh.number: TrialState.PRUNED}
        assert first.best_value == 2.25
    finally:
        optuna.delete_study(study_name="probe", storage=postgres_url)
    assert "probe" not in optuna.get_all_study_names(storage=postgres_url)
