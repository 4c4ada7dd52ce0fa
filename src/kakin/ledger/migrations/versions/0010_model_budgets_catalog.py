"""Models under the catalog's name: usage, holds, rollups and model budgets.

From here on a request is budgeted and recorded under the catalog's name of the model it is
sent to — ``gpt-4o`` for ``gpt-4o-2024-08-06``, which the catalog prices as it — so that no
other spelling of a model escapes a budget on it. The history takes the same names (usage
records, reservations, the rollups by model, rows of one name folded together), so that a
model's spend is one line in every report and each budget still equals the usage it counts.
A budget set earlier on another spelling is renamed to the catalog's name, or it would
count nothing from now on. Where the
organisation already has the same budget on the catalog's name, the two become one: its
limit the sum of both (the total allowed for that model across its names), a hard cap if
either was, every threshold of both, and the periods' counters (spent and held) added
together, the open holds counted in the removed budget moved to the kept one. Names the
catalog does not know (unpriced models) stay as they are.

Revision ID: 0010_model_budgets_catalog
Revises: 0009_unbounded_holds
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010_model_budgets_catalog"
down_revision = "0009_unbounded_holds"
branch_labels = None
depends_on = None

_budgets = sa.table(
    "budgets",
    sa.column("id", sa.String),
    sa.column("org_id", sa.String),
    sa.column("scope", sa.String),
    sa.column("scope_ref", sa.String),
    sa.column("period", sa.String),
    sa.column("unit", sa.String),
    sa.column("source", sa.String),
    sa.column("limit_value", sa.BigInteger),
    sa.column("thresholds", sa.JSON),
    sa.column("hard_cap", sa.Boolean),
)
_periods = sa.table(
    "budget_periods",
    sa.column("budget_id", sa.String),
    sa.column("period_start", sa.DateTime(timezone=True)),
    sa.column("spent_pico", sa.BigInteger),
    sa.column("spent_tokens", sa.BigInteger),
    sa.column("held_pico", sa.BigInteger),
    sa.column("held_tokens", sa.BigInteger),
    sa.column("fired", sa.JSON),
)
_reservations = sa.table(
    "reservations",
    sa.column("id", sa.String),
    sa.column("status", sa.String),
    sa.column("model", sa.String),
    sa.column("holds", sa.JSON),
)
_COUNTERS = ("spent_pico", "spent_tokens", "held_pico", "held_tokens")


class _Names:
    """The catalog's name for a model name, None for a name it does not know."""

    def __init__(self) -> None:
        from kakin.catalog import Catalog

        self.catalog = Catalog.default()
        self.known: dict[str, str | None] = {}

    def __call__(self, name: str) -> str | None:
        from kakin.errors import UnknownModel

        if name not in self.known:
            try:
                self.known[name] = str(self.catalog.resolve(name).model)
            except UnknownModel:
                self.known[name] = None
        return self.known[name]


def upgrade() -> None:
    conn = op.get_bind()
    catalog_name = _Names()
    _rename_history(conn, catalog_name)
    rows = [dict(r._mapping) for r in conn.execute(sa.select(_budgets).where(_budgets.c.scope == "model"))]
    by_key = {(b["org_id"], b["scope_ref"], b["period"], b["unit"], b["source"]): b for b in rows}
    for budget in rows:
        name = catalog_name(budget["scope_ref"])
        if name is None or name == budget["scope_ref"]:
            continue
        kept = by_key.get((budget["org_id"], name, budget["period"], budget["unit"], budget["source"]))
        if kept is None:
            conn.execute(sa.update(_budgets).where(_budgets.c.id == budget["id"]).values(scope_ref=name))
            by_key[(budget["org_id"], name, budget["period"], budget["unit"], budget["source"])] = budget
        else:
            _merge(conn, budget, kept)


def _rename_history(conn: Any, catalog_name: _Names) -> None:
    """Usage records, reservations and rollups under the catalog's model names."""
    from kakin.ledger import schema as s

    # The models of every usage record are those of the day rollups by model (a small table,
    # where the records themselves have no index on the model); open holds may add others.
    r = s.reservations
    used = {
        *conn.execute(sa.select(s.ROLLUPS["rollup_days_by_model"].c.model).distinct()).scalars(),
        *conn.execute(sa.select(r.c.model).where(r.c.status == s.HELD).distinct()).scalars(),
    }
    renames = {m: n for m in used if (n := catalog_name(m)) is not None and n != m}
    if not renames:
        return
    for table in (s.usage_records, s.reservations):  # one pass over each table
        renamed = sa.case(*((table.c.model == old, new) for old, new in renames.items()), else_=table.c.model)
        conn.execute(sa.update(table).where(table.c.model.in_(list(renames))).values(model=renamed))
    for table in s.ROLLUPS.values():
        if "model" in table.c:
            _fold_rollup_rows(conn, table, renames)


def _fold_rollup_rows(conn: Any, table: sa.Table, renames: dict[str, str]) -> None:
    """Rows of an old name added into the rows of its new name (same hour or day and key)."""
    from kakin.ledger.rollups import MEASURES

    key = [c.name for c in table.primary_key.columns]
    folded: dict[tuple[Any, ...], list[int]] = {}
    for row in conn.execute(sa.select(table).where(table.c.model.in_(list(renames)))).mappings():
        ident = tuple(renames[row["model"]] if c == "model" else row[c] for c in key)
        sums = folded.setdefault(ident, [0] * len(MEASURES))
        for i, measure in enumerate(MEASURES):
            sums[i] += row[measure]
    if not folded:
        return
    existing = sa.select(table).where(table.c.model.in_(set(renames.values())))
    met = []
    for row in conn.execute(existing).mappings():
        ident = tuple(row[c] for c in key)
        sums = folded.get(ident)
        if sums is not None:
            met.append({f"k_{c}": row[c] for c in key})
            for i, measure in enumerate(MEASURES):
                sums[i] += row[measure]
    conn.execute(sa.delete(table).where(table.c.model.in_(list(renames))))
    if met:
        same_key = sa.and_(*(table.c[c] == sa.bindparam(f"k_{c}") for c in key))
        conn.execute(sa.delete(table).where(same_key), met)
    conn.execute(
        sa.insert(table),
        [
            dict(zip(key, ident, strict=True)) | dict(zip(MEASURES, sums, strict=True))
            for ident, sums in folded.items()
        ],
    )


def _merge(conn: Any, gone: dict[str, Any], kept: dict[str, Any]) -> None:
    """Fold budget ``gone`` into ``kept`` (the same budget on the catalog's name)."""
    kept["limit_value"] += gone["limit_value"]
    kept["hard_cap"] = bool(kept["hard_cap"] or gone["hard_cap"])
    kept["thresholds"] = sorted({*kept["thresholds"], *gone["thresholds"]})
    conn.execute(
        sa.update(_budgets)
        .where(_budgets.c.id == kept["id"])
        .values(limit_value=kept["limit_value"], hard_cap=kept["hard_cap"], thresholds=kept["thresholds"])
    )
    theirs = {
        r.period_start: r for r in conn.execute(sa.select(_periods).where(_periods.c.budget_id == gone["id"]))
    }
    ours = {
        r.period_start: r for r in conn.execute(sa.select(_periods).where(_periods.c.budget_id == kept["id"]))
    }
    for start, row in theirs.items():
        mine = ours.get(start)
        if mine is None:
            conn.execute(
                sa.insert(_periods).values(
                    budget_id=kept["id"],
                    period_start=start,
                    fired=list(row.fired or []),
                    **{c: getattr(row, c) for c in _COUNTERS},
                )
            )
        else:
            conn.execute(
                sa.update(_periods)
                .where(_periods.c.budget_id == kept["id"], _periods.c.period_start == start)
                .values(
                    fired=sorted({*(mine.fired or []), *(row.fired or [])}),
                    **{c: getattr(mine, c) + getattr(row, c) for c in _COUNTERS},
                )
            )
    for reservation in conn.execute(
        sa.select(_reservations.c.id, _reservations.c.holds).where(_reservations.c.status == "held")
    ).all():
        holds = reservation.holds if not isinstance(reservation.holds, str) else json.loads(reservation.holds)
        if holds and any(h[0] == gone["id"] for h in holds):
            moved = [[kept["id"] if h[0] == gone["id"] else h[0], h[1]] for h in holds]
            conn.execute(
                sa.update(_reservations).where(_reservations.c.id == reservation.id).values(holds=moved)
            )
    conn.execute(sa.delete(_periods).where(_periods.c.budget_id == gone["id"]))
    conn.execute(sa.delete(_budgets).where(_budgets.c.id == gone["id"]))


def downgrade() -> None:
    """Budgets renamed or folded together are not split again."""
