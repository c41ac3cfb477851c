import math

import pandas as pd

from xmodal.config import ExperimentConfig
from xmodal.search.driver import SearchOptions, base_for, max_concurrent, overrides_of, resources
from xmodal.search.progress import describe


def test_resources_budget_keeps_one_cpu_per_trial_for_ray_data():
    opts = SearchOptions(workers_per_trial=2, cpus_per_worker=1.0)
    assert resources(opts) == {"CPU": 3.0, "GPU": 0.0}
    # concurrent x (1 + workers x cpus + 1 for its Data reads) <= logical CPUs
    assert max_concurrent(opts, {"CPU": 8}) == 2
    assert max_concurrent(opts, {"CPU": 7}) == 1
    assert max_concurrent(SearchOptions(), {"CPU": 5}) == 1  # 2 x (1 + 1) + 1 deadlocked: see the docstring
    assert max_concurrent(SearchOptions(), {"CPU": 6}) == 2
    assert max_concurrent(opts, {"CPU": 2}) == 1  # never 0
    assert max_concurrent(SearchOptions(max_concurrent=5), {"CPU": 2}) == 5  # explicit wins


def test_fractional_gpus_limit_concurrency():
    opts = SearchOptions(workers_per_trial=1, cpus_per_worker=1.0, gpus_per_worker=0.25)
    assert resources(opts)["GPU"] == 0.25
    assert max_concurrent(opts, {"CPU": 100, "GPU": 1}) == 4


def test_base_for_sets_pathology_and_scaling():
    cfg = base_for(ExperimentConfig(), "edema", SearchOptions(workers_per_trial=2, gpus_per_worker=0.5))
    assert cfg.data.pathology == "edema" and cfg.scaling.num_workers == 2
    assert cfg.scaling.use_gpu and cfg.scaling.gpus_per_worker == 0.5


def test_overrides_of_drops_absent_conditionals():
    row = pd.Series({"param:loss.strategy": "none", "param:loss.k": math.nan, "param:loss.tau": 0.05,
                     "val_auroc": 0.7})
    assert overrides_of(row) == {"loss.strategy": "none", "loss.tau": 0.05}


def test_progress_description_is_short_and_has_no_ids():
    text = describe({"loss.strategy": "topk", "loss.k": 0.075, "loss.tau": 0.01, "align.lr": 0.0005})
    assert text == "topk k=0.075 τ=0.01 lr=0.0005"


def test_trial_error_reason_is_the_xmodal_error_in_one_line():
    from ray.exceptions import RayTaskError

    from xmodal.errors import ConfigError
    from xmodal.search.driver import _reason

    failed = RayTaskError("ImplicitFunc.train", "Traceback (most recent call last):\n  ...",
                          ConfigError("unknown config key 'loss.nope'")).as_instanceof_cause()
    assert _reason(failed) == "ConfigError: unknown config key 'loss.nope'"
    assert _reason(RayTaskError("f", "tb", MemoryError("out of memory")).as_instanceof_cause()) == \
        "MemoryError: out of memory"
