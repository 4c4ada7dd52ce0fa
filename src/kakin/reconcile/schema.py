"""Provider bill tables, on the ledger's shared ``metadata`` (migration ``0008_provider_bills``).

* ``provider_bill_imports`` — one row per file imported into an organisation: the provider,
  the format recognised, the UTC days it covers and the SHA-256 of its bytes; the unique
  ``(org_id, sha256)`` is what makes importing the same file twice change nothing;
* ``provider_bill_lines`` — the bill's lines by UTC day, one per identity (provider, day,
  report, kind, provider account, line item; ``row_key`` is its hash). A later import of the
  same line replaces it: providers restate recent days as their data settles.

Money is integer picodollars like everywhere in kakin; amounts finer than a picodollar (OpenAI
prints up to 17 decimals of a dollar) are rounded half-even, the only rounding done here.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Date, ForeignKey, Index, Integer, String, Table, UniqueConstraint

from kakin.ledger.schema import ID, UTCDateTime, metadata

provider_bill_imports = Table(
    "provider_bill_imports",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("org_id", String(ID), ForeignKey("orgs.id"), nullable=False),
    Column("provider", String(16), nullable=False),  # openai | anthropic | google
    Column("format", String(40), nullable=False),  # e.g. openai.costs, google.console_csv
    Column("filename", String(300), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("start_day", Date, nullable=False),  # first UTC day covered
    Column("end_day", Date, nullable=False),  # the day after the last
    Column("rows", Integer, nullable=False),  # rows read
    Column("lines", Integer, nullable=False),  # lines stored (rows of one line added up)
    Column("skipped", Integer, nullable=False),  # rows of other services
    Column("imported_at", UTCDateTime, nullable=False),
    UniqueConstraint("org_id", "sha256"),
)

provider_bill_lines = Table(
    "provider_bill_lines",
    metadata,
    Column("org_id", String(ID), ForeignKey("orgs.id"), primary_key=True),
    Column("row_key", String(64), primary_key=True),  # sha256 of the line's identity
    Column("provider", String(16), nullable=False),
    Column("import_id", String(ID), ForeignKey("provider_bill_imports.id"), nullable=False),
    Column("day", Date, nullable=False),  # UTC
    Column("report", String(8), nullable=False),  # costs | usage
    Column("kind", String(12), nullable=False),  # usage | credit | rounding | adjustment | tax
    Column("account", String(200), nullable=False),  # provider project / workspace, "" if none
    Column("line_item", String(500), nullable=False),  # the provider's words
    Column("model", String(200)),  # model key; null for lines of no model
    Column("unit", String(16), nullable=False),
    Column("cost_pico", BigInteger),  # null on usage reports
    Column("tokens", BigInteger),  # null when the export does not count them
    Index("ix_provider_bill_lines_org_id_provider_day", "org_id", "provider", "day"),
)
