"""The WVS loader: every accepted format gives the same respondents; bad input gives a clear error."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from subgroup_values.survey.wvs import MISSING_CODES, WVSFileError, read_wvs

KEY = ["A_WAVE", "B_COUNTRY", "W_WEIGHT", "Q260", "X003R", "Q290", "Q289", "Q1", "Q46", "Q164", "Q222"]
ITEMS = ["Q1", "Q46", "Q164", "Q222"]


def small(frame: pd.DataFrame, n: int = 120) -> pd.DataFrame:
    cols = ["version", "B_COUNTRY_ALPHA", "D_INTERVIEW"] + KEY
    return frame[cols].head(n).copy()


def test_reads_real_file_and_codes_missing(survey):
    assert survey.n_respondents == 2012
    assert survey.country == "SGP"
    assert survey.version.startswith("6-0-0")
    assert len(survey.sha256) == 64
    # missing answers are NA in the data and keep their reason in `missing`
    q = survey.data["Q1"]
    assert q.isna().sum() == (survey.missing["Q1"] < 0).sum() == 2
    assert set(survey.missing["Q1"].unique()) <= {0, *MISSING_CODES}
    assert q.dropna().between(1, 4).all()
    assert survey.data["W_WEIGHT"].between(0.6, 2.7).all()


@pytest.mark.parametrize("fmt", ["semicolon_csv", "sav", "dta", "zip"])
def test_every_format_gives_the_same_respondents(tmp_path, survey_frame, fmt):
    df = small(survey_frame)
    ref_path = tmp_path / "ref.csv"
    df.to_csv(ref_path, index=False)
    if fmt == "semicolon_csv":
        path = tmp_path / "WVS_SGP.csv"
        lines = df.to_csv(index=False, sep=";").splitlines()
        path.write_text("".join(line + ";\n" for line in lines))  # trailing ';' as in the official file
    elif fmt == "sav":
        path = tmp_path / "WVS_SGP.sav"
        pyreadstat.write_sav(df, str(path))
    elif fmt == "dta":
        path = tmp_path / "WVS_SGP.dta"
        pyreadstat.write_dta(df, str(path))
    else:
        path = tmp_path / "WVS_SGP.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.write(ref_path, "WVS_Cross-National_Wave_7_csv_v6_0.csv")
    ref = read_wvs(ref_path, items=ITEMS)
    got = read_wvs(path, items=ITEMS)
    assert got.n_respondents == ref.n_respondents == 120
    for col in KEY:
        np.testing.assert_allclose(got.data[col].to_numpy(float), ref.data[col].to_numpy(float), equal_nan=True)
    assert (got.missing[ITEMS].to_numpy() == ref.missing[ITEMS].to_numpy()).all()


def test_country_by_number(tmp_path, survey_frame):
    df = small(survey_frame).drop(columns=["B_COUNTRY_ALPHA"])
    path = tmp_path / "f.csv"
    df.to_csv(path, index=False)
    assert read_wvs(path, country=702, items=ITEMS).n_respondents == 120
    with pytest.raises(WVSFileError, match="ISO number"):
        read_wvs(path, country="SGP", items=ITEMS)


def write(tmp_path, df, name="f.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def test_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(WVSFileError, match="not found.*worldvaluessurvey.org"):
        read_wvs(tmp_path / "nope.csv")
    with pytest.raises(WVSFileError, match="No survey file given"):
        read_wvs(None)


def test_wrong_format(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK\x03\x04junk")
    with pytest.raises(WVSFileError, match="unknown file type '.xlsx'"):
        read_wvs(path)
    rds = tmp_path / "data.rds"
    rds.write_bytes(b"X\n")
    with pytest.raises(WVSFileError, match="R .rds files are not read"):
        read_wvs(rds)
    text = tmp_path / "notes.csv"
    text.write_text("hello world\nthis is not a survey\n")
    with pytest.raises(WVSFileError, match="does not look like a WVS CSV"):
        read_wvs(text)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(WVSFileError, match="is empty"):
        read_wvs(empty)


def test_wrong_wave(tmp_path, survey_frame):
    df = small(survey_frame).assign(A_WAVE=6)
    with pytest.raises(WVSFileError, match=r"wave\(s\) \[6\], expected Wave 7"):
        read_wvs(write(tmp_path, df), items=ITEMS)


def test_country_absent_lists_what_is_there(tmp_path, survey_frame):
    with pytest.raises(WVSFileError, match="Country 'DEU' is not in .* it holds: SGP"):
        read_wvs(write(tmp_path, small(survey_frame)), country="DEU", items=ITEMS)


def test_missing_columns_are_named(tmp_path, survey_frame):
    df = small(survey_frame).drop(columns=["Q290", "W_WEIGHT"])
    with pytest.raises(WVSFileError, match=r"lacks required columns \['W_WEIGHT', 'Q290'\]"):
        read_wvs(write(tmp_path, df), items=ITEMS)
    with pytest.raises(WVSFileError, match=r"lacks 1 value item.*Q999"):
        read_wvs(write(tmp_path, small(survey_frame)), items=ITEMS + ["Q999"])


def test_truncated_csv(tmp_path, wvs_file):
    raw = wvs_file.read_bytes()
    path = tmp_path / "WVS_cut.csv"
    path.write_bytes(raw[: len(raw) // 2])  # cut mid-row, as an interrupted download would
    with pytest.raises(WVSFileError, match="looks truncated: its last row has"):
        read_wvs(path, items=ITEMS)


def test_truncated_sav(tmp_path, survey_frame):
    path = tmp_path / "f.sav"
    pyreadstat.write_sav(small(survey_frame), str(path))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(WVSFileError, match="could not be read as SPSS"):
        read_wvs(path, items=ITEMS)


def test_bad_zip(tmp_path):
    path = tmp_path / "f.zip"
    path.write_bytes(b"PK\x03\x04 this is not a whole archive")
    with pytest.raises(WVSFileError, match="not a valid zip"):
        read_wvs(path)
