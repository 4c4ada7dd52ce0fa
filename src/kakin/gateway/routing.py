"""Model aliases and routing rules.

An alias names another model (``fast = "gpt-4o-mini"``). A rule sends an alias to the
cheapest of several models, compared at a stated request shape with the prices in force
now; the choice is re-evaluated when prices change (each hour is plenty). Every routed
request records the model it was routed from and what the routing saved against the most
expensive candidate, so reports can show routing savings.

Budgets on a model count the model a request is sent to (``Route.model``), under the
catalog's name for it (a dated snapshot the catalog prices as ``gpt-4o`` counts as
``gpt-4o``): ``budget_model`` says which that is for a name a budget is set on, and refuses
names no request could be counted under.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

from kakin.catalog import Catalog
from kakin.config import GatewaySettings, RouteRule
from kakin.errors import InvalidInput, UnknownModel
from kakin.pricing import Usage, price


@dataclass(frozen=True, slots=True)
class Route:
    model: str  # what the upstream will be asked for
    routed_from: str | None  # the name the client used, when it differs
    baseline: str | None  # the candidate whose price the saving is measured against


class Router:
    def __init__(self, settings: GatewaySettings, catalog: Catalog, *, refresh_seconds: float = 3600) -> None:
        self.aliases = dict(settings.aliases)
        self.rules = {rule.alias: rule for rule in settings.routes}
        self.catalog = catalog
        self.allow_unpriced = settings.allow_unpriced_models
        self.refresh_seconds = refresh_seconds
        self._chosen: dict[str, tuple[float, Route]] = {}

    def resolve(self, model: str) -> Route:
        rule = self.rules.get(model)
        if rule is not None:
            cached = self._chosen.get(model)
            if cached is None or cached[0] < time.monotonic():
                cached = (time.monotonic() + self.refresh_seconds, self._cheapest(rule))
                self._chosen[model] = cached
            return cached[1]
        target = self.aliases.get(model)
        if target is not None:
            return Route(model=target, routed_from=model, baseline=None)
        return Route(model=model, routed_from=None, baseline=None)

    def budget_model(self, name: str) -> str:
        """The model a budget set on ``name`` counts: the catalog's name for ``name`` (or for
        the alias's model), or ``name`` itself when the gateway passes unpriced models through.
        Raises ``UnknownModel`` (with the closest known names) or, for a routing rule,
        ``InvalidInput``."""
        name = name.strip()
        rule = self.rules.get(name)
        if rule is not None:
            raise InvalidInput(
                f"{name!r} is a routing rule: each request goes to the cheapest of "
                f"{', '.join(rule.cheapest_of)}, and a model budget counts the model a request is sent "
                "to; set the budget on those models"
            )
        model = self.aliases.get(name, name)
        try:
            return self.catalog.resolve(model).model
        except UnknownModel as unknown:
            if not self.allow_unpriced:
                raise UnknownModel(model, [*unknown.suggestions, *self.aliases]) from None
        return model

    def _cheapest(self, rule: RouteRule) -> Route:
        shape = Usage(input_tokens=rule.assume_input_tokens, output_tokens=rule.assume_output_tokens)
        costs: list[tuple[Decimal, str]] = [
            (price(shape, candidate, catalog=self.catalog).total, candidate) for candidate in rule.cheapest_of
        ]
        costs.sort()
        return Route(model=costs[0][1], routed_from=rule.alias, baseline=costs[-1][1])
