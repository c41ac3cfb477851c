"""The Optuna study records what Tune did: a trial trained to the end is COMPLETE with its final value,
one ASHA stopped is PRUNED (Ray's OptunaSearch says COMPLETE), one that raised is FAIL, and every epoch's
validation AUROC is an intermediate value. Tune's hooks are called by hand (no Ray); the smoke search in
tests/integration/test_tracking.py checks the same on a real study."""

from __future__ import annotations

import optuna

from xmodal.search.driver import DefineByRun
from xmodal.search.space import load_space
from xmodal.search.study import StudySearch


def test_asha_stopped_trials_are_pruned_failed_ones_fail_and_every_epoch_is_an_intermediate_value(tmp_path):
    db = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = StudySearch(space=DefineByRun(load_space(None), "cromotex"), metric="val_auroc", mode="max",
                           sampler=optuna.samplers.TPESampler(seed=0), storage=optuna.storages.RDBStorage(db),
                           study_name="s")
    done, stopped, failed = "t_00000", "t_00001", "t_00002"
    for t in (done, stopped, failed):
        assert "loss.tau" in searcher.suggest(t)
    for step in (1, 2, 3):
        searcher.on_trial_result(done, {"val_auroc": 0.5 + step / 10, "training_iteration": step})
    searcher.on_trial_complete(done, {"val_auroc": 0.75, "training_iteration": 4, "final": 1})
    searcher.on_trial_result(stopped, {"val_auroc": 0.55, "training_iteration": 1})
    # ASHA's stop: Ray hands the stopping epoch's result to the scheduler and on_trial_complete, not on_trial_result.
    searcher.on_trial_complete(stopped, {"val_auroc": 0.52, "training_iteration": 2})
    searcher.on_trial_result(failed, {"val_auroc": 0.5, "training_iteration": 1})
    searcher.on_trial_complete(failed, error=True)

    trials = optuna.load_study(study_name="s", storage=db).get_trials(deepcopy=False)
    TS = optuna.trial.TrialState
    assert [t.state for t in trials] == [TS.COMPLETE, TS.PRUNED, TS.FAIL]
    assert trials[0].value == 0.75 and trials[0].intermediate_values == {1: 0.6, 2: 0.7, 3: 0.8}
    assert trials[1].intermediate_values == {1: 0.55, 2: 0.52}  # value: Optuna's rule for PRUNED, the last one
    assert trials[2].intermediate_values == {1: 0.5}
    assert all("loss.tau" in t.params for t in trials)
