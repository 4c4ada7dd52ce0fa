"""Request and response models of the admin API, one module per area.

Responses carry amounts as exact decimal strings (``kakin.money.decimal_str``) and times as
ISO 8601 UTC; each model converts from the ledger's record type with ``of(record)``.
"""
