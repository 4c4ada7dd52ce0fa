"""Pricing: usage × catalog → itemised cost."""

from kakin.pricing.usage import Usage

__all__ = ["Usage"]
