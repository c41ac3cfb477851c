"""Cohort geometry: the configured image sizes are a ceiling, capped by what a sample of headers holds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import xmodal.data.geometry as geometry
from xmodal.config import ECGPreprocessConfig, ImagePreprocessConfig
from xmodal.data.dicom import NativeGeometry
from xmodal.data.geometry import cohort_geometry, effective_geometry, sample_paths
from xmodal.data.pipeline import shard_key


def manifest(paths: list) -> pd.DataFrame:
    return pd.DataFrame({"pair_id": [f"p{i:03d}" for i in range(len(paths))], "image_path": [str(p) for p in paths]})


def test_a_32_px_16_frame_cine_cohort_is_kept_at_32_px_and_16_frames(make_dicom, tmp_path):
    paths = [make_dicom(f"cine{i}.dcm", np.zeros((16, 32, 32), np.uint16)) for i in range(3)]
    for i in range(16):  # a folder of single-frame files counts its files as frames
        make_dicom(f"series/{i:02d}.dcm", np.zeros((32, 32), np.uint16), SeriesInstanceUID="1.2", InstanceNumber=i)
    g = cohort_geometry(manifest([*paths, tmp_path / "series"]), ImagePreprocessConfig(), "cine")
    assert (g.size, g.frames, g.shape) == (32, 16, (16, 32, 32))
    assert g.native == NativeGeometry(16, 32, 32) and g.ceiling == (224, 50) and g.capped
    assert (g.sampled, g.probed) == (4, 4)
    assert g.describe() == ("[xmodal] images: the cohort holds 32x32 px, 16 frames; preprocessing at 32 px, "
                            "16 frames (image.size=224, image.cine_frames=50 are ceilings)")
    assert g.to_dict() == {"native": {"frames": 16, "rows": 32, "columns": 32},
                           "ceiling": {"size": 224, "cine_frames": 50}, "sampled": 4, "probed": 4}


def test_a_512_px_cxr_cohort_under_size_224_stays_224(make_dicom):
    paths = [make_dicom(f"cxr{i}.dcm", np.zeros((512, 512), np.uint16)) for i in range(2)]
    g = cohort_geometry(manifest(paths), ImagePreprocessConfig(size=224), "cxr")
    assert (g.size, g.frames, g.shape, g.capped) == (224, None, (224, 224), False)
    assert g.describe() == "[xmodal] images: the cohort holds 512x512 px; preprocessing at 224 px (image.size=224)"


def test_the_largest_record_of_the_sample_sets_the_size_and_frames():
    natives = [NativeGeometry(20, 48, 48), NativeGeometry(30, 40, 40), NativeGeometry(10, 64, 96)]
    crop = effective_geometry(ImagePreprocessConfig(size=224, fit="crop", cine_frames=25), "cine", natives)
    assert (crop.size, crop.frames, crop.native) == (64, 25, NativeGeometry(30, 64, 96))  # short side for crop
    pad = effective_geometry(ImagePreprocessConfig(size=224, fit="pad", cine_frames=50), "cine", natives)
    assert (pad.size, pad.frames) == (96, 30)  # long side for pad: the short one is padded, not shrunk
    assert effective_geometry(ImagePreprocessConfig(size=80, fit="pad"), "cxr", natives).size == 80


def test_unreadable_records_in_the_sample_are_skipped(make_dicom, tmp_path):
    good = make_dicom("good.dcm", np.zeros((40, 40), np.uint16))
    (tmp_path / "text.dcm").write_text("not a DICOM file")
    g = cohort_geometry(manifest([tmp_path / "text.dcm", good, tmp_path / "missing.dcm"]),
                        ImagePreprocessConfig(), "cxr")
    assert (g.size, g.sampled, g.probed) == (40, 3, 1)


def test_no_readable_record_keeps_the_configured_sizes(tmp_path):
    g = cohort_geometry(manifest([tmp_path / "a.dcm", tmp_path / "b"]), ImagePreprocessConfig(), "cine")
    assert (g.shape, g.native, g.sampled, g.probed) == ((50, 224, 224), None, 2, 0)
    assert "none of the 2 sampled headers could be read" in g.describe()


def test_the_sample_is_evenly_spaced_in_pair_id_order_whatever_the_row_order():
    df = manifest([f"img{i}" for i in range(100)])
    picked = sample_paths(df, 32)
    assert len(picked) == 32 and picked[0] == "img0" and picked[-1] == "img99"
    assert sample_paths(df.sample(frac=1, random_state=0), 32) == picked
    assert sample_paths(df.iloc[:5], 32) == [f"img{i}" for i in range(5)]
    assert sample_paths(df.iloc[:0]) == []


def test_only_the_sample_is_probed(monkeypatch):
    seen = []
    monkeypatch.setattr(geometry, "native_geometry", lambda path, kind: seen.append(path) or NativeGeometry(1, 64, 64))
    g = cohort_geometry(manifest([f"img{i}" for i in range(1000)]), ImagePreprocessConfig(), "cxr")
    assert len(seen) == geometry.SAMPLE and g.size == 64


@pytest.mark.parametrize("shape", [(32, 32), (16, 32, 32)])
def test_the_shard_key_changes_with_the_effective_shape(shape):
    df = manifest(["a", "b"])
    ecg, image = ECGPreprocessConfig(), ImagePreprocessConfig()
    assert shard_key(df, ecg, image, shape) == shard_key(df, ecg, image, shape)
    assert shard_key(df, ecg, image, shape) != shard_key(df, ecg, image, (224, 224))
