"""Errors a user can cause keep their one-line message across Ray's process boundaries."""

import pickle

from xmodal.errors import ConfigError, RecordError, user_error


def test_record_error_survives_pickling_with_its_file_and_reason():
    err = pickle.loads(pickle.dumps(RecordError("/data/a.dcm", "not a DICOM file")))
    assert isinstance(err, RecordError) and (err.path, err.reason) == ("/data/a.dcm", "not a DICOM file")
    assert str(err) == "/data/a.dcm: not a DICOM file"


def test_user_error_finds_the_xmodal_error_inside_ray_wrappers():
    import ray.train
    from ray.exceptions import RayTaskError

    bad = RecordError("/w.pt", "expected a state dict")
    # What a failed Ray task arrives as: a RayTaskError subclass of the cause's own type, with Ray's
    # multi-line message.
    task = RayTaskError("train_fn", "Traceback ...", bad).as_instanceof_cause()
    assert isinstance(task, RecordError) and user_error(task) is bad
    wrapped = ray.train.WorkerGroupError("rank 0 failed", {0: task})
    assert user_error(wrapped) is bad and str(user_error(wrapped)) == "/w.pt: expected a state dict"
    assert user_error(ray.train.ControllerError(ConfigError("loss.nope: unknown key"))).args == ("loss.nope: unknown key",)

    try:
        try:
            raise ConfigError("bad override")
        except ConfigError as e:
            raise RuntimeError("trial failed") from e
    except RuntimeError as chained:
        assert isinstance(user_error(chained), ConfigError)
    assert user_error(ray.train.WorkerGroupError("oom", {0: MemoryError()})) is None
    assert user_error(None) is None

