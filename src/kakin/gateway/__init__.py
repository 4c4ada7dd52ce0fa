"""The metering gateway: ``Gateway(settings, ledger)`` is the ASGI app; kakin.app assembles
what ``kakin serve`` runs around it, and kakin.server runs that."""

from kakin.gateway.app import Gateway

__all__ = ["Gateway"]
