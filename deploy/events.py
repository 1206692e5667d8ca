"""Read the enforcer's audit records over its ``GET /events`` endpoint."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from datetime import datetime
from typing import Any

logger = logging.getLogger(__name__)


class EventsError(Exception):
    """The enforcer's /events endpoint failed or returned invalid data."""


class EventsClient:
    """Polls /events and hands out each audit record once."""

    def __init__(self, base_url: str, token: str, since: datetime) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.since = since
        self._seen: set[str] = set()

    def fetch(self, limit: int = 500) -> list[dict[str, Any]]:
        """Return every record since ``since``, oldest first."""
        query = urllib.parse.urlencode(
            {"since": self.since.isoformat(), "limit": str(limit)}
        )
        request = urllib.request.Request(
            f"{self.base_url}/events?{query}",
            headers={"Authorization": f"Bearer {self._token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            raise EventsError(
                f"GET {self.base_url}/events returned {error.code}: "
                f"{error.read().decode(errors='replace')[:200]}; check the token "
                "in the state folder"
            ) from None
        except (OSError, ValueError) as error:
            raise EventsError(
                f"GET {self.base_url}/events failed: {error}; is the stack "
                "running (`make up`)?"
            ) from error
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list):
            raise EventsError(
                f"GET {self.base_url}/events returned no 'events' list: "
                f"{str(body)[:200]}"
            )
        return list(reversed(events))

    def new_records(self) -> list[dict[str, Any]]:
        """Return the records not handed out before, oldest first."""
        fresh = []
        for record in self.fetch():
            key = json.dumps(
                [record.get("time"), record.get("container_id"), record.get("alert")],
                sort_keys=True,
            )
            if key not in self._seen:
                self._seen.add(key)
                fresh.append(record)
        return fresh


# Results of a decision that acted on the container, or would have in a dry run.
ACTED_RESULTS = ("killed", "stopped", "paused", "dry_run")


def first_actions(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Map each container ID to the first record that acted on it."""
    actions: dict[str, dict[str, Any]] = {}
    for record in records:
        if record.get("result") in ACTED_RESULTS:
            actions.setdefault(str(record.get("container_id")), record)
    return actions
