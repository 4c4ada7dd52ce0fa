"""The billing tables, on the ledger's shared ``MetaData`` (revision ``0007_invoices``).

An issued invoice or credit note is one row holding its whole document as canonical JSON
text and that text's SHA-256: it is read back as stored, never recomputed from the ledger.
A few figures are copied into columns for listings. ``billing_numbers`` holds the last
number given per organisation and kind of document; the row is incremented in the
transaction that inserts the document, so a rolled-back issue gives its number back and the
sequence stays gapless.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from kakin.ledger.schema import ID, UTCDateTime, metadata

invoices = Table(
    "invoices",
    metadata,
    Column("id", String(ID)),
    Column("org_id", String(ID), ForeignKey("orgs.id"), nullable=False),
    Column("month", String(7), nullable=False),  # the cycle, YYYY-MM in the organisation's timezone
    Column("seq", Integer, nullable=False),  # 1, 2, 3… per organisation, gapless
    Column("number", String(40), nullable=False),  # prefix + seq
    Column("cycle_start", UTCDateTime, nullable=False),
    Column("cycle_end", UTCDateTime, nullable=False),
    Column("issued_at", UTCDateTime, nullable=False),
    # The usage records it covers are those of the organisation with id <= through_usage_id
    # not covered by an earlier invoice (see kakin.billing.snapshot).
    Column("through_usage_id", BigInteger, nullable=False),
    Column("charges_pico", BigInteger, nullable=False),
    Column("credits_pico", BigInteger, nullable=False),
    Column("due_pico", BigInteger, nullable=False),
    Column("document", Text, nullable=False),  # canonical JSON
    Column("content_hash", String(64), nullable=False),  # sha256 hex of document
    # One invoice per cycle and one per number: a second issuer of the same cycle collides.
    UniqueConstraint("org_id", "month"),
    UniqueConstraint("org_id", "seq"),
)

credit_notes = Table(
    "credit_notes",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("org_id", String(ID), ForeignKey("orgs.id"), nullable=False),
    Column("invoice_id", String(ID), ForeignKey("invoices.id"), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("number", String(40), nullable=False),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("amount_pico", BigInteger, nullable=False),
    Column("settlement", String(10), nullable=False),  # credit | refund
    Column("idempotency_key", String(200), nullable=False),
    Column("params_hash", String(64), nullable=False),
    Column("document", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    UniqueConstraint("org_id", "seq"),
    UniqueConstraint("org_id", "idempotency_key"),
)

billing_numbers = Table(
    "billing_numbers",
    metadata,
    Column("org_id", String(ID), ForeignKey("orgs.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # invoice | credit_note
    Column("last", Integer, nullable=False),
    PrimaryKeyConstraint("org_id", "kind"),
)

BILLING_TABLES = (invoices, credit_notes, billing_numbers)
