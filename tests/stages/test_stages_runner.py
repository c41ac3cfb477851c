"""Stage runner settings that decide reproducibility (the runs themselves are in tests/integration)."""

from xmodal.stages.runner import ingest_options


def test_train_ingest_keeps_row_order_and_ray_defaults():
    # Without a fixed row order, parallel Parquet reads reach a worker in any order, and the same
    # seed gave different align metrics on two runs of the same chain (measured on the smoke preset).
    import ray.train

    opts, default = ingest_options(), ray.train.DataConfig.default_ingest_options()
    assert opts.preserve_order
    assert opts.resource_limits == default.resource_limits and opts.locality_with_output == default.locality_with_output


def test_bad_input_in_a_worker_ends_the_run_instead_of_a_retry():
    import pytest

    from xmodal.errors import ConfigError, RecordError
    from xmodal.stages.runner import StopOnBadInput

    cb = StopOnBadInput()
    cb.after_exception(None, {0: RuntimeError("worker crashed"), 1: MemoryError()})  # retried by Ray Train
    bad = RecordError("/data/p1000/s1/1.hea", "12 leads expected, found 3")
    with pytest.raises(RecordError) as err:
        cb.after_exception(None, {0: RuntimeError("collective aborted"), 1: bad})
    assert err.value is bad
    wrapped = RuntimeError("in the loop")
    wrapped.__cause__ = ConfigError("model.image_weights: not a tensor state dict")
    with pytest.raises(ConfigError):
        cb.after_exception(None, {0: wrapped})
