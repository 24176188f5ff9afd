"""Each rbac process's cache of grants, valid for one generation of the grant tables.

Database triggers bump one counter row (storage.GrantGeneration) in the transaction of
every insert, update and delete on the tables a grant is made of, whoever writes. A
decision reads the counter first (one primary-key lookup) and uses a cached grant only
if it was computed under that same count; under another count the cache starts afresh.
So a change committed through any rbac instance is seen by every instance on its very
next decision. Events are not used for this: they arrive later, and would leave a window
in which another instance answers from what it knew before.

Why reading the count first is enough: a grant is computed from rows read after the
count, so it is at least as new as the count it is stored under; and the count never
comes back to a value once a change has moved it on.
"""
from __future__ import annotations

from typing import Callable, Hashable

from nameko.extensions import DependencyProvider

from services.rbac.domain import Grant

MAX_ENTRIES = 50_000


class GrantCache:
    """Grants by (user_id, tenant_id), all of one generation. No broker, no database here.

    The generation and its grants are swapped as one tuple, so a grant computed under an
    older count (a slower concurrent call) can never land among the newer count's."""

    def __init__(self, max_entries: int = MAX_ENTRIES):
        self.max_entries = max_entries
        self._current: tuple[int | None, dict] = (None, {})

    def grant(self, generation: int | None, key: Hashable, compute: Callable[[], Grant]) -> Grant:
        """The grant of `key` cached under `generation`, else compute() (and keep it).

        generation None (no counter to compare with) means compute, and keep nothing."""
        cached_generation, grants = self._current
        if generation is not None and generation == cached_generation and key in grants:
            return grants[key]
        grant = compute()
        if generation is not None:
            self._keep(generation, key, grant)
        return grant

    def _keep(self, generation: int, key: Hashable, grant: Grant) -> None:
        cached_generation, grants = self._current
        if generation != cached_generation or len(grants) >= self.max_entries:
            grants = {}  # a new generation, or full: start afresh rather than pick what to evict
            self._current = (generation, grants)
        grants[key] = grant

    @property
    def size(self) -> int:
        """Grants kept (a property, not __len__: an empty cache must not be falsy)."""
        return len(self._current[1])


class ProcessGrantCache(DependencyProvider):
    """Gives every worker of the process the same GrantCache."""

    def setup(self):
        self.cache = GrantCache()

    def get_dependency(self, worker_ctx):
        return self.cache
