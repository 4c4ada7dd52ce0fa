"""The dashboard's pages, one module per page (or pair): each asks :mod:`kakin.reports` and
the ledger for what its viewer may see and shapes it into the template's tables and chart."""
