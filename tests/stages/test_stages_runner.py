"""Stage runner settings that decide reproducibility (the runs themselves are in tests/integration)."""

from xmodal.stages.runner import ingest_options


def test_train_ingest_keeps_row_order_and_ray_defaults():
    # Without a fixed row order, parallel Parquet reads reach a worker in any order, and the same
    # seed gave different align metrics on two runs of the same chain (measured on the smoke preset).
    import ray.train

    opts, default = ingest_options(), ray.train.DataConfig.default_ingest_options()
    assert opts.preserve_order
    assert opts.resource_limits == default.resource_limits and opts.locality_with_output == default.locality_with_output
