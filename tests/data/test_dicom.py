"""DICOM readers: the real NIH CXR, and generated files whose displayed values are known by hand."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_encoder
from pydicom.sequence import Sequence
from pydicom.uid import JPEG2000, MPEG2MPML, JPEG2000Lossless, RLELossless

import xmodal.data.dicom as dicom
from xmodal.data.dicom import NativeGeometry, dicom_summary, native_geometry, read_cine, read_cxr
from xmodal.errors import ConfigError, RecordError

SECRETS = ("Doe", "John", "PID-SECRET-42", "19700101")


def phantom(rows: int = 64, cols: int = 64, seed: int = 0) -> np.ndarray:
    """uint16 ``[rows, cols]`` 12-bit test image: a smooth gradient with a bright disc and noise."""
    yy, xx = np.mgrid[:rows, :cols]
    img = 400 + 20 * xx + 10 * yy + 1500 * ((yy - rows / 2) ** 2 + (xx - cols / 3) ** 2 < (rows / 5) ** 2)
    img = img + np.random.default_rng(seed).integers(0, 50, img.shape)
    return np.clip(img, 0, 4095).astype(np.uint16)


def no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# ---------------------------------------------------------------------------------------------
# Real sample
# ---------------------------------------------------------------------------------------------


def test_real_nih_cxr_is_bone_bright(nih_cxr):
    x = read_cxr(nih_cxr)
    assert x.shape == (224, 224) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 1 and x.max() - x.min() > 0.8
    heart = x[110:170, 95:145].mean()  # mediastinum / cardiac silhouette (patient's left is image right)
    lungs = (x[60:120, 35:75].mean() + x[60:120, 150:190].mean()) / 2
    assert heart > lungs + 0.2


def test_real_cxr_summary_is_technical_only(nih_cxr):
    summary = dicom_summary(nih_cxr)
    assert summary["modality"] == "DX" and summary["rows"] == 1024 and summary["columns"] == 1024
    assert summary["photometric"] == "MONOCHROME2" and summary["bits_stored"] == 8
    assert set(summary) == {"modality", "rows", "columns", "frames", "bits_allocated", "bits_stored",
                            "photometric", "transfer_syntax", "transfer_syntax_uid", "view_position"}


# ---------------------------------------------------------------------------------------------
# Intensities, checked pixel by pixel (size == image size: the resize is the identity)
# ---------------------------------------------------------------------------------------------


def test_monochrome1_displays_like_monochrome2(make_dicom):
    img = phantom()
    mono2 = read_cxr(make_dicom("m2.dcm", img), size=64)
    mono1 = read_cxr(make_dicom("m1.dcm", 4095 - img, photometric="MONOCHROME1"), size=64)
    np.testing.assert_allclose(mono1, mono2, atol=1e-6)
    expected = (img - img.min()) / (img.max() - img.min())  # no window: min-max
    np.testing.assert_allclose(mono2, expected, atol=1e-6)


def test_window_centre_and_width(make_dicom):
    img = np.array([[0, 50, 100, 150], [149, 200, 99, 4095]] * 2, np.uint16)
    x = read_cxr(make_dicom("win.dcm", img, WindowCenter=100, WindowWidth=101), size=4, fit="crop")
    # LINEAR (PS3.3 C.11.2.1.2): <= 49.5 -> 0, > 149.5 -> 1, else (v - 99.5) / 100 + 0.5
    expected = np.array([[0, 0.005, 0.505, 1], [0.995, 1, 0.495, 1]] * 2)
    np.testing.assert_allclose(x, expected[:4], atol=1e-5)


def test_rescale_slope_intercept_then_window(make_dicom):
    img = np.array([[500, 1000, 250, 0]] * 4, np.uint16)
    attrs = dict(RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=0, WindowWidth=2000,
                 VOILUTFunction="LINEAR_EXACT")
    x = read_cxr(make_dicom("ct.dcm", img, **attrs), size=4)
    # value = 2 * stored - 1000 -> (value - 0) / 2000 + 0.5, clipped
    np.testing.assert_allclose(x, np.array([[0.5, 1.0, 0.25, 0.0]] * 4), atol=1e-6)


def test_negative_rescale_slope_flips_the_min_max_image(make_dicom):
    img = phantom()
    plain = read_cxr(make_dicom("plain.dcm", img), size=64)
    flipped = read_cxr(make_dicom("neg.dcm", img, RescaleSlope=-1, RescaleIntercept=0), size=64)
    np.testing.assert_allclose(flipped, 1 - plain, atol=1e-6)


def test_voi_lut_sequence_wins_over_the_window(make_dicom):
    item = Dataset()
    item.add_new(0x00283002, "US", [4, 10, 16])  # LUTDescriptor: 4 entries, first input 10, 16 bits
    item.add_new(0x00283006, "US", [0, 1000, 3000, 4000])  # LUTData
    img = np.array([[9, 10, 11, 12], [13, 50, 0, 12]] * 2, np.uint16)
    x = read_cxr(make_dicom("lut.dcm", img, VOILUTSequence=Sequence([item]), WindowCenter=5, WindowWidth=2),
                 size=4, fit="crop")
    # below the first input -> entry 0, above the last -> last entry; scaled by the LUT's 0..4000
    np.testing.assert_allclose(x, np.array([[0, 0, 0.25, 0.75], [1, 1, 0, 0.75]] * 2)[:4], atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------


def test_pad_keeps_aspect_and_crop_fills_the_square(make_dicom):
    img = np.full((40, 80), 1000, np.uint16)
    img[:, :20] = 0  # left quarter dark
    path = make_dicom("wide.dcm", img)
    pad = read_cxr(path, size=40)
    assert np.all(pad[:10] == 0) and np.all(pad[30:] == 0)  # 20 content rows centred, black bars
    np.testing.assert_array_equal(pad[10:30, :10], 0)  # 2x block mean: dark quarter -> 10 columns
    np.testing.assert_array_equal(pad[10:30, 10:], 1)
    crop = read_cxr(path, size=40, fit="crop")  # centre square = columns 20..59, all bright
    np.testing.assert_array_equal(crop, 1)


def test_resize_is_antialiased(make_dicom):
    def checker(n: int) -> np.ndarray:  # 1-pixel checkerboard, 0 / 4000
        return (np.indices((n, n)).sum(axis=0) % 2 * 4000).astype(np.uint16)

    # Point sampling (nearest or plain bilinear) would return 0s and 1s; area averaging returns grey.
    x = read_cxr(make_dicom("checker3.dcm", checker(192)), size=64)  # 3x3 blocks: 4/9 or 5/9 bright
    assert np.all(np.isclose(x, 4 / 9, atol=1e-6) | np.isclose(x, 5 / 9, atol=1e-6))
    x = read_cxr(make_dicom("checker256.dcm", checker(256)), size=100)  # factor 2.56
    np.testing.assert_allclose(x, 0.5, atol=1e-6)
    ramp = np.tile(np.linspace(0, 4000, 300).astype(np.uint16), (300, 1))
    y = read_cxr(make_dicom("ramp.dcm", ramp), size=70)  # non-integer factor (300 -> 70)
    assert np.all(np.diff(y[35]) > 0) and abs(y.mean() - 0.5) < 0.01


# ---------------------------------------------------------------------------------------------
# Transfer syntaxes
# ---------------------------------------------------------------------------------------------


def _compressed(make_dicom, tmp_path, uid, name, **kwargs):
    if not get_encoder(uid).is_available:
        pytest.skip(f"no encoder installed for {uid.name}")
    src = make_dicom("src_" + name, phantom(96, 128))
    ds = pydicom.dcmread(src)
    ds.compress(uid, **kwargs)
    ds.save_as(tmp_path / name)
    assert pydicom.dcmread(tmp_path / name).file_meta.TransferSyntaxUID == uid
    return src, tmp_path / name


@pytest.mark.parametrize("uid", [JPEG2000Lossless, RLELossless])
def test_lossless_compression_round_trips_exactly(make_dicom, tmp_path, uid):
    src, packed = _compressed(make_dicom, tmp_path, uid, "lossless.dcm")  # 96x128 at size 128: full decode
    np.testing.assert_allclose(read_cxr(packed, size=128), read_cxr(src, size=128), atol=1e-6)


def test_lossy_jpeg2000_is_close(make_dicom, tmp_path):
    src, packed = _compressed(make_dicom, tmp_path, JPEG2000, "lossy.dcm", j2k_cr=[20])
    diff = np.abs(read_cxr(packed, size=128) - read_cxr(src, size=128))
    assert diff.mean() < 0.01 and diff.max() < 0.1


@pytest.mark.parametrize("bits", [12, 16])
def test_large_jpeg2000_decodes_at_reduced_resolution(make_dicom, tmp_path, monkeypatch, bits):
    if not get_encoder(JPEG2000Lossless).is_available:
        pytest.skip("no JPEG 2000 encoder installed (pip install pylibjpeg pylibjpeg-openjpeg)")
    img = phantom(384, 512).astype(np.uint32) << (bits - 12)
    src = make_dicom("big.dcm", img.astype(np.uint16), bits_stored=bits)
    ds = pydicom.dcmread(src)
    ds.compress(JPEG2000Lossless)
    ds.save_as(tmp_path / "big_j2k.dcm")
    levels = []
    original = dicom._j2k_reduced
    monkeypatch.setattr(dicom, "_j2k_reduced", lambda d, r: levels.append(r) or original(d, r))
    fast = read_cxr(tmp_path / "big_j2k.dcm", size=64)  # 512 -> 64: wavelet level 3 (64x48), no resize left
    assert levels == [8.0] and original(pydicom.dcmread(tmp_path / "big_j2k.dcm"), 8.0).shape == (48, 64)
    diff = np.abs(fast - read_cxr(src, size=64))
    assert diff.mean() < 0.01 and diff.max() < 0.06


def test_jpeg_ls_lossless_decodes_like_uncompressed():
    from pydicom.data import get_testdata_file

    plain, jls = get_testdata_file("MR_small.dcm"), get_testdata_file("MR_small_jpeg_ls_lossless.dcm")
    if plain is None or jls is None:
        pytest.skip("pydicom's bundled MR_small test files are missing")
    np.testing.assert_array_equal(read_cxr(jls, size=64), read_cxr(plain, size=64))


def test_missing_decoder_names_the_package(make_dicom, tmp_path, monkeypatch):
    _, packed = _compressed(make_dicom, tmp_path, JPEG2000Lossless, "j2k.dcm")

    class Unavailable:
        is_available = False

    monkeypatch.setattr(dicom, "get_decoder", lambda uid: Unavailable())
    with pytest.raises(RecordError, match="pip install pylibjpeg pylibjpeg-openjpeg") as err:
        read_cxr(packed)
    assert "j2k.dcm" in str(err.value)


def test_unsupported_transfer_syntax(make_dicom, tmp_path):
    ds = pydicom.dcmread(make_dicom("video.dcm", phantom()))
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds.save_as(tmp_path / "mpeg.dcm")
    with pytest.raises(RecordError, match="unsupported transfer syntax MPEG2"):
        read_cxr(tmp_path / "mpeg.dcm")


def test_corrupted_pixel_data(make_dicom, tmp_path):
    _, packed = _compressed(make_dicom, tmp_path, JPEG2000Lossless, "broken.dcm")
    ds = pydicom.dcmread(packed)
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 60])  # a J2K start marker, then junk
    ds.save_as(packed)
    with pytest.raises(RecordError, match="pixel data cannot be decoded") as err:
        read_cxr(packed)
    assert "broken.dcm" in str(err.value)
    short = pydicom.dcmread(make_dicom("short.dcm", phantom()))
    short.PixelData = short.PixelData[:1000]  # native pixel data shorter than rows * cols * 2
    short.save_as(tmp_path / "short.dcm")
    with pytest.raises(RecordError, match="short.dcm: pixel data cannot be decoded"):
        read_cxr(tmp_path / "short.dcm")


# ---------------------------------------------------------------------------------------------
# Errors never leak patient attributes
# ---------------------------------------------------------------------------------------------


def test_error_cases_name_the_file_and_nothing_identifying(make_dicom, tmp_path):
    (tmp_path / "notes.dcm").write_text("just text")
    ds = pydicom.dcmread(make_dicom("nopix.dcm", phantom()))
    del ds.PixelData
    ds.save_as(tmp_path / "nopix.dcm")
    cases = {
        "missing.dcm": "file not found",
        "notes.dcm": "not a DICOM file",
        "nopix.dcm": "no pixel data",
        "multi.dcm": "multi-frame file",
    }
    make_dicom("multi.dcm", np.stack([phantom()] * 3))
    make_dicom("badwindow.dcm", phantom(), WindowCenter=100, WindowWidth=0)
    make_dicom("rgb.dcm", phantom(), photometric="RGB")
    cases.update({"badwindow.dcm": "Window Width must be", "rgb.dcm": "expected a greyscale"})
    for name, reason in cases.items():
        with pytest.raises(RecordError) as err:
            read_cxr(tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / name)) and reason in str(err.value)
        no_secrets(str(err.value))
    summary = dicom_summary(tmp_path / "nopix.dcm")
    assert summary["rows"] == 64 and summary["transfer_syntax"] == "Explicit VR Little Endian"
    no_secrets(repr(summary))


def test_bad_arguments_are_config_errors(make_dicom):
    path = make_dicom("ok.dcm", phantom())
    with pytest.raises(ConfigError, match="image.fit"):
        read_cxr(path, fit="stretch")


# ---------------------------------------------------------------------------------------------
# Cine
# ---------------------------------------------------------------------------------------------

PHASE_WINDOW = dict(WindowCenter=500, WindowWidth=1000, VOILUTFunction="LINEAR_EXACT")  # v -> v / 1000


def _phase_frames(n: int = 10) -> np.ndarray:
    """``[n, 32, 32]``: frame i is uniformly 100 * i, i.e. displays as 0.1 * i under PHASE_WINDOW."""
    return np.stack([np.full((32, 32), 100 * i, np.uint16) for i in range(n)])


def test_multiframe_cine_resampled_periodically(make_dicom):
    path = make_dicom("cine.dcm", _phase_frames(), **PHASE_WINDOW)
    x = read_cine(path, frames=20, size=32)
    assert x.shape == (20, 32, 32) and x.dtype == np.float32
    expected = np.r_[0.05 * np.arange(19), 0.45]  # the 20th point lies halfway from frame 9 (0.9) to frame 0
    np.testing.assert_allclose(x[:, 16, 16], expected, atol=1e-6)
    np.testing.assert_allclose(read_cine(path, frames=5, size=32)[:, 0, 0], 0.2 * np.arange(5), atol=1e-6)


def test_folder_ordered_by_trigger_time_with_one_window(make_dicom, tmp_path):
    frames = _phase_frames()
    names = np.random.default_rng(1).permutation(10)  # disk order unrelated to time
    for i, frame in enumerate(frames):
        window = PHASE_WINDOW if i == 0 else dict(WindowCenter=0, WindowWidth=10)  # only frame 0's counts
        make_dicom(f"series/{names[i]:03d}.dcm", frame, SeriesInstanceUID="1.2.3", TriggerTime=40.0 * i,
                   InstanceNumber=10 - i, **window)  # instance numbers reversed: trigger time wins
    x = read_cine(tmp_path / "series", frames=10, size=16, fit="crop")
    assert x.shape == (10, 16, 16)
    np.testing.assert_allclose(x[:, 8, 8], 0.1 * np.arange(10), atol=1e-6)


def test_folder_without_window_uses_one_min_max_and_instance_numbers(make_dicom, tmp_path):
    for i, frame in enumerate(_phase_frames()):
        # per-file rescale differs but the physical values stay 100 * i: display must not change
        make_dicom(f"s/{9 - i}.dcm", (frame + 10 * i).astype(np.uint16), InstanceNumber=i,
                   RescaleSlope=1, RescaleIntercept=-10 * i)
    x = read_cine(tmp_path / "s", frames=10, size=32)
    np.testing.assert_allclose(x[:, 0, 0], np.arange(10) / 9, atol=1e-6)  # per-frame min-max would give 0s


def test_cine_errors(make_dicom, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordError, match="empty folder"):
        read_cine(tmp_path / "empty")
    make_dicom("mixed/a.dcm", np.zeros((32, 32), np.uint16))
    make_dicom("mixed/b.dcm", np.zeros((32, 48), np.uint16))
    with pytest.raises(RecordError, match="mixed image sizes"):
        read_cine(tmp_path / "mixed")
    make_dicom("two/a.dcm", np.zeros((32, 32), np.uint16), SeriesInstanceUID="1.1")
    make_dicom("two/b.dcm", np.zeros((32, 32), np.uint16), SeriesInstanceUID="1.2")
    with pytest.raises(RecordError, match="2 series"):
        read_cine(tmp_path / "two")
    single = make_dicom("single.dcm", phantom())
    with pytest.raises(RecordError, match="single-frame file") as err:
        read_cine(single)
    no_secrets(str(err.value))


# ---------------------------------------------------------------------------------------------
# Native geometry (headers only)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def no_pixel_reads(monkeypatch):
    """Any pixel decode fails the test: native_geometry must read headers only."""
    def refuse(*args, **kwargs):
        raise AssertionError("native_geometry decoded pixel data")

    monkeypatch.setattr(dicom, "_decode", refuse)
    monkeypatch.setattr(Dataset, "pixel_array", property(refuse))


def test_native_geometry_of_a_multiframe_cine_a_folder_and_a_cxr(make_dicom, tmp_path, no_pixel_reads):
    cine = make_dicom("cine.dcm", np.zeros((16, 32, 40), np.uint16))
    assert native_geometry(cine, "cine") == NativeGeometry(frames=16, rows=32, columns=40)
    for i in range(12):
        make_dicom(f"series/{i:02d}.dcm", np.zeros((24, 28), np.uint16), SeriesInstanceUID="1.2.3", InstanceNumber=i)
    (tmp_path / "series" / ".DS_Store").write_bytes(b"")  # skipped, as read_cine skips it
    assert native_geometry(tmp_path / "series", "cine") == NativeGeometry(12, 24, 28)
    cxr = make_dicom("cxr.dcm", np.zeros((512, 480), np.uint16))
    assert native_geometry(cxr, "cxr") == NativeGeometry(1, 512, 480)


def test_native_geometry_reads_a_header_whose_pixels_are_truncated(make_dicom, tmp_path):
    path = make_dicom("cut.dcm", np.zeros((8, 64, 64), np.uint16))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 50_000])  # most of the pixel data gone
    assert native_geometry(path, "cine") == NativeGeometry(8, 64, 64)
    with pytest.raises(RecordError):
        read_cine(path)


def test_native_geometry_errors_name_the_file(make_dicom, tmp_path):
    (tmp_path / "notes.dcm").write_text("just text")
    (tmp_path / "empty").mkdir()
    for path, reason in ((tmp_path / "notes.dcm", "not a DICOM"), (tmp_path / "missing.dcm", "not found"),
                         (tmp_path / "empty", "empty folder")):
        with pytest.raises(RecordError, match=reason) as err:
            native_geometry(path, "cine")
        assert str(err.value).startswith(str(path))
    with pytest.raises(ConfigError, match="cxr, cine"):
        native_geometry(make_dicom("x.dcm", phantom()), "ct")
