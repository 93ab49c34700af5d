"""Sources: every input format to the standard frame, built-in ml-100k, bad-input messages."""

from __future__ import annotations

import gzip
import hashlib
import zipfile
from pathlib import Path

import polars as pl
import pytest

from recsys.data import builtin
from recsys.data.config import Columns, SourceConfig
from recsys.data.lightgcn_lists import read_lists
from recsys.data.sources import locate_file, read_file
from recsys.errors import DataError


def real_ml100k() -> Path:
    """The installed recbole ml-100k folder (skips where recbole is not installed)."""
    folder = builtin._installed_ml100k()
    if folder is None:
        pytest.skip("recbole is not installed (ml-100k ships in its wheel; no network here)")
    return folder


def src(**kw: object) -> SourceConfig:
    return SourceConfig.model_validate(kw)


def test_atomic_with_types_and_directory(tmp_path: Path) -> None:
    d = tmp_path / "toy"
    d.mkdir()
    (d / "toy.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t4\t100\n2\t11\t\t101\n"
    )
    path = locate_file(d, "atomic", "other-name")
    df = read_file(path, src(format="atomic"))
    assert df["user_id"].to_list() == ["1", "2"] and df["item_id"].dtype == pl.String
    assert df["rating"].to_list() == [4.0, None]  # empty field → null
    assert df["timestamp"].to_list() == [100.0, 101.0]
    assert df["_line"].to_list() == [2, 3]


def test_atomic_mmrec_header_with_split_column(tmp_path: Path) -> None:
    p = tmp_path / "baby.inter"
    p.write_text(
        "userID\titemID\trating\ttimestamp\tx_label\nA1\tB00X\t5\t1\t0\nA2\tB00Y\t4\t2\t2\n"
    )
    cols = Columns(user="userID", item="itemID")
    df = read_file(p, src(format="atomic", columns=cols), split_column="x_label")
    assert df["user_id"].to_list() == ["A1", "A2"] and df["split"].to_list() == [0, 2]


def test_movielens_udata_and_dat(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    df = read_file(locate_file(tmp_path, "movielens", "x"), src(format="movielens"))
    assert df.select("user_id", "item_id").rows() == [("196", "242"), ("186", "302")]
    dat = tmp_path / "ratings.dat"
    dat.write_text("1::1193::5::978300760\n1::661::3::978302109\n")
    df = read_file(dat, src(format="movielens"))
    assert df["item_id"].to_list() == ["1193", "661"] and df["rating"].to_list() == [5.0, 3.0]


def test_csv_with_string_ids_and_mapping(tmp_path: Path) -> None:
    p = tmp_path / "amazon.csv"
    p.write_text('reviewer,asin,overall,unixReviewTime\nA2SUAM1J3GNN3B,0000013714,5.0,1\n'
                 '"A 1",B00004T1XE,4,2\n')  # fmt: skip
    cols = Columns(user="reviewer", item="asin", rating="overall", timestamp="unixReviewTime")
    df = read_file(p, src(format="csv", columns=cols))
    assert df["item_id"].to_list() == ["0000013714", "B00004T1XE"]  # leading zeros kept
    assert df["user_id"].to_list() == ["A2SUAM1J3GNN3B", "A 1"]


def test_csv_with_byte_order_mark(tmp_path: Path) -> None:
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbfuser_id,item_id\nu,i\n")
    assert read_file(p, src(format="csv"))["user_id"].to_list() == ["u"]


def test_tsv_without_header_and_gz(tmp_path: Path) -> None:
    p = tmp_path / "x.tsv.gz"
    p.write_bytes(gzip.compress(b"u1\ti1\t1.5\nu2\ti2\t2.5\n"))
    cfg = src(format="tsv", has_header=False, columns=Columns(timestamp=None))
    df = read_file(p, cfg)
    assert df["rating"].to_list() == [1.5, 2.5] and df["timestamp"].null_count() == 2


def test_parquet_with_int_ids(tmp_path: Path) -> None:
    p = tmp_path / "x.parquet"
    pl.DataFrame({"u": [1, 2], "i": [7, 8], "ts": [10, 20]}).write_parquet(p)
    cols = Columns(user="u", item="i", rating=None, timestamp="ts")
    df = read_file(p, src(format="parquet", columns=cols))
    assert df["user_id"].to_list() == ["1", "2"] and df["timestamp"].to_list() == [10.0, 20.0]


def test_lightgcn_lists(tmp_path: Path) -> None:
    p = tmp_path / "train.txt"
    p.write_text("0 1 2\n1\n2  3\t4 \n")
    df = read_lists(p, 0)
    assert df.select("user_id", "item_id").rows() == [
        ("0", "1"),
        ("0", "2"),
        ("2", "3"),
        ("2", "4"),
    ]
    assert df["split"].to_list() == [0] * 4 and df["_line"].to_list() == [1, 1, 3, 3]


H = "user_id,item_id,rating,timestamp\n"
BAD = {
    "misnamed column": (
        "user,item_id,rating,timestamp\n1,2,3,4\n",
        r"column 'user_id' \(source\.columns\.user\) not found; "
        r"available: user, item_id, rating, timestamp",
    ),
    "malformed line": ("user_id,item_id,rating,timestamp\n1,2,3,4\n1,2,3\n",
                       r"line 3: expected 4 fields separated by ',', found 3"),
    "too many fields": (H + "1,2,3,4\n1,2,3,4,5\n", r"line 3: .*found 5"),
    "nan rating": ("user_id,item_id,rating,timestamp\n1,2,3,4\n1,3,NaN,5\n",
                   r"line 3: rating 'NaN' is not a finite number \(column 'rating'\)"),
    "text rating": ("user_id,item_id,rating,timestamp\n1,2,x,4\n", r"line 2: rating 'x'"),
    "nan timestamp": ("user_id,item_id,rating,timestamp\n1,2,3,4\n\n1,3,4,nan\n",
                      r"line 4: timestamp 'nan' is not a finite number"),
    "empty user": ("user_id,item_id,rating,timestamp\n,2,3,4\n", r"line 2: empty user_id"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_csv_names_file_and_line(tmp_path: Path, case: str) -> None:
    content, pattern = BAD[case]
    p = tmp_path / "in.csv"
    p.write_text(content)
    with pytest.raises(DataError, match=r"in\.csv: " + pattern):
        read_file(p, src(format="csv"))


def test_explicit_optional_column_is_required(tmp_path: Path) -> None:
    p = tmp_path / "in.csv"
    p.write_text("user_id,item_id\n1,2\n")
    assert read_file(p, src(format="csv"))["rating"].null_count() == 1  # default: optional
    with pytest.raises(DataError, match=r"column 'stars' .source.columns.rating. not found"):
        read_file(p, src(format="csv", columns=Columns(rating="stars")))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        read_file(tmp_path / "nope.csv", src(format="csv"))


def test_lightgcn_non_integer_id(tmp_path: Path) -> None:
    p = tmp_path / "train.txt.gz"
    p.write_bytes(gzip.compress(b"0 1 2\n1 2 x3\n"))
    with pytest.raises(DataError, match=r"train\.txt\.gz: line 2: 'x3' is not a non-negative"):
        read_lists(p, 0)


def test_bad_split_label(tmp_path: Path) -> None:
    p = tmp_path / "a.inter"
    p.write_text("user_id\titem_id\tx_label\n1\t2\t0\n1\t3\t7\n")
    with pytest.raises(DataError, match=r"a\.inter: line 3: split label '7'"):
        read_file(p, src(format="atomic"), split_column="x_label")


def test_builtin_ml100k_installed() -> None:
    real_ml100k()
    files = builtin.ml100k_files(Path("/nonexistent-cache"))
    assert files.inter.name == "ml-100k.inter"
    assert files.kg is not None and files.link is not None and files.item is not None
    df = read_file(files.inter, src(format="atomic"))
    assert df.height == 100_000
    assert df["user_id"].n_unique() == 943 and df["item_id"].n_unique() == 1682


def fake_wheel(dest: Path, real: Path) -> Path:
    """A wheel-shaped zip with the installed ml-100k files."""
    wheel = dest / f"recbole-{builtin.RECBOLE_VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for s in builtin.ML100K_SUFFIXES:
            zf.write(real / f"ml-100k.{s}", f"{builtin.RECBOLE_ML100K_DIR}/ml-100k.{s}")
    return wheel


def test_builtin_ml100k_from_wheel_when_recbole_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    real = real_ml100k()

    def download(dest: Path) -> Path:
        calls.append(dest)
        return fake_wheel(dest, real)

    monkeypatch.setattr(builtin, "_installed_ml100k", lambda: None)
    monkeypatch.setattr(builtin, "download_recbole_wheel", download)
    files = builtin.ml100k_files(tmp_path)
    assert files.inter.parent == tmp_path / "builtin" / "recbole-1.2.1" / "ml-100k"
    assert files.kg is not None and files.kg.is_file()
    builtin.ml100k_files(tmp_path)
    assert len(calls) == 1  # extracted once, then reused


def grouplens_zip(tmp_path: Path) -> Path:
    body = (real_ml100k() / "ml-100k.inter").read_bytes().split(b"\n", 1)[1]  # u.data has no header
    z = tmp_path / "served" / "ml-100k.zip"
    z.parent.mkdir()
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ml-100k/u.data", body)
        zf.writestr("ml-100k/README", "toy")
    return z


def test_grouplens_download_checked_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    z = grouplens_zip(tmp_path)
    monkeypatch.setattr(builtin, "GROUPLENS_ML100K_URL", z.as_uri())
    digest = hashlib.sha256(z.read_bytes()).hexdigest()
    monkeypatch.setattr(builtin, "GROUPLENS_ML100K_CHECKSUM", ("sha256", digest))
    cache = tmp_path / "cache"
    path = builtin.resolve_remote("grouplens:ml-100k", cache)
    assert path == cache / "downloads" / "ml-100k" / "u.data"
    df = read_file(path, src(format="movielens"))
    assert (df.height, df["user_id"].n_unique(), df["item_id"].n_unique()) == (100_000, 943, 1682)
    z.unlink()  # cached: no second download
    assert builtin.resolve_remote("grouplens:ml-100k", cache) == path


def test_grouplens_checksum_mismatch_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    z = grouplens_zip(tmp_path)
    monkeypatch.setattr(builtin, "GROUPLENS_ML100K_URL", z.as_uri())
    monkeypatch.setattr(builtin, "GROUPLENS_ML100K_CHECKSUM", ("sha256", "0" * 64))
    with pytest.raises(DataError, match="does not match the pinned"):
        builtin.resolve_remote("grouplens:ml-100k", tmp_path / "cache")
    assert not (tmp_path / "cache" / "downloads" / "ml-100k").exists()


def test_unknown_builtin() -> None:
    with pytest.raises(DataError, match="valid: builtin:ml-100k"):
        builtin.resolve_remote("builtin:ml-1m", Path("."))
