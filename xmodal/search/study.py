"""The Optuna study of a search says what happened to each trial: ``COMPLETE`` (trained to the end),
``PRUNED`` (stopped early by ASHA) or ``FAIL`` (raised, retries spent).

Ray's ``OptunaSearch`` tells Optuna ``COMPLETE`` for a trial ASHA stopped, with the validation AUROC of
the epoch it stopped at as its value (it reads the trial's last result), and never reports that epoch
as an intermediate value. :class:`StudySearch` reports that epoch, then records the trial as
``PRUNED``, so ``optuna-dashboard`` and ``optuna.load_study`` show the same trials as ``trials.parquet``
and TPE ranks an early-stopped trial as such rather than as finished.
"""

from __future__ import annotations

from ray.tune.search.optuna import OptunaSearch


class StudySearch(OptunaSearch):
    """``OptunaSearch`` that records a trial without its final report (``final == 1``, see
    :func:`xmodal.search.driver.trial`) as ``PRUNED``."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if result and not error and result.get("final") != 1 and trial_id not in self._completed_trials:
            step, value = result.get("training_iteration"), result.get(self.metric)
            ot_trial = self._ot_trials.get(trial_id)
            if ot_trial is not None and step is not None and value is not None:
                ot_trial.report(value, step)  # the epoch ASHA stopped at: Ray passes it to the scheduler only
            result = None  # no value: OptunaSearch then tells Optuna PRUNED
        super().on_trial_complete(trial_id, result=result, error=error)
