"""What a viewer may see of one organisation: all of it (the admin key), or one project and
what is about it (a project key). Every page asks here, so the rule is written once."""

from __future__ import annotations

from functools import cached_property

from kakin.ledger import KeyRecord, Ledger


class ViewerScope:
    def __init__(self, ledger: Ledger, org_id: str, project: str | None) -> None:
        self._ledger = ledger
        self._org_id = org_id
        self.project = project  # the project every query is held to; None for the admin

    @property
    def admin(self) -> bool:
        return self.project is None

    def held(self, asked: str | None) -> str | None:
        """The project a query is narrowed to: the viewer's own, whatever the address asks
        for; the admin's choice otherwise."""
        return self.project or asked or None

    def sees_project(self, project_id: str) -> bool:
        return self.admin or project_id == self.project

    def sees(self, scope: str, scope_ref: str) -> bool:
        """Whether a budget or an alert about ``scope``/``scope_ref`` is the viewer's: a
        project key sees its project's and its keys', never the organisation's."""
        if self.admin:
            return True
        if scope == "project":
            return scope_ref == self.project
        if scope == "key":
            return scope_ref in {key.id for key in self.keys}
        return False

    @cached_property
    def keys(self) -> list[KeyRecord]:
        """The keys the viewer sees: the project's, or the organisation's for the admin."""
        return self._ledger.list_keys(self._org_id, self.project)
