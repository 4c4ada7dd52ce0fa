"""Models under the catalog's name: usage, holds, rollups and model budgets.

From here on a request is budgeted and recorded under the catalog's name of the model it is
sent to — ``gpt-4o`` for ``gpt-4o-2024-08-06``, which the catalog prices as it — so that no
other spelling of a model escapes a budget on it. The history takes the same names (usage
records, reservations, the rollups by model, rows of one name folded together), so that a
model's spend is one line in every report and each budget still equals the usage it counts.
A budget set earlier on another spelling is renamed to the catalog's name, or it would
count nothing from now on. Where the organisation already has the same budget on the
catalog's name, the two become one: its limit the sum of both (the total allowed for that
model across its names), a hard cap if either was, every threshold of both, and the periods'
counters (spent and held) added together, the open holds counted in the removed budget moved
to the kept one. Names the catalog does not know (unpriced models) stay as they are.

Revision ID: 0010_model_budgets_catalog
Revises: 0009_unbounded_holds
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010_model_budgets_catalog"
down_revision = "0009_unbounded_holds"
branch_labels = None
depends_on = None

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
    from kakin.ledger import schema as s

    conn = op.get_bind()
    catalog_name = _Names()
    _rename_history(conn, catalog_name)
    rows = [dict(r._mapping) for r in conn.execute(sa.select(s.budgets).where(s.budgets.c.scope == "model"))]
    by_key = {(b["org_id"], b["scope_ref"], b["period"], b["unit"], b["source"]): b for b in rows}
    for budget in rows:
        name = catalog_name(budget["scope_ref"])
        if name is None or name == budget["scope_ref"]:
            continue
        kept = by_key.get((budget["org_id"], name, budget["period"], budget["unit"], budget["source"]))
        if kept is None:
            conn.execute(sa.update(s.budgets).where(s.budgets.c.id == budget["id"]).values(scope_ref=name))
            by_key[(budget["org_id"], name, budget["period"], budget["unit"], budget["source"])] = budget
        else:
            _merge(conn, budget, kept)


def _rename_history(conn: Any, catalog_name: _Names) -> None:
    """Usage records, reservations and rollups under the catalog's model names."""
    from kakin.ledger import schema as s
    from kakin.ledger.rollups import TABLES

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
    for spec in TABLES:
        if "model" in spec.by:
            _fold_rollup_rows(conn, spec, renames)


def _fold_rollup_rows(conn: Any, spec: Any, renames: dict[str, str]) -> None:
    """The rows of an old name taken out and added, under the new name, to the rows there:
    the same upsert that adds a batch of charges to the rollups (kakin.ledger.statements)."""
    from kakin.ledger import schema as s
    from kakin.ledger import statements as q
    from kakin.ledger.rollups import MEASURES

    table, keys = s.ROLLUPS[spec.name], spec.dimensions
    folded: dict[tuple[Any, ...], list[int]] = {}
    for row in conn.execute(sa.select(table).where(table.c.model.in_(list(renames)))).mappings():
        ident = tuple(renames[row["model"]] if c == "model" else row[c] for c in keys)
        sums = folded.setdefault(ident, [0] * len(MEASURES))
        for i, measure in enumerate(MEASURES):
            sums[i] += row[measure]
    if not folded:
        return
    conn.execute(sa.delete(table).where(table.c.model.in_(list(renames))))
    if conn.dialect.name == "postgresql":
        rows = q.pg_rollup_rows(folded, (*keys, *MEASURES))
        conn.exec_driver_sql(q.pg_upsert(spec.name, keys, MEASURES), rows)
    else:
        rows = [tuple(row) for row in q.sqlite_rollup_rows(folded)]
        conn.exec_driver_sql(q.sqlite_upsert(spec.name, keys, MEASURES), rows)


def _merge(conn: Any, gone: dict[str, Any], kept: dict[str, Any]) -> None:
    """Fold budget ``gone`` into ``kept`` (the same budget on the catalog's name)."""
    from kakin.ledger import schema as s

    budgets, periods, r = s.budgets, s.budget_periods, s.reservations
    kept["limit_value"] += gone["limit_value"]  # kept up to date: a third spelling may follow
    kept["hard_cap"] = bool(kept["hard_cap"] or gone["hard_cap"])
    kept["thresholds"] = sorted({*kept["thresholds"], *gone["thresholds"]})
    changes = {k: kept[k] for k in ("limit_value", "hard_cap", "thresholds")}
    conn.execute(sa.update(budgets).where(budgets.c.id == kept["id"]).values(changes))
    ours = {
        p.period_start: p for p in conn.execute(sa.select(periods).where(periods.c.budget_id == kept["id"]))
    }
    for theirs in conn.execute(sa.select(periods).where(periods.c.budget_id == gone["id"])).all():
        mine = ours.get(theirs.period_start)
        if mine is None:
            counters = {c: getattr(theirs, c) for c in _COUNTERS}
            values = {"budget_id": kept["id"], "period_start": theirs.period_start, "fired": theirs.fired}
            conn.execute(sa.insert(periods).values(**values, **counters))
        else:
            counters = {c: getattr(mine, c) + getattr(theirs, c) for c in _COUNTERS}
            same = (periods.c.budget_id == kept["id"], periods.c.period_start == theirs.period_start)
            fired = sorted({*mine.fired, *theirs.fired})
            conn.execute(sa.update(periods).where(*same).values(fired=fired, **counters))
    held = conn.execute(sa.select(r.c.id, r.c.holds).where(r.c.status == s.HELD)).all()
    for reservation in held:  # open holds counted in the budget gone now count in the one kept
        if any(budget_id == gone["id"] for budget_id, _ in reservation.holds or ()):
            moved = [[kept["id"] if b == gone["id"] else b, start] for b, start in reservation.holds]
            conn.execute(sa.update(r).where(r.c.id == reservation.id).values(holds=moved))
    conn.execute(sa.delete(periods).where(periods.c.budget_id == gone["id"]))
    conn.execute(sa.delete(budgets).where(budgets.c.id == gone["id"]))


def downgrade() -> None:
    """Budgets renamed or folded together are not split again."""
