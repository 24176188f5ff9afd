"""Identity's unit of work: what every use case (services/identity/usecases/) takes.

As in cosmicpython's service layer, a use case gets one object and no nameko: `with uow:` is one
database transaction (the kernel's unit of work, kernel/db.py: `uow.session`, `uow.emit(...)` puts
events in the outbox of that transaction, `uow.commit()` commits both at once, leaving the block
without committing rolls back). A use case may open several transactions one after the other (a
password hash or an RPC never runs inside one: kernel/db.py's rule for eventlet on SQLite), and a
helper may open its own while one is open (a separate transaction, as before: the innermost is
`uow.session`).

It also carries what the use cases call besides the database, so that a test can hand in fakes:
`rbac` (the RpcProxy, or anything with the same methods), `mailer` (wake(), the link lifetimes,
the SMTP password box), `secret_box` (kernel.crypto.SecretBox) and `config` (nameko's config dict:
`config["GATEHOUSE"]` is the kernel Config).
"""
from __future__ import annotations

from kernel.db import ServiceDatabase
from kernel.db import UnitOfWork as Transaction


class IdentityUnitOfWork:
    def __init__(self, db: ServiceDatabase, rbac=None, mailer=None, secret_box=None, config=None):
        self.db = db
        self.rbac, self.mailer, self.secret_box, self.config = rbac, mailer, secret_box, config
        self._open: list[Transaction] = []

    def __enter__(self) -> "IdentityUnitOfWork":
        self._open.append(self.db.unit_of_work().__enter__())
        return self

    def __exit__(self, *exc_info) -> None:
        self._open.pop().__exit__(*exc_info)

    @property
    def transaction(self) -> Transaction:
        if not self._open:
            raise RuntimeError("no transaction: use `with uow:`")
        return self._open[-1]

    @property
    def session(self):
        return self.transaction.session

    @property
    def events(self):
        """The events emitted in the open transaction and not committed yet."""
        return self.transaction.events

    def emit(self, *events) -> None:
        self.transaction.emit(*events)

    def commit(self) -> None:
        self.transaction.commit()
