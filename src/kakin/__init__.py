"""kakin — pay-as-you-go cost control for AI APIs."""

__version__ = "0.1.0"

