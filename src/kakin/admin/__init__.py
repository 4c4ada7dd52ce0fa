"""kakin's admin HTTP API: a documented (OpenAPI) management interface over the ledger and
alerts, mounted under ``/admin`` by ``kakin serve``.

    from kakin.admin import create_admin_app
    app = create_admin_app(ledger, admin_key=settings.admin_key, on_change=gateway.invalidate)

See docs/admin.md for every route with a curl example.
"""

from kakin.admin.app import create_admin_app

__all__ = ["create_admin_app"]
