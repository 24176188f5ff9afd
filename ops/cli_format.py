"""What the operator commands print: pure functions of the services' answers (unit-tested)."""
from __future__ import annotations

from kernel.errors import GatehouseError

# `gatehouse status` exit codes, for scripts and monitoring.
OK, DOWN, DEGRADED = 0, 1, 3
# `gatehouse audit verify`: the chain is broken.
CHAIN_BROKEN = 2


def table(headers: tuple[str, ...], rows: list[tuple]) -> str:
    """A plain-text table, columns as wide as their widest cell; None shows as "-"."""
    cells = [[str(h) for h in headers]] + [["-" if c is None or c == "" else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells)


def describe_error(error: GatehouseError) -> str:
    """A service's refusal as one line: the message, then each field's problem."""
    problems = "; ".join(f"{field}: {problem}" for field, problem in (error.details or {}).items())
    return f"{error.message} ({problems})" if problems else error.message


SYNC_HEADERS = ("TARGET", "STATE", "LAST RUN", "CHANGES", "ERROR", "PENDING")


def sync_rows(targets: list[dict]) -> list[tuple]:
    """One row per sync target (proxmox_sync.sync_status items)."""
    rows = []
    for target in targets:
        last = target.get("last_run") or {}
        state = target["state"]
        if target.get("progress"):
            state += f" {target['progress']['done']}/{target['progress']['total']}"
        when = last.get("finished_at") or last.get("started_at")
        run = f"{when} ({last['mode']})" if when and last.get("mode") else when
        rows.append((target["target"], state, run, last.get("changes"), last.get("error"), target.get("pending")))
    return rows


def sync_table(status: dict) -> str:
    text = table(SYNC_HEADERS, sync_rows(status["items"])) if status["items"] else "No sync targets."
    if not status.get("directory_configured"):
        text += "\n(no LDAP directory configured)"
    return text


def verify_report(result: dict) -> tuple[str, int]:
    """audit.verify's answer as a sentence and the exit code."""
    span = f"{result['checked']} records checked (seq {result['start_seq']}..{result['head_seq']})"
    if result["valid"]:
        return f"Audit chain verified: {span}.", OK
    broken = result["first_break"]
    return (f"Audit chain BROKEN at seq {broken['seq']} (event {broken['event_id'] or '-'}, "
            f"reason {broken['reason']}): {span}.", CHAIN_BROKEN)


SERVICE_HEADERS = ("COMPONENT", "STATUS", "OUTBOX BACKLOG")


def status_exit_code(report: dict) -> int:
    """DOWN when the broker or a service does not answer, DEGRADED when a sync target fails, else OK."""
    if report["broker"] != "ok" or any(s["status"] != "ok" for s in report["services"].values()):
        return DOWN
    if any(t["state"] == "failing" for t in (report.get("sync") or {}).get("items", ())):
        return DEGRADED
    return OK


def status_text(report: dict) -> str:
    rows = [("broker", report["broker"], None)]
    rows += [(name, health["status"], health.get("outbox_backlog")) for name, health in report["services"].items()]
    parts = [table(SERVICE_HEADERS, rows)]
    if report.get("sync") is not None:
        parts.append(sync_table(report["sync"]))
    verdict = {OK: "All good.", DOWN: "Something is DOWN.", DEGRADED: "Degraded: a sync target is failing."}
    parts.append(verdict[status_exit_code(report)])
    return "\n\n".join(parts)
