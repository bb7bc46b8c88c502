"""Fan-out of live events (switcher state, tally, meters) to WebSocket subscribers.

In-process by default. Each subscriber has a bounded queue; when a slow client falls behind, its
oldest events are dropped and counted (meters are 10 Hz; state events are re-sent whole, so a
dropped one is superseded by the next)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[Event]
    accept: Callable[[Event], Event | None] = lambda e: e  # filter/transform per subscriber
    dropped: int = 0


@dataclass
class EventHub:
    maxsize: int = 256
    subscribers: set[Subscription] = field(default_factory=set)
    published: int = 0

    def subscribe(self, accept: Callable[[Event], Event | None] | None = None) -> Subscription:
        sub = Subscription(asyncio.Queue(self.maxsize))
        if accept is not None:
            sub.accept = accept
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)

    def publish(self, event: Event) -> None:
        """Call on the event loop (bridge threads with loop.call_soon_threadsafe)."""
        self.published += 1
        for sub in list(self.subscribers):
            out = sub.accept(event)
            if out is None:
                continue
            if sub.queue.full():
                sub.queue.get_nowait()
                sub.dropped += 1
            sub.queue.put_nowait(out)
