"""Alignment and uniformity on the hypersphere: DirectAU and CM3's calibrated uniformity.

DirectAU (Wang et al., KDD 2022) trains on normalised user and item vectors ``û``, ``î`` with

* alignment ``L_align = mean_b ||û_b - î⁺_b||²`` (positive pairs close; α = 2), and
* uniformity ``L_unif(X) = log mean_{a<b} exp(-t ||x_a - x_b||²)`` over the batch's users and
  items (spread over the sphere; t = 2),

``L = L_align + γ (L_unif(U) + L_unif(I)) / 2``. CM3 keeps the alignment and the user
uniformity and calibrates the item uniformity with the items' multimodal similarity ``s_ab``:
``L_cunif(I) = log mean_{a<b} exp(-t (||x_a - x_b||² - 2 + 2 s_ab))``. For unit vectors each
pair's term is ``exp(-t ||x_a - x_b||²) · exp(2t (1 - s_ab))``: dissimilar items (small ``s``)
are pushed apart harder, and ``s ≡ 1`` gives back plain uniformity.

The pure functions below act on the vectors as given; the loss classes normalise first. Pairs
``a < b`` follow ``torch.pdist``'s order (``torch.triu_indices(B, B, 1)``) and include repeated
rows (a user drawn twice in a batch is a pair at distance 0), as in both reference codes.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from recsys.config import StrictModel
from recsys.errors import ConfigError, RecsysError
from recsys.types import Batch, ModelOutput

if TYPE_CHECKING:
    from recsys.spec import DataSpec

ItemSide = Literal["pos", "neg"]


def _pairs(n: int, device: torch.device) -> tuple[Tensor, Tensor]:
    iu = torch.triu_indices(n, n, offset=1, device=device)
    return iu[0], iu[1]


@functools.lru_cache(maxsize=16)
def _upper(n: int, device: torch.device) -> Tensor:
    """``(n, n)`` bool mask of the pairs ``a < b``."""
    return torch.ones(n, n, dtype=torch.bool, device=device).triu(1)


def _sq_dist_matrix(x: Tensor) -> Tensor:
    """``(B, B)`` squared distances ``||x_a||² + ||x_b||² - 2 x_a·x_b`` clamped at 0.

    The Gram form has finite gradients when points coincide (``pdist``'s square root does
    not); only the upper triangle is used.
    """
    sq = x.square().sum(dim=1)
    return (sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * (x @ x.T)).clamp(min=0.0)


def _to_matrix(pairs: Tensor, n: int) -> Tensor:
    """``(P,)`` values in ``torch.pdist`` order as the upper triangle of an ``(n, n)`` matrix."""
    a, b = _pairs(n, pairs.device)
    return pairs.new_zeros(n, n).index_put((a, b), pairs)


def _log_mean_exp_upper(logits: Tensor) -> Tensor:
    """``log mean_{a<b} exp(logits[a, b])`` over the upper triangle of ``(B, B)`` logits.

    Masking the full matrix (instead of gathering the ``P`` pairs) keeps forward and backward
    to dense element-wise work. 0 (kept in the graph) when there is no pair.
    """
    n = logits.shape[0]
    pairs = n * (n - 1) // 2
    if pairs == 0:
        return logits.sum() * 0.0
    masked = logits.masked_fill(~_upper(n, logits.device), float("-inf"))
    return torch.logsumexp(masked.flatten(), dim=0) - math.log(pairs)


def pair_sq_distances(x: Tensor) -> Tensor:
    """Squared Euclidean distances ``||x_a - x_b||²`` of all pairs ``a < b``.

    Computed as ``||x_a||² + ||x_b||² - 2 x_a·x_b`` clamped at 0, which has finite gradients
    when points coincide (``pdist``'s square root does not).

    Args:
        x: ``(B, d)``.

    Returns:
        ``(P,)`` with ``P = B (B - 1) / 2``, in ``torch.pdist`` order.
    """
    a, b = _pairs(x.shape[0], x.device)
    return _sq_dist_matrix(x)[a, b]


def alignment(u: Tensor, i: Tensor) -> Tensor:
    """``mean_b ||u_b - i_b||²`` (DirectAU's alignment with α = 2).

    Args:
        u, i: ``(B, d)`` matched rows (user ``b`` and its positive item).
    """
    return (u - i).square().sum(dim=1).mean()


def uniformity(x: Tensor, t: float = 2.0) -> Tensor:
    """``log mean_{a<b} exp(-t ||x_a - x_b||²)``, computed stably with ``logsumexp``.

    Over all pairs of rows, repeated rows included. With fewer than two rows there is no pair
    and the result is 0.

    Args:
        x: ``(B, d)`` (normally unit rows).
        t: temperature (> 0).
    """
    return _log_mean_exp_upper(-t * _sq_dist_matrix(x))


def pair_similarity_matrix(c: Tensor, min_sim: float, max_sim: float) -> Tensor:
    """``(B, B)`` clamped cosines of the content vectors (see :func:`pair_similarity`)."""
    if min_sim > max_sim:
        raise ValueError(f"pair_similarity: min_sim {min_sim} > max_sim {max_sim}")
    cn = F.normalize(c, dim=1)
    return (cn @ cn.T).clamp(min_sim, max_sim)


def pair_similarity(c: Tensor, min_sim: float, max_sim: float) -> Tensor:
    """Cosine similarity of the content vectors of every pair ``a < b``, clamped.

    ``s_ab = clamp(cos(c_a, c_b), min_sim, max_sim)``; an all-zero row has cosine 0 with
    everyone. Gradients flow into ``c`` (CM3 does not stop them) except where the clamp is
    active, where they are 0.

    Args:
        c: ``(B, c_dim)`` content vectors.
        min_sim, max_sim: the clamp range (``min_sim <= max_sim``).

    Returns:
        ``(P,)`` in ``torch.pdist`` order.

    Raises:
        ValueError: ``min_sim > max_sim``.
    """
    a, b = _pairs(c.shape[0], c.device)
    return pair_similarity_matrix(c, min_sim, max_sim)[a, b]


def calibrated_uniformity(x: Tensor, sim: Tensor, t: float = 2.0) -> Tensor:
    """CM3's ``log mean_{a<b} exp(-t (||x_a - x_b||² - 2 + 2 s_ab))``.

    With every ``s_ab = 1`` it equals :func:`uniformity`; with every ``s_ab = c`` it exceeds it
    by exactly ``2t (1 - c)``; in general ``L_unif + 2t (1 - max s) <= L_cunif <= L_unif +
    2t (1 - min s)``.

    Args:
        x: ``(B, d)`` (normally unit rows).
        sim: pair similarities, ``(P,)`` in ``torch.pdist`` order (see
            :func:`pair_similarity`) or a ``(B, B)`` matrix whose upper triangle is used (see
            :func:`pair_similarity_matrix`).
        t: temperature (> 0).

    Raises:
        ValueError: ``sim`` has neither shape.
    """
    n = x.shape[0]
    p = n * (n - 1) // 2
    if sim.dim() == 1 and sim.shape[0] == p:
        sim = _to_matrix(sim, n)
    elif tuple(sim.shape) != (n, n):
        raise ValueError(
            f"calibrated_uniformity: sim must have shape ({p},) or ({n}, {n}) for {n} rows, "
            f"got {tuple(sim.shape)}"
        )
    return _log_mean_exp_upper(-t * (_sq_dist_matrix(x) - 2.0 + 2.0 * sim))


def _vectors(out: ModelOutput, loss: str, keys: tuple[str, ...]) -> list[Tensor]:
    missing = [k for k in keys if k not in out.extra]
    if missing:
        raise RecsysError(
            f"loss {loss!r} needs the model to put {', '.join(repr(k) for k in keys)} in "
            f"ModelOutput.extra (the vectors whose dot product is the score); missing: "
            f"{', '.join(missing)}"
        )
    return [out.extra[k] for k in keys]


def _item_vectors(out: ModelOutput, items: ItemSide, loss: str) -> tuple[Tensor, Tensor, Tensor]:
    """Normalised ``(users, positives, items of the uniformity term)``."""
    keys = ("user", "pos") if items == "pos" else ("user", "pos", "neg")
    vecs = _vectors(out, loss, keys)
    user = F.normalize(vecs[0], dim=-1)
    pos = F.normalize(vecs[1], dim=-1)
    side = pos if items == "pos" else F.normalize(vecs[2][:, 0], dim=-1)
    return user, pos, side


class AlignUniformConfig(StrictModel):
    """DirectAU settings."""

    gamma: float = Field(default=1.0, ge=0.0)
    """Weight ``γ`` of the uniformity terms."""
    t: float = Field(default=2.0, gt=0.0)
    """Uniformity temperature."""
    items: ItemSide = "pos"
    """Items of the item uniformity: the positives, or each row's first negative."""


class AlignUniform:
    """DirectAU: ``{"align": L_align(û, î⁺), "uniform": γ (L_unif(Û) + L_unif(Î)) / 2}``.

    ``û = normalize(out.extra["user"])``, ``î⁺ = normalize(out.extra["pos"])``; ``Î`` is
    ``î⁺`` (``items = "pos"``) or the normalised first negatives ``out.extra["neg"][:, 0]``
    (``items = "neg"``). Uniformities run over all batch pairs, duplicates included. The
    negative scores are not used otherwise (DirectAU samples no negatives).
    """

    Config = AlignUniformConfig

    def __init__(self, cfg: AlignUniformConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else AlignUniformConfig()

    def __call__(self, batch: Batch, out: ModelOutput) -> dict[str, Tensor]:
        """Loss terms of a batch: ``{"align": scalar, "uniform": scalar}``."""
        user, pos, side = _item_vectors(out, self.cfg.items, "align_uniform")
        t = self.cfg.t
        return {
            "align": alignment(user, pos),
            "uniform": self.cfg.gamma * (uniformity(user, t) + uniformity(side, t)) / 2.0,
        }


class CalibratedUniformityConfig(StrictModel):
    """CM3 loss settings (defaults of the official code)."""

    gamma: float = Field(default=0.5, ge=0.0)
    """Weight ``γ`` of the uniformity terms (CM3's grid: 0.5, 0.9)."""
    t: float = Field(default=2.0, gt=0.0)
    """Uniformity temperature."""
    min_sim: float = Field(default=0.0, ge=-1.0, le=1.0)
    """Lower clamp of the pair similarity ``s_ab``."""
    max_sim: float = Field(default=1.0, ge=-1.0, le=1.0)
    """Upper clamp of ``s_ab`` (CM3's grid: 0.8, 1.0)."""
    items: ItemSide = "neg"
    """Items of the calibrated uniformity: each row's first negative (CM3) or the positive."""
    align: bool = True
    """Include the alignment term."""
    content: Literal["model", "features"] = "model"
    """Where ``s_ab`` comes from: the model's content vectors (``ModelOutput.extra``
    ``neg_content`` / ``pos_content``, CM3's fused modality vector, with gradient) or the
    dataset's fixed item features (see :meth:`CalibratedUniformity.bind`)."""

    @model_validator(mode="after")
    def _check_range(self) -> CalibratedUniformityConfig:
        if self.min_sim > self.max_sim:
            raise ValueError(f"min_sim ({self.min_sim}) must be <= max_sim ({self.max_sim})")
        return self


class CalibratedUniformity:
    """CM3: ``{"align": L_align(û, î⁺), "uniform": γ (L_unif(Û) + L_cunif(Î, s)) / 2}``.

    ``û``, ``î⁺`` and ``Î`` as in :class:`AlignUniform` (here ``items = "neg"`` by default:
    CM3 calibrates the uniformity of the batch's negatives). ``s = pair_similarity(c, min_sim,
    max_sim)`` over the content vectors ``c`` of the items of ``Î``:

    * ``content = "model"``: ``out.extra["neg_content"][:, 0]`` (or ``"pos_content"``), the
      model's own vectors, gradients not stopped (models providing them: ``cm3``);
    * ``content = "features"``: a fixed matrix built by :meth:`bind` from the dataset's item
      features, indexed with the batch's item indices.

    ``align = False`` drops the alignment term.
    """

    Config = CalibratedUniformityConfig

    def __init__(self, cfg: CalibratedUniformityConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else CalibratedUniformityConfig()
        self.content: Tensor | None = None
        """``(n_items, c)`` fixed content matrix (``content = "features"``, after bind)."""
        self._on_device: dict[torch.device, Tensor] = {}

    def bind(self, spec: DataSpec) -> None:
        """Build the fixed content matrix from ``spec.features`` (``content = "features"``).

        ``content_i = [x̂_i^1 ‖ … ‖ x̂_i^M] / sqrt(M)`` over the ``M`` modalities in the order of
        ``spec.features``, with ``x̂_i^m`` the L2-normalised row (zeros where the item misses
        the modality, whatever its policy). When both items have every modality the rows have
        unit norm and ``cos(content_a, content_b)`` is the mean per-modality cosine. When some
        are missing the cosine renormalises: ``Σ_{m present in both} cos_m(a, b) /
        sqrt(p_a p_b)`` with ``p`` the number of present modalities; an item with none has
        ``s = 0`` with everyone (then clamped).

        Does nothing with ``content = "model"``.

        Raises:
            ConfigError: ``spec`` has no item features.
        """
        if self.cfg.content != "features":
            return
        features = getattr(spec, "features", None) or {}
        if not features:
            raise ConfigError(
                "calibrated_uniformity content = 'features' needs item features in the data config"
            )
        m = len(features)
        blocks = []
        for f in features.values():
            block = F.normalize(f.values.to("cpu", torch.float32), dim=1)
            block[f.missing.to("cpu", torch.bool)] = 0.0
            blocks.append(block)
        self.content = torch.cat(blocks, dim=1) / math.sqrt(m)
        self._on_device = {}

    def _content(self, batch: Batch, out: ModelOutput) -> Tensor:
        items = self.cfg.items
        if self.cfg.content == "model":
            key = f"{items}_content"
            if key not in out.extra:
                raise RecsysError(
                    f"loss 'calibrated_uniformity' with content = 'model' needs the model to put "
                    f"{key!r} in ModelOutput.extra (models that do: cm3); set content = "
                    f"'features' to use the dataset's item features instead"
                )
            c = out.extra[key]
            return c[:, 0] if items == "neg" else c
        if self.content is None:
            raise RecsysError(
                "loss 'calibrated_uniformity' with content = 'features': call bind(spec) "
                "before training"
            )
        device = out.pos_scores.device
        if device not in self._on_device:
            self._on_device[device] = self.content.to(device)
        idx = batch.neg_items[:, 0] if items == "neg" else batch.pos_items
        return self._on_device[device][idx.to(device)]

    def __call__(self, batch: Batch, out: ModelOutput) -> dict[str, Tensor]:
        """Loss terms of a batch: ``{"align": scalar, "uniform": scalar}`` (align optional)."""
        cfg = self.cfg
        user, pos, side = _item_vectors(out, cfg.items, "calibrated_uniformity")
        sim = pair_similarity_matrix(self._content(batch, out), cfg.min_sim, cfg.max_sim)
        uniform = cfg.gamma * (uniformity(user, cfg.t) + calibrated_uniformity(side, sim, cfg.t))
        terms = {"align": alignment(user, pos)} if cfg.align else {}
        terms["uniform"] = uniform / 2.0
        return terms
