"""Bad search input is refused with a clear message before Ray starts or any trial runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xmodal.errors import SearchError
from xmodal.search import cli
from xmodal.search.run import validate_pathologies


def _manifest(**labels) -> pd.DataFrame:
    split = ["train"] * 6 + ["val"] * 4 + ["test"] * 2
    return pd.DataFrame({"split": split, **{k: np.asarray(v, float) for k, v in labels.items()}})


GOOD = [0, 1, 0, 1, 0, 1, 0, 1, 1, 0, 1, 0]


def test_valid_pathologies_pass():
    validate_pathologies(["cardiomegaly", "edema"], _manifest(cardiomegaly=GOOD, edema=GOOD), "m.parquet")


def test_unknown_pathology_names_it_and_the_labels():
    with pytest.raises(SearchError, match=r"unknown pathology 'cardiomegally'.*m\.parquet has labels cardiomegaly"):
        validate_pathologies(["cardiomegally"], _manifest(cardiomegaly=GOOD), "m.parquet")


def test_single_class_in_validation_is_refused():
    one_class_val = GOOD[:6] + [1, 1, 1, 1] + GOOD[10:]
    with pytest.raises(SearchError, match=r"'edema' has a single class \(1\) in the val split"):
        validate_pathologies(["edema"], _manifest(edema=one_class_val), "m.parquet")


def test_split_without_known_labels_is_refused():
    unknown_train = [np.nan] * 6 + GOOD[6:]
    with pytest.raises(SearchError, match="the train split has no rows with a known 'edema' label"):
        validate_pathologies(["edema"], _manifest(edema=unknown_train), "m.parquet")


def test_empty_split_is_refused():
    df = _manifest(edema=GOOD)
    df = df[df["split"] != "val"]
    with pytest.raises(SearchError, match="the val split has no rows"):
        validate_pathologies(["edema"], df, "m.parquet")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from xmodal.data.synthetic import ensure_demo_cohort

    return ensure_demo_cohort(tmp_path_factory.mktemp("c") / "cxr", subjects=24, seed=1, kind="cxr",
                              cxr_shape=(64, 64), workers=1, verbose=False)


@pytest.mark.parametrize("argv, message", [
    (["--pathologies", "nope"], "unknown pathology 'nope'"),
    (["--space", "{space}"], "unknown search-space key(s) gamma"),
    (["--set", "align.nope=1"], "align.nope"),
])
def test_cli_refuses_bad_input_with_one_line_before_ray_starts(cohort, tmp_path, capsys, monkeypatch, argv, message):
    space = tmp_path / "space.yaml"
    space.write_text("gamma: [0, 1]\n")
    argv = [a.replace("{space}", str(space)) for a in argv]
    monkeypatch.setattr("xmodal.runtime.ensure_ray", lambda *a, **k: pytest.fail("Ray started on bad input"))
    code = cli.main(["--data", str(cohort), "--storage", str(tmp_path / "cache"), "--reports", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert err.startswith("error: ") and "Traceback" not in err
