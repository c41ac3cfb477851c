"""Ray Data round trip: raw WFDB + DICOM -> Parquet shards -> streamed batches, bad records listed."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from xmodal.config import ECGPreprocessConfig, ImagePreprocessConfig
from xmodal.data.manifest import load_manifest
from xmodal.data.pipeline import bad_records, open_split, preprocess, read_access_log
from xmodal.storage import Storage

pytestmark = pytest.mark.integration


@pytest.fixture
def broken_cohort(tmp_path):
    from xmodal.data.synthetic import ensure_demo_cohort

    manifest = ensure_demo_cohort(tmp_path / "c", subjects=40, seed=11, kind="cxr", cxr_shape=(64, 64))
    df = load_manifest(manifest)
    ecg, img = df["ecg_path"].iloc[0], df["image_path"].iloc[1]
    dat = str(Path(ecg).with_suffix(".dat"))
    with open(dat, "r+b") as f:  # truncate the signal file to a third
        f.truncate(len(open(dat, "rb").read()) // 3)
    with open(img, "wb") as f:
        f.write(b"this is not a DICOM file")
    return df, ecg, img


def test_preprocess_skips_counts_and_lists_bad_records(ray_local, broken_cohort, tmp_path, capsys):
    df, bad_ecg, bad_img = broken_cohort
    st = Storage(str(tmp_path / "store"))
    ecg_cfg, img_cfg = ECGPreprocessConfig(), ImagePreprocessConfig(size=32)
    shards = preprocess(df, ecg_cfg, img_cfg, st, shard_rows=16)
    assert not shards.reused and shards.image_shape == (32, 32)  # 64 px films, size 32: the ceiling applies
    assert shards.counts["rows"] == len(df) and shards.counts["bad"] == 2 and shards.counts["ok"] == len(df) - 2
    assert "2 bad" in capsys.readouterr().out
    bad = bad_records(shards)
    assert sorted(bad["file"]) == sorted([bad_ecg, bad_img])
    assert all(r for r in bad["reason"])

    # Tensor columns are stored plain: dictionary-encoded float16 ECGs read several times slower.
    meta = pq.read_metadata(next(Path(shards.data_uri).glob("*.parquet"))).row_group(0)
    enc = {meta.column(i).path_in_schema.split(".")[0]: meta.column(i).encodings for i in range(meta.num_columns)}
    assert not {"PLAIN_DICTIONARY", "RLE_DICTIONARY"} & {*enc["ecg"], *enc["image"]}
    assert "RLE_DICTIONARY" in enc["split"]

    again = preprocess(df, ecg_cfg, img_cfg, st, shard_rows=16)
    assert again.reused and again.key == shards.key
    assert preprocess(df, ecg_cfg, ImagePreprocessConfig(size=48), st, shard_rows=16).key != shards.key

    ds = open_split(shards.data_uri, "train", storage=st, key=shards.key, columns=["ecg", "image", "cardiomegaly"])
    n = 0
    for batch in ds.iter_torch_batches(batch_size=8):
        assert batch["ecg"].shape[1:] == (12, 1000) and str(batch["ecg"].dtype) == "torch.float16"
        assert batch["image"].shape[1:] == (32, 32) and str(batch["image"].dtype) == "torch.uint8"
        n += len(batch["ecg"])
    assert n == shards.counts["per_split"]["train"] > 0

    with pytest.raises(PermissionError):
        open_split(shards.data_uri, "test", storage=st, key=shards.key)
    assert {r["split"] for r in read_access_log(st, shards.key)} == {"train"}


def test_preprocessing_a_cohort_twice_writes_the_same_rows_in_the_same_order(ray_local, tmp_path):
    """Stages read shards in file order, so one seed gives one result only if the order is fixed."""
    import pyarrow.dataset as pads

    from xmodal.data.synthetic import ensure_demo_cohort

    df = load_manifest(ensure_demo_cohort(tmp_path / "c", subjects=40, seed=5, kind="cxr", cxr_shape=(48, 48)))
    orders = []
    for run in ("a", "b"):
        shards = preprocess(df, ECGPreprocessConfig(), ImagePreprocessConfig(size=32), Storage(str(tmp_path / run)),
                            shard_rows=8, verbose=False)  # several blocks, mapped in parallel
        t = pads.dataset(shards.data_uri, format="parquet").to_table(columns=["pair_id"])
        orders.append(t.column("pair_id").to_pylist())
    assert orders[0] == orders[1] == df["pair_id"].tolist()


def test_a_cohort_smaller_than_the_configured_sizes_is_never_upsampled(ray_local, tmp_path, capsys):
    """32 x 32 px, 16-frame cines under the default image.size=224, cine_frames=50 are stored as they are."""
    from xmodal.data.synthetic import ensure_demo_cohort

    df = load_manifest(ensure_demo_cohort(tmp_path / "c", subjects=16, seed=2, kind="cmr", cine_shape=(32, 32),
                                          cine_frames=16, workers=1, verbose=False))
    st = Storage(str(tmp_path / "store"))
    shards = preprocess(df, ECGPreprocessConfig(), ImagePreprocessConfig(), st, shard_rows=8)
    assert shards.image_shape == (16, 32, 32) and shards.counts["bad"] == 0
    assert ("the cohort holds 32x32 px, 16 frames; preprocessing at 32 px, 16 frames "
            "(image.size=224, image.cine_frames=50 are ceilings)") in capsys.readouterr().out
    meta = st.read_json("shards", shards.key, "meta.json")
    assert meta["image_shape"] == [16, 32, 32] and meta["image"]["size"] == 224
    assert meta["image_geometry"]["native"] == {"frames": 16, "rows": 32, "columns": 32}
    batch = open_split(shards.data_uri, "train", storage=st, key=shards.key, columns=["image"]).take_batch(2)
    assert batch["image"].shape[1:] == (16, 32, 32)
    again = preprocess(df, ECGPreprocessConfig(), ImagePreprocessConfig(), st, shard_rows=8, verbose=False)
    assert again.reused and again.image_shape == (16, 32, 32)
