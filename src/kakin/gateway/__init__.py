"""The metering gateway: ``Gateway(settings, ledger)`` is the ASGI app ``kakin serve`` runs."""

from kakin.gateway.app import Gateway
from kakin.gateway.server import build_gateway, serve

__all__ = ["Gateway", "build_gateway", "serve"]
