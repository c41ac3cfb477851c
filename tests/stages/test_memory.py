"""The memory check before a stage trains, and the one line when a worker runs out of memory (no Ray)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from xmodal.config import ExperimentConfig, apply_overrides
from xmodal.errors import ConfigError, ResourceError
from xmodal.stages import memory as M

GB = M.GB
# The smoke preset's ECG side, and its cine image side (xmodal.methods: 32 px, 16 frames).
SMOKE_ECG = {"model.ecg_width": 32, "model.ecg_layers": 1, "model.ecg_heads": 2, "model.ecg_segments": 4,
             "model.proj_dim": 32, "model.proj_hidden": 64, "image_pretrain.batch_size": 64,
             "ecg_ssl.batch_size": 64, "align.batch_size": 64, "finetune.batch_size": 64}
SMOKE_CINE = {**SMOKE_ECG, "method": "eccl", "loss.name": "clip_task", "image.size": 32, "image.cine_frames": 16,
              "model.image_encoder": "cine_transformer", "model.image_width": 8}
SMOKE_CXR = {**SMOKE_ECG, "image.size": 32, "model.image_encoder": "small_cnn", "model.image_width": 8}
# What blew past 12 GB: DenseNet-121 on 64 cines of 50 frames at 224 px a batch. Of the cine views only
# Dual-phase's (end-diastole + end-systole) hands DenseNet one frame at a time; the cine view gives it all
# 50 frames as channels, which it cannot take (the estimate then says it could not size the model).
DENSENET_CINE = {"method": "dual_phase", "loss.name": "multi_phase_clip", "model.image_encoder": "densenet121",
                 "image.size": 224, "image.cine_frames": 50, "image_pretrain.batch_size": 64}


def cfg_of(overrides: dict) -> ExperimentConfig:
    return apply_overrides(ExperimentConfig(), overrides)


def real_saved(stage: str, cfg: ExperimentConfig, rows: int) -> int:
    """The same count on a real step of the same model (and a backward through it, as training does)."""
    sh = M.shapes_for(cfg)
    torch.manual_seed(0)
    probe = M.STAGE_PROBES[stage](cfg, sh, rows)
    saved = M.saved_bytes(probe)
    out = probe.forward(probe.model, probe.batch)
    probe.loss(out).backward()
    assert all(p.grad is not None for p in probe.model.parameters() if p.requires_grad)
    return saved


@pytest.mark.parametrize("stage, overrides, factor", [
    ("image_pretrain", SMOKE_CXR, (0.9, 1.1)),  # convolutions: meta saves what CPU saves
    ("image_pretrain", SMOKE_CINE, (0.9, 1.1)),
    ("finetune", SMOKE_ECG, (1.0, 1.6)),  # attention: meta's math path keeps the attention matrix
    ("ecg_ssl", SMOKE_ECG, (1.0, 1.6)),
    ("ecg_ssl", {**SMOKE_ECG, "ecg_ssl.method": "mae"}, (1.0, 1.6)),
    ("align", {**SMOKE_CINE, "method": "ptacl", "loss.name": "ptacl"}, (1.0, 1.6)),
])
def test_meta_estimate_is_within_a_sane_factor_of_a_real_step(stage, overrides, factor):
    cfg = cfg_of(overrides)
    sh, rows = M.shapes_for(cfg), 8
    with torch.device("meta"):
        meta = M.saved_bytes(M.STAGE_PROBES[stage](cfg, sh, rows))
    real = real_saved(stage, cfg, rows)
    assert real > 0 and factor[0] <= meta / real <= factor[1], (meta, real)


def test_estimate_counts_batch_and_model_and_runs_on_meta_for_every_stage_and_method():
    for method, loss in (("cromotex", "ahnp_supcon"), ("eccl", "clip_task"), ("ptacl", "ptacl"),
                         ("dual_phase", "multi_phase_clip")):
        image = SMOKE_CXR if method == "cromotex" else {**SMOKE_CINE, "model.image_encoder": "phase_cnn"} \
            if method == "dual_phase" else SMOKE_CINE
        cfg = cfg_of({**image, "method": method, "loss.name": loss})
        for stage in M.STAGE_PROBES:
            part = M.stage_memory(stage, cfg, M.shapes_for(cfg))
            assert part.note == "", (method, stage, part.note)  # no real-rows fallback needed
            assert part.model > 0 and part.activations > 0
    # The batch alone: 64 uint8 cines of 16 x 32 x 32 and 64 float label rows.
    cfg = cfg_of(SMOKE_CINE)
    part = M.stage_memory("image_pretrain", cfg, M.shapes_for(cfg))
    assert part.activations > 64 * 16 * 32 * 32


def test_estimate_grows_with_batch_size_and_image_size():
    def act(overrides):
        cfg = cfg_of({**SMOKE_CINE, **overrides})
        return M.stage_memory("image_pretrain", cfg, M.shapes_for(cfg)).activations

    base = act({})
    assert act({"image_pretrain.batch_size": 128}) == pytest.approx(2 * base, rel=0.05)
    assert act({"image.size": 64}) == pytest.approx(4 * base, rel=0.1)  # 4x the pixels
    assert act({"image.cine_frames": 32}) == pytest.approx(2 * base, rel=0.1)


def test_falls_back_to_real_rows_scaled_linearly_where_meta_fails(monkeypatch):
    cfg = cfg_of(SMOKE_CXR)
    sh = M.shapes_for(cfg)
    meta = M.stage_memory("image_pretrain", cfg, sh)
    build = M.STAGE_PROBES["image_pretrain"]

    def no_meta(cfg, sh, rows):
        if torch.empty(0).is_meta:
            raise NotImplementedError("no meta kernel")
        return build(cfg, sh, rows)

    monkeypatch.setitem(M.STAGE_PROBES, "image_pretrain", no_meta)
    real = M.stage_memory("image_pretrain", cfg, sh)
    assert "real rows" in real.note
    assert real.model == meta.model and real.activations == pytest.approx(meta.activations, rel=0.05)


def test_densenet_cine_batch_is_refused_under_12_gb_and_smoke_cine_fits_in_2_gb():
    big = cfg_of({**DENSENET_CINE, "scaling.memory_budget_gb": 12.0})
    est = M.estimate(("image_pretrain",), big)
    assert est.activations > 12 * GB
    with pytest.raises(ResourceError) as err:
        M.check(est, M.budget_for(big))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("image_pretrain: ")
    assert "over its 12.0 GB budget (scaling.memory_budget_gb)" in msg
    assert "lower image_pretrain.batch_size, image.size or image.cine_frames" in msg
    assert "model.image_encoder" in msg

    small = cfg_of({**SMOKE_CINE, "scaling.memory_budget_gb": 2.0})
    for run in (("image_pretrain", "ecg_ssl"), ("align", "finetune")):
        est = M.estimate(run, small)
        assert est.notes == () and est.total < 2 * GB
        M.check(est, M.budget_for(small))


def test_a_model_that_cannot_take_the_batch_is_noted_not_refused():
    # DenseNet-121 under the cine view: 50 frames as channels of a 1-channel stem.
    cfg = cfg_of({**DENSENET_CINE, "method": "eccl", "loss.name": "clip_task"})
    est = M.estimate(("image_pretrain",), cfg)
    assert est.total == M.RUNTIME and "image_pretrain model not sized (RuntimeError" in est.notes[0]


def test_over_budget_message_is_one_line_with_stage_numbers_budget_and_fix():
    est = M.Estimate("align+finetune", "align", split=int(1.5 * GB), model=GB // 2, activations=3 * GB)
    budget = M.Budget(2 * GB, "16.0 GB RAM x 0.7 / 4 workers at once")
    with pytest.raises(ResourceError) as err:
        M.check(est, budget)
    assert str(err.value) == (
        "align+finetune: a Train worker would hold about 5.5 GB (split 1.5 GB + model 0.5 GB + batch "
        "activations 3.0 GB + worker runtime 0.5 GB), over its 2.0 GB budget (16.0 GB RAM x 0.7 / 4 workers "
        "at once); lower align.batch_size or raise scaling.memory_budget_gb where the node has the memory")
    M.check(est, M.Budget(6 * GB, "scaling.memory_budget_gb"))  # fits: no error
    rows = M.Estimate("finetune", "finetune", split=8 * GB, model=GB // 10, activations=GB)
    assert M.advice(rows).startswith("split the rows over workers on more nodes (scaling.num_workers")


def test_preflight_says_the_estimate_once_and_refuses_before_training(capsys):
    from xmodal.stages.runner import preflight

    cfg = cfg_of({**SMOKE_CINE, "scaling.memory_budget_gb": 2.0})
    est, budget = preflight(("image_pretrain",), cfg, verbose=True)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("[xmodal] image_pretrain: about ")
    assert "per worker, budget 2.0 GB (scaling.memory_budget_gb)" in out
    with pytest.raises(ResourceError):
        preflight(("image_pretrain",), cfg_of({**DENSENET_CINE, "scaling.memory_budget_gb": 12.0}), verbose=False)
    assert capsys.readouterr().out == ""


def test_budget_reads_the_cgroup_limit_of_this_process(tmp_path):
    proc = tmp_path / "cgroup"
    root = tmp_path / "sys"
    # cgroup v2: the limit on the process's own group (its parent has none).
    (root / "user.slice" / "job").mkdir(parents=True)
    (root / "user.slice" / "memory.max").write_text("max\n")
    (root / "user.slice" / "job" / "memory.max").write_text(f"{12 * GB}\n")
    proc.write_text("0::/user.slice/job\n")
    assert M.cgroup_limit(str(proc), str(root)) == 12 * GB
    # A smaller limit on an ancestor wins.
    (root / "user.slice" / "memory.max").write_text(f"{8 * GB}\n")
    assert M.cgroup_limit(str(proc), str(root)) == 8 * GB
    # cgroup v1 (what memcap sets on a v1 host); its "no limit" is a huge number.
    (root / "memory" / "memcap.42").mkdir(parents=True)
    (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (root / "memory" / "memcap.42" / "memory.limit_in_bytes").write_text(f"{4 * GB}\n")
    proc.write_text("4:memory:/memcap.42\n0::/\n")
    assert M.cgroup_limit(str(proc), str(root)) == 4 * GB
    total, where = M.node_memory(str(proc), str(root))
    assert (total, where) == (4 * GB, "4.0 GB cgroup limit")
    assert M.cgroup_limit(str(tmp_path / "missing"), str(root)) is None

    cfg = ExperimentConfig()
    budget = M.budget_for(cfg, concurrent=2, node=(total, where))
    assert budget.bytes == round(4 * GB * M.SAFETY / 2)
    assert budget.source == f"4.0 GB cgroup limit x {M.SAFETY} / 2 workers at once"
    assert M.budget_for(cfg_of({"scaling.memory_budget_gb": 3.5})).bytes == int(3.5 * GB)
    assert M.workers_at_once(cfg) == 1  # no Ray here


def test_memory_budget_is_validated_and_not_part_of_any_stage_key(tmp_path):
    from xmodal.data.pipeline import ShardSet
    from xmodal.stages import align, ecg_ssl, finetune, image_pretrain
    from xmodal.stages.features import FeatureSet
    from xmodal.stages.store import StageOutput
    from xmodal.storage import Storage

    with pytest.raises(ConfigError, match="scaling.memory_budget_gb"):
        cfg_of({"scaling.memory_budget_gb": -1.0})
    a, b = ExperimentConfig(), cfg_of({"scaling.memory_budget_gb": 7.0})
    shards = ShardSet(Storage(str(tmp_path)), "s", "cxr", ("cardiomegaly",), {})
    feats = FeatureSet(Storage(str(tmp_path)), "f", ("cardiomegaly",), ("img_feat",))
    for key in (lambda c: image_pretrain.key_for(c, shards), lambda c: ecg_ssl.key_for(c, shards),
                lambda c: align.key_for(c, feats, "ssl"),
                lambda c: finetune.key_for(c, shards, StageOutput("align", "k"))):
        assert key(a) == key(b)


# ---------------------------------------------------------------------------------------------
# Rows a worker holds, from Parquet metadata
# ---------------------------------------------------------------------------------------------


def _parquet(path, n: int, split: list[str]) -> None:
    """Rows as xmodal's shards hold them: Ray's tensor columns (here also a fixed-size list), scalars."""
    from ray.data.extensions import ArrowTensorArray

    ecg = ArrowTensorArray.from_numpy(np.zeros((n, 12, 10), np.float16))
    img = pa.FixedSizeListArray.from_arrays(pa.array([0] * (n * 16 * 16), pa.uint8()), 16 * 16)
    pq.write_table(pa.table({"pair_id": [f"p{i}" for i in range(n)], "split": split, "ok": [True] * n,
                             "ecg": ecg, "image": img, "label": pa.array([1.0] * n, pa.float32())}), path)


class FakeDataset:
    """What :func:`memory.dataset_size` reads of a Ray dataset: its files and its read's datasource."""

    def __init__(self, files, columns=None, filter=None):
        source = SimpleNamespace(_projection_map={c: c for c in columns} if columns else None,
                                 _scanner_kwargs={"filter": filter} if filter is not None else {})
        read = SimpleNamespace(datasource=source, input_dependencies=[])
        self._logical_plan = SimpleNamespace(dag=SimpleNamespace(input_dependencies=[read]))
        self.files = files

    def input_files(self):
        return self.files


def test_split_bytes_counts_rows_per_worker_and_every_validation_row(tmp_path):
    files = [str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")]
    _parquet(files[0], 10, ["train"] * 7 + ["val"] * 3)
    _parquet(files[1], 10, ["train"] * 6 + ["val"] * 2 + ["test"] * 2)
    row = 12 * 10 * 2 + 16 * 16 + 4  # float16 ECG, uint8 image, float32 label
    cols = ["ecg", "image", "label"]
    train = FakeDataset(files, cols, (pc.field("split") == "train") & pc.field("ok"))
    val = FakeDataset(files, cols, (pc.field("split") == "val") & pc.field("ok"))
    assert M.dataset_size(train, "train") == (13, row)
    total, uncounted = M.split_bytes({"train": train, "val": val}, workers=2)
    assert uncounted == [] and total == math.ceil(13 / 2) * row + 5 * row
    # Without Ray's datasource: the split named by the dataset, every column (the strings from the footer).
    plain = SimpleNamespace(input_files=lambda: files)
    rows, per_row = M.dataset_size(plain, "val")
    assert rows == 5 and per_row > row
    assert M.split_bytes({"x": SimpleNamespace(input_files=lambda: [])}, 1) == (0, ["x"])


def test_the_estimate_uses_the_stored_image_size_not_the_configured_ceiling(tmp_path):
    files = [str(tmp_path / "a.parquet")]
    _parquet(files[0], 4, ["train"] * 4)
    from ray.data.extensions import ArrowTensorArray

    cine = ArrowTensorArray.from_numpy(np.zeros((4, 16, 32, 32), np.uint8))  # a smoke cohort's cines
    pq.write_table(pq.read_table(files[0]).drop_columns(["image"]).append_column("image", cine), files[0])
    stored = M.stored_shapes({"train": FakeDataset(files)})
    assert stored["ecg"] == (12, 10) and stored["image"] == (16, 32, 32)
    cfg = cfg_of({**SMOKE_CINE, "image.size": 224, "image.cine_frames": 50})  # ceilings, capped by the cohort
    sh = M.shapes_for(cfg, {"image_kind": "cine"}, stored)
    assert (sh.seq_len, sh.image) == (10, (16, 32, 32))
    at_stored = M.estimate(("image_pretrain",), cfg, datasets={"train": FakeDataset(files)},
                           loop_config={"image_kind": "cine"})
    assert at_stored.activations < M.estimate(("image_pretrain",), cfg).activations / 20


def test_the_ray_internals_the_split_count_reads_are_there():
    import inspect

    from ray.data._internal.datasource.parquet_datasource import ParquetDatasource
    from ray.data._internal.logical.operators.read_operator import Read

    init = inspect.getsource(ParquetDatasource)
    assert "self._scanner_kwargs =" in init and "self._projection_map =" in init
    assert "datasource" in Read.__dataclass_fields__


# ---------------------------------------------------------------------------------------------
# A worker killed for memory: one line, the full error in a log file
# ---------------------------------------------------------------------------------------------

OOM_TEXT = ("Task was killed due to the node running low on memory.\nMemory on the node (IP: 10.0.0.7, ID: 5e1f) "
            "where the lease (actor ID: 9a2b, name=RayTrainWorker.__init__, pid=4242, memory used=9.87GB) was "
            "running was 11.43GB / 12.00GB (0.952), which exceeds the memory usage threshold of 0.95. Ray killed "
            "this worker (ID: 77c1) because it was the most recently scheduled task; to see more information "
            "about memory usage on this node, use `ray logs raylet.out -ip 10.0.0.7`.")


def _health(failure: Exception) -> Exception:
    """How Ray Train reports a worker whose poll failed: the poll's error inside a health-check error."""
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError

    return WorkerHealthCheckFailedError("A worker health check failed.\nWorker info: rank 0", failure=failure)


def _sigkilled():
    from ray.core.generated.common_pb2 import ActorDiedErrorContext
    from ray.exceptions import ActorDiedError

    return ActorDiedError(ActorDiedErrorContext(
        error_message="The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR "
                      "Worker exit detail: Worker unexpectedly exits with a connection error code 2. End of "
                      "file. (1) The process is killed by SIGKILL by OOM killer due to high memory usage.",
        actor_id=bytes(16), class_name="RayTrainWorker", pid=5151, node_ip_address="10.0.0.7"))


def _fit_failing_with(monkeypatch, tmp_path, error: Exception, budget_gb: float = 100.0):
    from xmodal.stages import image_pretrain, runner
    from xmodal.stages.store import StageStore
    from xmodal.storage import Storage

    class Trainer:
        def __init__(self, *args, **kwargs):
            self.callbacks = kwargs["run_config"].callbacks

        def fit(self):
            raise error

    monkeypatch.setattr(runner, "TorchTrainer", Trainer)
    store = StageStore(Storage(str(tmp_path)))
    cfg = cfg_of({**SMOKE_CXR, "scaling.memory_budget_gb": budget_gb, "scaling.launcher": "ray_train"})
    return runner.fit("image_pretrain-abc123", image_pretrain.train_loop, cfg=cfg, store=store, datasets={},
                      loop_config={"labels": ["cardiomegaly"], "image_kind": "cxr"}, verbose=False)


def test_fit_turns_a_memory_monitor_kill_into_one_line_and_a_log(monkeypatch, tmp_path):
    import ray.train
    from ray.exceptions import OutOfMemoryError

    from xmodal.stages.runner import StopOnBadInput

    # The controller's callback stops the run at the first kill (no retry into the same OOM) ...
    with pytest.raises(ResourceError) as stopped:
        StopOnBadInput().after_exception(None, {0: _health(OutOfMemoryError(OOM_TEXT))})
    # ... and Ray Train wraps what the callback raised.
    with pytest.raises(ResourceError) as err:
        _fit_failing_with(monkeypatch, tmp_path, ray.train.ControllerError(stopped.value))
    msg = str(err.value)
    log = tmp_path / "logs" / "image_pretrain-abc123.log"
    assert "\n" not in msg and msg.startswith(
        "image_pretrain: Train worker rank 0 (pid 4242) was killed by Ray's memory monitor: the node ran low on "
        "memory (11.43GB / 12.00GB in use); estimated ")
    assert "per worker, budget 100.0 GB (scaling.memory_budget_gb); lower image_pretrain.batch_size" in msg
    assert msg.endswith(f"; full error in {log}")
    assert "which exceeds the memory usage threshold of 0.95" in log.read_text()

    # The same kill reaching the driver inside the worker group's error (no callback in between).
    wrapped = ray.train.WorkerGroupError("[Rank 0 Error Snippet]: ...", {0: _health(OutOfMemoryError(OOM_TEXT))})
    with pytest.raises(ResourceError, match=r"^image_pretrain: Train worker rank 0 \(pid 4242\) was killed"):
        _fit_failing_with(monkeypatch, tmp_path, wrapped)


def test_a_worker_that_died_is_retried_once_then_ends_the_stage_in_one_line(monkeypatch, tmp_path):
    import ray.train

    from xmodal.stages.runner import StopOnBadInput, memory_kill

    died = _health(_sigkilled())
    StopOnBadInput().after_exception(None, {0: died})  # no reason given: Ray Train retries it once
    assert memory_kill(died, 0).retry
    with pytest.raises(ResourceError) as err:
        _fit_failing_with(monkeypatch, tmp_path, ray.train.WorkerGroupError("rank 0 died", {0: died}))
    assert str(err.value).startswith("image_pretrain: Train worker rank 0 (pid 5151) died (most often SIGKILL "
                                     "from the kernel's OOM killer); estimated ")
    assert "connection error code 2" in (tmp_path / "logs" / "image_pretrain-abc123.log").read_text()


def test_other_worker_failures_keep_rays_error(monkeypatch, tmp_path):
    import ray.train

    crash = ray.train.WorkerGroupError("rank 0: RuntimeError", {0: RuntimeError("collective aborted")})
    with pytest.raises(ray.train.WorkerGroupError):
        _fit_failing_with(monkeypatch, tmp_path, crash)
    assert not (tmp_path / "logs").exists()


def test_fit_refuses_a_run_over_budget_before_the_trainer_starts(monkeypatch, tmp_path):
    from xmodal.stages import runner

    monkeypatch.setattr(runner, "TorchTrainer", lambda *a, **k: pytest.fail("the trainer started"))
    with pytest.raises(ResourceError, match=r"^image_pretrain: a Train worker would hold about .* over its 10 MB "):
        _fit_failing_with(monkeypatch, tmp_path, RuntimeError("unused"), budget_gb=0.01)


# ---------------------------------------------------------------------------------------------
# Ray Data tasks killed for memory are retried a bounded number of times
# ---------------------------------------------------------------------------------------------


def test_feature_encoding_retries_killed_tasks_and_actors_at_most_twice(monkeypatch, tmp_path):
    import ray.data

    from xmodal.data.pipeline import ShardSet
    from xmodal.stages import features
    from xmodal.storage import Storage

    calls = {}

    class FakeDataset:
        def map_batches(self, fn, **kw):
            calls["map_batches"] = kw
            return self

        def write_parquet(self, path, **kw):
            calls["write_parquet"] = kw

    def read_parquet(uri, **kw):
        calls["read_parquet"] = kw
        return FakeDataset()

    monkeypatch.setattr(ray.data, "read_parquet", read_parquet)
    shards = ShardSet(Storage(str(tmp_path)), "s", "cxr", ("cardiomegaly",), {})
    features.run(cfg_of(SMOKE_CXR), shards, "img", verbose=False)
    assert calls["read_parquet"]["ray_remote_args"] == {"max_retries": 2}  # read tasks (Ray's default: forever)
    assert calls["map_batches"]["max_restarts"] == 0 and calls["map_batches"]["max_task_retries"] == 0  # fails at once
    assert calls["write_parquet"]["ray_remote_args"] == {"max_retries": 2}
