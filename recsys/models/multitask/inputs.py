"""The input layer shared by the multi-task models: every feature becomes a ``d``-dim field.

Fields, in this order (names in :attr:`InputLayer.field_names`):

* ``row:<name>``: the sample's own categorical fields, then its dense columns;
* ``user:<name>``: the user table's fields (``user:user_id`` first when the graph backbone is
  on), categorical then dense;
* ``item:<name>``: the item table's fields likewise, then ``modality:<name>`` per modality;
* ``interest:<behaviour>``: the pooled behaviour sequences (see below).

Encodings (all ``d``-dim):

* categorical field ``f`` with code ``c``: row ``c`` of the field's embedding table (one table
  with per-field offsets); code 0 ("missing or unseen in train") has its own learned row;
* dense column ``f`` with value ``v``: ``v · u_f + c_f`` (learned ``u_f``, bias ``c_f``);
* modality ``m`` of the item: ``P_m f_i`` + bias with ``f_i`` the item's fixed feature vector
  (:class:`~recsys.models.modality.ModalityInputs`; missing rows per the modality's policy).

**Graph backbone** (``graph_layers = L > 0``): the ``user_id`` / ``item_id`` fields come from
LightGCN instead of the id tables: ego embeddings ``E_0`` of all users and items, propagated
``1/(L+1) Σ_l Â^l E_0`` over the train graph ``spec.graph.adj`` (recomputed once per forward
and once per scorer). ``freeze_backbone`` freezes ``E_0`` (and the modality projections);
``backbone_init`` loads ``E_0`` from a finished LightGCN run.

**Item vectors** :meth:`InputLayer.item_vectors`: the item's ``item_id`` field vector (the
graph representation when the backbone is on); used for the target item and for every
history entry (entries are item index + 1, 0 = padding).

**Shared interest extractor** (``interest = True`` and the data has behaviour sequences):
per behaviour ``b``, DIN target attention (:mod:`recsys.models.multitask.attention`) of the
sequence on the target item gives ``r_b``, one more field. One attention MLP serves every
behaviour and every task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from recsys.data.graph import layer_sum
from recsys.data.multitask.tensors import ITEM_FIELD, USER_FIELD, FeatureTable, MultiTaskData
from recsys.errors import ConfigError, DataError
from recsys.models.modality import ModalityInputs
from recsys.models.multitask.attention import TargetAttention
from recsys.spec import DataSpec
from recsys.types import TaskBatch

if TYPE_CHECKING:
    from recsys.models.multitask.base import TaskModelConfig


@dataclass(frozen=True)
class PairInputs:
    """The inputs of ``P`` (sample or user-item pair) rows, before interest pooling.

    Attributes:
        base: ``(P, F_0, d)`` row, user, item and modality fields.
        seq: ``(P, N_b, L, d)`` history item vectors (None without behaviour sequences).
        seq_mask: ``(P, N_b, L)`` bool, True at real positions (None likewise).
        target: ``(P, d)`` the target item's vector (None without items).
    """

    base: Tensor
    seq: Tensor | None = None
    seq_mask: Tensor | None = None
    target: Tensor | None = None


@dataclass(frozen=True)
class GraphContext:
    """LightGCN representations of all users ``(n_users, d)`` and items ``(n_items, d)``."""

    users: Tensor
    items: Tensor


class CategoricalFields(nn.Module):
    """Codes ``(..., F)`` → embeddings ``(..., F, d)`` via one table with per-field offsets."""

    offsets: Tensor

    def __init__(self, cardinalities: Sequence[int], dim: int, init_std: float) -> None:
        super().__init__()
        self.n = len(cardinalities)
        self.dim = dim
        offsets = torch.tensor([0, *cardinalities[:-1]], dtype=torch.int64).cumsum(0)
        self.register_buffer("offsets", offsets[: self.n], persistent=False)
        self.table = nn.Embedding(sum(cardinalities), dim) if self.n else None
        if self.table is not None:
            nn.init.normal_(self.table.weight, std=init_std)

    def forward(self, codes: Tensor) -> Tensor:
        if self.table is None:
            return torch.zeros(*codes.shape, self.dim, device=codes.device)
        out: Tensor = self.table(codes + self.offsets)
        return out

    def field(self, f: int, codes: Tensor) -> Tensor:
        """Embeddings of field ``f``'s ``codes`` (any shape) → ``(*codes.shape, d)``."""
        assert self.table is not None
        out: Tensor = self.table(codes + self.offsets[f])
        return out


class DenseFields(nn.Module):
    """Values ``(..., D)`` → ``v · u_f + c_f`` of shape ``(..., D, d)``."""

    def __init__(self, n: int, dim: int, init_std: float) -> None:
        super().__init__()
        self.n = n
        self.dim = dim
        if n:
            self.weight = nn.Parameter(torch.randn(n, dim) * init_std)
            self.bias = nn.Parameter(torch.zeros(n, dim))

    def forward(self, values: Tensor) -> Tensor:
        if not self.n:
            return torch.zeros(*values.shape, self.dim, device=values.device)
        return values.unsqueeze(-1) * self.weight + self.bias


class EntityFields(nn.Module):
    """The fields of a user or item table, looked up by entity index.

    With the graph backbone the table's id column is left out of the categorical fields and
    the graph representation takes its place (first); without it the id column is an ordinary
    categorical field (:meth:`id_vectors` reads it).
    """

    codes: Tensor
    values: Tensor

    def __init__(
        self, table: FeatureTable, id_name: str, graph: bool, dim: int, init_std: float, side: str
    ) -> None:
        super().__init__()
        names = list(table.sparse_names)
        self.id_col = names.index(id_name) if id_name in names else -1
        self.graph = graph
        keep = [j for j in range(len(names)) if not (graph and j == self.id_col)]
        self.register_buffer("codes", table.sparse[:, keep].contiguous(), persistent=False)
        self.register_buffer("values", table.dense.to(torch.float32), persistent=False)
        self.cat = CategoricalFields([table.cardinalities[j] for j in keep], dim, init_std)
        self.dense = DenseFields(len(table.dense_names), dim, init_std)
        self.dim = dim
        self.id_field = keep.index(self.id_col) if self.id_col in keep else -1
        self.names = (
            [f"{side}:{id_name}"] * graph
            + [f"{side}:{names[j]}" for j in keep]
            + [f"{side}:{n}" for n in table.dense_names]
        )
        self.n_rows = len(table)

    @property
    def n_fields(self) -> int:
        return len(self.names)

    def forward(self, idx: Tensor, graph_rep: Tensor | None) -> Tensor:
        """Fields of entities ``idx (P,)`` → ``(P, F, d)``; ``graph_rep``: all entities'
        graph representations (required with the backbone)."""
        if self.n_fields == 0:
            return torch.zeros(idx.shape[0], 0, self.dim, device=idx.device)
        parts = []
        if self.graph:
            assert graph_rep is not None
            parts.append(graph_rep.index_select(0, idx).unsqueeze(1))
        parts.append(self.cat(self.codes.index_select(0, idx)))
        parts.append(self.dense(self.values.index_select(0, idx)))
        return torch.cat(parts, dim=1)

    def id_vectors(self, idx: Tensor) -> Tensor:
        """The id field's embeddings of entities ``idx`` (any shape) → ``(*idx.shape, d)``."""
        codes = self.codes[:, self.id_field].index_select(0, idx.reshape(-1))
        return self.cat.field(self.id_field, codes).reshape(*idx.shape, self.dim)


class InputLayer(nn.Module):
    """Fields of samples (training) and of user-item pairs (ranking); see the module docstring.

    Attributes:
        field_names: names of the ``F = F_0 + N_b`` fields (base fields, then interests).
        behaviours: the behaviour sequences pooled into interest fields (empty: none).
        attention: the shared target attention (None without behaviours).
    """

    def __init__(
        self, cfg: TaskModelConfig, spec: DataSpec, data: MultiTaskData, model: str
    ) -> None:
        super().__init__()
        self.dim = dim = cfg.dim
        self.layers = cfg.graph_layers
        self.graph = cfg.graph_layers > 0
        if cfg.backbone_init and not self.graph:
            raise ConfigError(f"model {model!r}: backbone_init needs graph_layers > 0")
        row = data.rows["train"].features
        self.row_cat = CategoricalFields(row.cardinalities, dim, cfg.init_std)
        self.row_dense = DenseFields(len(row.dense_names), dim, cfg.init_std)
        self.users = EntityFields(
            data.user_features, USER_FIELD, self.graph, dim, cfg.init_std, "user"
        )
        self.items = EntityFields(
            data.item_features, ITEM_FIELD, self.graph, dim, cfg.init_std, "item"
        )
        if self.graph:
            self._init_graph(cfg, spec, data, model)
        self.modalities: ModalityInputs | None = None
        self.projections = nn.ModuleList()
        if cfg.modalities:
            self._init_modalities(cfg, spec, data, model)
        self.behaviours: tuple[str, ...] = ()
        self.attention: TargetAttention | None = None
        if cfg.interest and data.behaviours and data.has_items and data.seq_len > 0:
            if not self.graph and self.items.id_field < 0:
                raise DataError(
                    f"model {model!r}: behaviour sequences need item vectors, but the item "
                    f"table has no {ITEM_FIELD!r} field; set graph_layers > 0 or interest = false"
                )
            self.behaviours = data.behaviours
            self.attention = TargetAttention(dim, cfg.attention_hidden)
        modality_names: list[str] = [] if self.modalities is None else self.modalities.names
        self.field_names: tuple[str, ...] = (
            *(f"row:{n}" for n in (*row.sparse_names, *row.dense_names)),
            *self.users.names,
            *self.items.names,
            *(f"modality:{n}" for n in modality_names),
            *(f"interest:{b}" for b in self.behaviours),
        )

    def _init_graph(
        self, cfg: TaskModelConfig, spec: DataSpec, data: MultiTaskData, model: str
    ) -> None:
        if not data.rankable:
            raise ConfigError(
                f"model {model!r}: graph_layers > 0 needs users and items, but data "
                f"{spec.name!r} has {'no users' if not data.has_users else 'no items'}"
            )
        n_u, n_i = len(data.user_features), len(data.item_features)
        if (n_u, n_i) != (spec.n_users, spec.n_items):
            raise DataError(
                f"data {spec.name!r}: the multi-task user / item tables have {n_u} / {n_i} "
                f"rows, the interaction graph {spec.n_users} / {spec.n_items}"
            )
        self.user_ego = nn.Parameter(torch.randn(n_u, cfg.dim) * cfg.init_std)
        self.item_ego = nn.Parameter(torch.randn(n_i, cfg.dim) * cfg.init_std)
        if cfg.backbone_init:
            users, items = load_backbone(cfg.backbone_init, n_u, n_i, cfg.dim, model)
            with torch.no_grad():
                self.user_ego.copy_(users)
                self.item_ego.copy_(items)
        if cfg.freeze_backbone:
            self.user_ego.requires_grad_(False)
            self.item_ego.requires_grad_(False)
        self._adj: Tensor = spec.graph.adj

    def _init_modalities(
        self, cfg: TaskModelConfig, spec: DataSpec, data: MultiTaskData, model: str
    ) -> None:
        if not data.has_items:
            raise ConfigError(f"model {model!r}: modalities need items; the data has none")
        features = spec.modalities(cfg.modalities, model)
        for f in features:
            if f.values.shape[0] != len(data.item_features):
                raise DataError(
                    f"data {spec.name!r}: modality {f.name!r} has {f.values.shape[0]} rows, "
                    f"the item table {len(data.item_features)}"
                )
        self.modalities = ModalityInputs(features)
        self.projections = nn.ModuleList(nn.Linear(f.dim, cfg.dim) for f in features)
        if cfg.freeze_backbone:
            self.modalities.requires_grad_(False)
            self.projections.requires_grad_(False)

    @property
    def n_fields(self) -> int:
        return len(self.field_names)

    @property
    def n_base(self) -> int:
        """Fields before the interest fields (``F_0``)."""
        return self.n_fields - len(self.behaviours)

    def context(self) -> GraphContext | None:
        """The graph representations (differentiable), or None without the backbone."""
        if not self.graph:
            return None
        x = torch.cat([self.user_ego, self.item_ego])
        if self._adj.device != x.device or self._adj.dtype != x.dtype:
            self._adj = self._adj.to(device=x.device, dtype=x.dtype)
        x = layer_sum(self._adj, x, self.layers) * (1.0 / (self.layers + 1))
        users, items = torch.split(x, [self.user_ego.shape[0], self.item_ego.shape[0]])
        return GraphContext(users, items)

    def item_vectors(self, idx: Tensor, ctx: GraphContext | None) -> Tensor:
        """Vectors ``(*idx.shape, d)`` of items ``idx``: graph representations with the
        backbone, else the ``item_id`` field's embeddings."""
        if ctx is not None:
            return ctx.items.index_select(0, idx.reshape(-1)).reshape(*idx.shape, self.dim)
        return self.items.id_vectors(idx)

    def user_fields(self, users: Tensor, ctx: GraphContext | None) -> Tensor:
        """``(P, F_user, d)``."""
        return self.users(users, None if ctx is None else ctx.users)

    def item_fields(self, items: Tensor, ctx: GraphContext | None) -> Tensor:
        """``(P, F_item + n_modalities, d)``: item table fields then modality fields."""
        fields = self.items(items, None if ctx is None else ctx.items)
        if self.modalities is None:
            return fields
        mods = [
            proj(x)
            for proj, x in zip(self.projections, self.modalities.all_filled(items), strict=True)
        ]
        return torch.cat([fields, torch.stack(mods, dim=1)], dim=1)

    def sequences(self, history: Tensor, ctx: GraphContext | None) -> tuple[Tensor, Tensor]:
        """History ``(P, N_b, L)`` (item index + 1, 0 = padding) → item vectors
        ``(P, N_b, L, d)`` (padding positions hold item 0's vector) and the mask ``(P, N_b, L)``."""
        mask = history > 0
        return self.item_vectors((history - 1).clamp(min=0), ctx), mask

    def batch_inputs(self, batch: TaskBatch) -> PairInputs:
        """The inputs of a training / evaluation batch (graph propagated once)."""
        ctx = self.context()
        parts = [self.row_cat(batch.sparse), self.row_dense(batch.dense.to(torch.float32))]
        if self.users.n_rows:
            parts.append(self.user_fields(batch.users, ctx))
        if self.items.n_rows:
            parts.append(self.item_fields(batch.items, ctx))
        base = torch.cat(parts, dim=1)
        if not self.behaviours:
            return PairInputs(base)
        seq, mask = self.sequences(batch.history, ctx)
        return PairInputs(base, seq, mask, self.item_vectors(batch.items, ctx))

    def interests(self, inputs: PairInputs) -> Tensor:
        """Shared interest fields ``(P, N_b, d)`` (``N_b = 0`` without behaviours)."""
        if self.attention is None:
            return inputs.base.new_zeros(inputs.base.shape[0], 0, self.dim)
        assert inputs.seq is not None and inputs.seq_mask is not None
        assert inputs.target is not None
        out: Tensor = self.attention(inputs.seq, inputs.seq_mask, inputs.target)
        return out

    def fields(self, inputs: PairInputs) -> Tensor:
        """All fields ``(P, F, d)``: base fields then shared interests."""
        return torch.cat([inputs.base, self.interests(inputs)], dim=1)


def load_backbone(
    path: str, n_users: int, n_items: int, dim: int, model: str
) -> tuple[Tensor, Tensor]:
    """Ego embeddings ``user_emb (n_users, dim)``, ``item_emb (n_items, dim)`` from a finished
    LightGCN run directory's ``model.pt``.

    Raises:
        ConfigError: no ``model.pt``, missing keys, or shapes that do not fit.
    """
    file = Path(path) / "model.pt"
    if not file.is_file():
        raise ConfigError(
            f"model {model!r}: backbone_init {path!r} has no model.pt (expected the directory "
            "of a finished LightGCN run)"
        )
    state = torch.load(file, map_location="cpu", weights_only=True)
    out = []
    for key, rows in (("user_emb", n_users), ("item_emb", n_items)):
        if key not in state:
            raise ConfigError(
                f"model {model!r}: backbone_init {str(file)!r} has no {key!r} (keys: "
                f"{', '.join(sorted(state))}); is it a LightGCN run?"
            )
        t = state[key]
        if tuple(t.shape) != (rows, dim):
            raise ConfigError(
                f"model {model!r}: backbone_init {str(file)!r}: {key} has shape "
                f"{tuple(t.shape)}, expected ({rows}, {dim}); train LightGCN on the same data "
                f"with dim = {dim}"
            )
        out.append(t.to(torch.float32))
    return out[0], out[1]
