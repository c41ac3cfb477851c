"""The local Ray that ``ensure_ray`` starts frees a stopped trial's Train resources.

Regression: ASHA stops a trial by killing its actor, so the trial's ``TorchTrainer`` controller dies
without shutting down. Ray Train's ``PlacementGroupCleaner`` then removes the workers' placement group,
but it asks the Ray state API (served by the dashboard) whether the controller is alive. With the
dashboard off the question never got an answer, the group kept its CPUs forever, and the next trial's
Ray Data reads waited for a CPU that never came back (the "stall" of local searches).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _trial(cfg: dict) -> None:
    import threading

    from ray import tune
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    def _train_loop(cfg: dict) -> None:
        Path(cfg["marker"]).touch()  # the workers hold their placement group now
        time.sleep(600)

    trainer = TorchTrainer(_train_loop, train_loop_config={"marker": cfg["marker"]},
                           scaling_config=ScalingConfig(num_workers=1),
                           run_config=RunConfig(storage_path=cfg["storage"], name="stopped"))
    threading.Thread(target=trainer.fit, daemon=True).start()
    while not Path(cfg["marker"]).exists():
        time.sleep(0.2)
    tune.report({"step": 1})  # the stopper below ends the trial here, with its trainer mid-run
    time.sleep(600)


def _live_groups() -> list[str]:
    from ray.util import placement_group_table

    return [k for k, v in placement_group_table().items() if v["state"] != "REMOVED"]


@pytest.mark.timeout(240)
def test_a_stopped_trial_gives_back_its_train_workers_cpus(ray_local, tmp_path):
    import sys

    import ray.cloudpickle
    from ray import tune

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import tests/

    assert _live_groups() == []
    tuner = tune.Tuner(tune.with_resources(_trial, {"CPU": 1}),
                       param_space={"marker": str(tmp_path / "started"), "storage": str(tmp_path / "train")},
                       run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), stop={"step": 1},
                                                 verbose=0))
    results = tuner.fit()
    assert results[0].metrics["step"] == 1
    deadline = time.time() + 60
    while _live_groups() and time.time() < deadline:
        time.sleep(1)
    assert _live_groups() == [], "a stopped trial's Train placement group was never removed"
