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



def test_resource_error_keeps_its_line_and_detail_across_ray_and_is_found_inside_wrappers():
    import ray.train

    from xmodal.errors import ResourceError, XmodalError

    err = pickle.loads(pickle.dumps(ResourceError("align: Train worker rank 0 was killed", detail="Traceback ...")))
    assert isinstance(err, XmodalError) and str(err) == "align: Train worker rank 0 was killed"
    assert err.detail == "Traceback ..."
    wrapped = pickle.loads(pickle.dumps(ray.train.ControllerError(err)))  # what the driver receives
    found = user_error(wrapped)
    assert isinstance(found, ResourceError) and found.detail == "Traceback ..."


def test_the_cli_prints_a_resource_error_as_one_error_line(monkeypatch, capsys):
    import xmodal.__main__ as cli
    from xmodal.errors import ResourceError

    line = "image_pretrain: a Train worker would hold about 16.4 GB (...); lower image_pretrain.batch_size"

    def train(args):
        raise ResourceError(line, detail="not shown")

    monkeypatch.setattr(cli, "cmd_train", train)
    assert cli.main(["train"]) == 2
    assert capsys.readouterr().err == f"error: {line}\n"


def test_exit_code_turns_an_xmodal_error_into_one_line_and_status_2(capsys):
    from xmodal.errors import ConfigError, exit_code

    def bad(path):
        raise ConfigError(f"{path}: not valid YAML at line 3")

    assert exit_code(bad, "cfg.yaml") == 2
    assert capsys.readouterr().err == "error: cfg.yaml: not valid YAML at line 3\n"
    assert exit_code(lambda: 0) == 0
