"""ECG reader and R-peak detector: real CinC records, and generated WFDB records with known content."""

from __future__ import annotations

import numpy as np
import pytest
import wfdb

from xmodal.config import ECGPreprocessConfig
from xmodal.data.beats import detect_rpeaks
from xmodal.data.ecg import LEADS, load_leads, preprocess_ecg, read_ecg
from xmodal.errors import ConfigError, RecordError

RAW = ECGPreprocessConfig(baseline="none", normalize="none")  # only NaN handling, resampling, length

# ---------------------------------------------------------------------------------------------
# Real samples
# ---------------------------------------------------------------------------------------------


def test_all_real_records_read_to_zscored_12x1000(cinc_dir):
    headers = sorted(cinc_dir.glob("*.hea"))
    assert len(headers) == 25
    flat_leads = {}
    for hea in headers:
        x = read_ecg(hea)
        assert x.shape == (12, 1000) and x.dtype == np.float32, hea.name
        assert np.isfinite(x).all(), hea.name
        flat = np.ptp(load_leads(hea)[0], axis=1) == 0  # constant in the file: must come out as zeros
        if flat.any():
            flat_leads[hea.stem] = [LEADS[i] for i in np.flatnonzero(flat)]
        np.testing.assert_allclose(x.mean(axis=1), 0, atol=1e-4, err_msg=hea.name)
        np.testing.assert_allclose(x.std(axis=1), np.where(flat, 0, 1), atol=1e-4, err_msg=hea.name)
    # Two Chapman-Shaoxing records really have constant V2, V4, V6 (lead-off in the wild).
    assert flat_leads == {"JS20004": ["V2", "V4", "V6"], "JS20008": ["V2", "V4", "V6"]}


def test_lowercase_mv_unit_and_lead_order_follow_the_header(cinc_dir):
    hea = cinc_dir / "HR06000.hea"
    assert "/mv " in hea.read_text()  # the quirk this test is about
    raw, fs = load_leads(hea)
    rec = wfdb.rdrecord(str(hea.with_suffix("")))
    assert fs == 500 and raw.shape == (12, 5000)
    for j, lead in enumerate(LEADS):  # row j is the header's channel of that name, unscaled (mv = mV)
        np.testing.assert_array_equal(raw[j], rec.p_signal[:, rec.sig_name.index(lead)])


def test_path_with_or_without_extension(cinc_dir):
    base = cinc_dir / "JS20000"
    ref = read_ecg(base)
    for suffix in (".hea", ".mat"):
        np.testing.assert_array_equal(read_ecg(base.with_suffix(suffix)), ref)
    np.testing.assert_array_equal(read_ecg(str(base)), ref)


def test_rpeaks_on_real_records_are_physiological(cinc_dir):
    # E07500 is labelled sinus bradycardia (< 60 bpm): 8-10 beats in 10 s, never ~19 T-wave hits.
    assert 8 <= len(detect_rpeaks(read_ecg(cinc_dir / "E07500"), 100)) <= 10
    for hea in sorted(cinc_dir.glob("*.hea")):
        peaks = detect_rpeaks(read_ecg(hea), 100)
        assert 5 <= len(peaks) <= 30, hea.name  # 30-180 bpm
        assert np.all(np.diff(peaks) >= 25), hea.name  # no two beats within 250 ms


# ---------------------------------------------------------------------------------------------
# Generated records: formats, rates, lead layouts, units
# ---------------------------------------------------------------------------------------------


def test_mimic_like_dat_round_trips_in_mV(write_wfdb, ecg_like):
    sig = ecg_like(500)
    hea = write_wfdb("mimic", sig, 500)
    raw, fs = load_leads(hea)
    assert fs == 500 and raw.shape == (12, 5000) and raw.dtype == np.float64
    np.testing.assert_allclose(raw, sig.T, atol=0.5e-3 + 1e-12)  # quantised to 1/1000 mV
    x = read_ecg(hea)
    assert x.shape == (12, 1000) and x.dtype == np.float32


@pytest.mark.parametrize("fs", [250, 500, 1000])
def test_sine_keeps_its_frequency_and_amplitude_after_resampling(write_wfdb, fs):
    t = np.arange(10 * fs) / fs
    sig = np.stack([np.sin(2 * np.pi * 7.0 * t) + 0.1 * i for i in range(12)], axis=1)
    x = read_ecg(write_wfdb(f"sine{fs}", sig, fs), config=ECGPreprocessConfig(normalize="none"))
    assert x.shape == (12, 1000)
    spectrum = np.abs(np.fft.rfft(x[3]))
    assert np.fft.rfftfreq(1000, d=1 / 100)[spectrum.argmax()] == pytest.approx(7.0)
    np.testing.assert_allclose(x[3, 100:900], np.sin(2 * np.pi * 7.0 * np.arange(100, 900) / 100), atol=0.02)


def test_shuffled_mixed_case_lead_names(write_wfdb, ecg_like):
    sig = ecg_like(500)
    order = [11, 3, 0, 7, 5, 1, 9, 2, 10, 4, 8, 6]
    names = [LEADS[i].upper() if k % 2 else LEADS[i].lower() for k, i in enumerate(order)]  # AVR, i, V8...
    raw, _ = load_leads(write_wfdb("shuffled", sig[:, order], 500, names))
    ref, _ = load_leads(write_wfdb("ordered", sig, 500))
    np.testing.assert_array_equal(raw, ref)


def test_extra_frank_leads_are_dropped(write_wfdb, ecg_like):
    sig = ecg_like(1000, n_leads=15)
    raw, fs = load_leads(write_wfdb("ptb15", sig, 1000, [*LEADS, "vx", "vy", "vz"]))
    assert fs == 1000 and raw.shape == (12, 10000)
    np.testing.assert_allclose(raw, sig[:, :12].T, atol=0.5e-3 + 1e-12)


def test_missing_limb_leads_are_derived_from_I_and_II(write_wfdb, ecg_like):
    sig = ecg_like(500, n_leads=8)
    names = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    raw, _ = load_leads(write_wfdb("eight", sig, 500, names))
    lead_i, lead_ii = raw[0], raw[1]
    np.testing.assert_array_equal(raw[2], lead_ii - lead_i)  # III
    np.testing.assert_array_equal(raw[3], -(lead_i + lead_ii) / 2)  # aVR
    np.testing.assert_array_equal(raw[4], lead_i - lead_ii / 2)  # aVL
    np.testing.assert_array_equal(raw[5], lead_ii - lead_i / 2)  # aVF
    np.testing.assert_allclose(raw[6:], sig[:, 2:].T, atol=0.5e-3 + 1e-12)


@pytest.mark.parametrize("drop, named", [("V3", "V3"), ("I", "I")])
def test_missing_required_lead_is_an_error_naming_it(write_wfdb, drop, named, ecg_like):
    names = [n for n in LEADS if n != drop]
    hea = write_wfdb("missing_" + drop, ecg_like(500, n_leads=11), 500, names)
    with pytest.raises(RecordError, match=rf"missing leads: {named}\b") as err:
        load_leads(hea)
    assert "missing_" + drop in str(err.value)


@pytest.mark.parametrize("unit, factor", [("uV", 1e-3), ("µV", 1e-3), ("V", 1e3), ("MV", 1.0)])
def test_units_are_converted_to_mV(write_wfdb, unit, factor, ecg_like):
    sig_mv = ecg_like(500)
    gain = {"uV": 1.0, "µV": 1.0, "V": 1e6, "MV": 1000.0}[unit]
    raw, _ = load_leads(write_wfdb("units", sig_mv / factor, 500, units=unit, gain=gain))
    np.testing.assert_allclose(raw, sig_mv.T, atol=1e-3)


def test_unknown_unit_is_an_error(write_wfdb, ecg_like):
    with pytest.raises(RecordError, match="unknown unit 'mmHg'") as err:
        load_leads(write_wfdb("pressure", ecg_like(500), 500, units="mmHg"))
    assert "pressure" in str(err.value)


# ---------------------------------------------------------------------------------------------
# Broken records
# ---------------------------------------------------------------------------------------------


def test_truncated_dat_is_an_error(write_wfdb, ecg_like):
    hea = write_wfdb("cut", ecg_like(500), 500)
    dat = hea.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[: 48_000])  # 2000 of 5000 frames, on a frame boundary
    with pytest.raises(RecordError, match="truncated") as err:
        read_ecg(hea)
    assert "cut" in str(err.value)


def test_garbage_header_is_an_error(tmp_path):
    hea = tmp_path / "garbage.hea"
    hea.write_text("this is not\na WFDB header\n")
    with pytest.raises(RecordError, match="header does not parse") as err:
        read_ecg(hea)
    assert "garbage.hea" in str(err.value)


def test_missing_files_are_errors(tmp_path, write_wfdb, ecg_like):
    with pytest.raises(RecordError, match="not found") as err:
        read_ecg(tmp_path / "nowhere.hea")
    assert "nowhere" in str(err.value)
    hea = write_wfdb("nodat", ecg_like(500), 500)
    hea.with_suffix(".dat").unlink()
    with pytest.raises(RecordError, match="nodat.dat not found"):
        read_ecg(hea)


def test_flat_record_is_an_error(write_wfdb):
    with pytest.raises(RecordError, match="all leads are flat") as err:
        read_ecg(write_wfdb("flat", np.full((5000, 12), 0.25), 500))
    assert "flat" in str(err.value).split(":")[0]


# ---------------------------------------------------------------------------------------------
# Preprocessing, hand-checked on arrays
# ---------------------------------------------------------------------------------------------


def test_nan_interpolated_with_edges_held_or_zeroed():
    x = np.tile(np.arange(5000, dtype=np.float64), (12, 1))
    x[0, 100:110] = np.nan  # interior gap: a ramp, so interpolation restores it exactly
    x[1, :50] = np.nan  # leading gap: first valid value held
    x[2, -50:] = np.nan  # trailing gap: last valid value held
    x[3] = np.nan  # all-NaN lead
    cfg = ECGPreprocessConfig(fs=500, baseline="none", normalize="none")
    out = preprocess_ecg(x, 500, cfg)
    np.testing.assert_array_equal(out[0], np.arange(5000))
    np.testing.assert_array_equal(out[1, :50], 50)
    np.testing.assert_array_equal(out[2, -50:], 4949)
    np.testing.assert_array_equal(out[3], 0)
    zero = preprocess_ecg(x, 500, ECGPreprocessConfig(fs=500, nan_policy="zero", baseline="none", normalize="none"))
    np.testing.assert_array_equal(zero[0, 100:110], 0)
    np.testing.assert_array_equal(zero[0, 99], 99)


def test_nan_samples_in_a_record_give_a_finite_output(write_wfdb, ecg_like):
    sig = ecg_like(500)
    sig[1000:1100, 4] = np.nan
    hea = write_wfdb("gappy", sig, 500)
    raw, _ = load_leads(hea)
    assert np.isnan(raw[4, 1000:1100]).all() and np.isfinite(np.delete(raw, 4, axis=0)).all()
    for policy in ("interpolate", "zero"):
        assert np.isfinite(read_ecg(hea, config=ECGPreprocessConfig(nan_policy=policy))).all()


def test_all_nan_record_is_flat():
    with pytest.raises(RecordError, match="<array>: all leads are flat"):
        preprocess_ecg(np.full((12, 5000), np.nan), 500, ECGPreprocessConfig())


def test_centre_crop_and_end_padding():
    ramp = np.tile(np.arange(6000, dtype=np.float64), (12, 1))  # 12 s at 500 Hz
    cfg = ECGPreprocessConfig(fs=500, seconds=10.0, baseline="none", normalize="none")
    np.testing.assert_array_equal(preprocess_ecg(ramp, 500, cfg)[0], np.arange(500, 5500))
    short = preprocess_ecg(ramp[:, :4000], 500, cfg)  # 8 s: zero-padded at the end
    np.testing.assert_array_equal(short[0, :4000], np.arange(4000))
    np.testing.assert_array_equal(short[:, 4000:], 0)


def test_normalisation_excludes_padding_and_zeroes_flat_leads(ecg_like):
    x = ecg_like(500, seconds=8.0).T.copy()
    x[7] = 3.0  # a flat lead among live ones
    z = preprocess_ecg(x, 500, ECGPreprocessConfig())  # 8 s -> 800 samples + 200 padded
    live = np.delete(np.arange(12), 7)
    np.testing.assert_allclose(z[live, :800].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(z[live, :800].std(axis=1), 1, atol=1e-4)
    np.testing.assert_array_equal(z[:, 800:], 0)
    np.testing.assert_array_equal(z[7], 0)
    m = preprocess_ecg(x, 500, ECGPreprocessConfig(normalize="minmax"))
    np.testing.assert_allclose(m[live, :800].min(axis=1), -1, atol=1e-6)
    np.testing.assert_allclose(m[live, :800].max(axis=1), 1, atol=1e-6)
    np.testing.assert_array_equal(m[7], 0)


@pytest.mark.parametrize("baseline", ["highpass", "median"])
def test_baseline_wander_is_removed(baseline, ecg_like):
    t = np.arange(5000) / 500
    beat = ecg_like(500)[:, 0] - ecg_like(500)[:, 0].mean()
    wander = 1.5 + 0.8 * np.sin(2 * np.pi * 0.1 * t)  # DC offset + 0.1 Hz drift, larger than the beats
    x = np.tile(beat + wander, (12, 1))
    out = preprocess_ecg(x, 500, ECGPreprocessConfig(fs=500, baseline=baseline, normalize="none"))[0]
    assert abs(out.mean()) < 0.05
    err = np.abs(out[500:-500] - (beat[500:-500] - np.median(beat)))  # away from the edges
    assert np.median(err) < 0.05 and np.abs(out).max() < np.abs(beat).max() + 0.3


def test_read_ecg_config_overrides_fs_and_seconds(write_wfdb, ecg_like):
    hea = write_wfdb("cfg", ecg_like(500), 500)
    assert read_ecg(hea, fs=250, seconds=4).shape == (12, 1000)
    assert read_ecg(hea, fs=250, config=ECGPreprocessConfig(fs=50, seconds=5)).shape == (12, 250)


def test_bad_config_and_bad_shape_are_errors():
    with pytest.raises(ConfigError, match="ecg.baseline"):
        preprocess_ecg(np.ones((12, 100)), 500, ECGPreprocessConfig(baseline="wavelet"))
    with pytest.raises(RecordError, match=r"expected a \[12, n\] signal"):
        preprocess_ecg(np.ones((8, 100)), 500, ECGPreprocessConfig())


# ---------------------------------------------------------------------------------------------
# R peaks
# ---------------------------------------------------------------------------------------------


def test_rpeaks_of_a_known_spike_train(ecg_like):
    x = preprocess_ecg(ecg_like(500).T, 500, ECGPreprocessConfig())  # beats at 0.3 + k / 1.2 s
    peaks = detect_rpeaks(x, 100)
    truth = np.round((0.3 + np.arange(12) / 1.2) * 100)
    assert len(peaks) == len(truth)
    assert np.abs(peaks - truth).max() <= 3  # within 30 ms


def test_rpeaks_never_raise():
    assert detect_rpeaks(np.zeros((12, 1000)), 100).size == 0
    assert detect_rpeaks(np.full((12, 1000), np.nan), 100).size == 0
    assert detect_rpeaks(np.ones((12, 10)), 100).size == 0
