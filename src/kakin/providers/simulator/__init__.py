"""The simulated provider: a real HTTP server speaking the OpenAI, Azure OpenAI,
Anthropic and Gemini wire formats, so every kakin feature works offline.

Answers are deterministic (derived from the prompt), usage is honest (counted with
``kakin.tokens``, prompt caching and reasoning tokens included), streams are framed as
each provider frames them, and faults can be asked for per request with the
``x-kakin-simulate`` header (grammar in ``faults``) or set as defaults in
``SimulatorConfig``. ``kakin simulate --host --port`` serves it; tests and benchmarks use
``start_in_thread``.
"""

from kakin.providers.simulator.app import create_app
from kakin.providers.simulator.config import SimulatorConfig
from kakin.providers.simulator.faults import HEADER, Faults, parse_faults
from kakin.providers.simulator.server import RunningSimulator, serve, start_in_thread

__all__ = [
    "HEADER",
    "Faults",
    "RunningSimulator",
    "SimulatorConfig",
    "create_app",
    "parse_faults",
    "serve",
    "start_in_thread",
]
