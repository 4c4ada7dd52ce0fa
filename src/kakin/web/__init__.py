"""The dashboard: server-rendered pages over :mod:`kakin.reports` (``create_web_app``)."""

from kakin.web.app import create_web_app

__all__ = ["create_web_app"]
