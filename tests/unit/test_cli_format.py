from kernel.errors import ValidationFailed
from ops import cli_format
from ops.cli_format import CHAIN_BROKEN, DEGRADED, DOWN, OK


def target(name="ldap", state="idle", **extra):
    return {"target": name, "state": state, "progress": None, "pending": 0, "last_run": None, **extra}


def report(broker="ok", services=None, sync_items=()):
    services = services or {name: {"status": "ok", "outbox_backlog": 0} for name in ("identity", "audit")}
    return {"broker": broker, "services": services, "sync": {"items": list(sync_items), "directory_configured": True}}


def test_table_aligns_columns_and_shows_missing_cells_as_dashes():
    text = cli_format.table(("A", "LONGER"), [("xyz", None), ("q", 12)])
    assert text.splitlines() == ["A    LONGER", "xyz  -", "q    12"]


def test_describe_error_names_each_field():
    error = ValidationFailed("The query is invalid.", details={"since": "is not an ISO-8601 time"})
    assert cli_format.describe_error(error) == "The query is invalid. (since: is not an ISO-8601 time)"
    assert cli_format.describe_error(ValidationFailed("Plain.")) == "Plain."


def test_sync_rows_show_last_run_progress_and_pending():
    last = {"started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:02Z", "mode": "full",
            "changes": 4, "error": "ldap_unreachable"}
    rows = cli_format.sync_rows([target("ldap", "failing", last_run=last, pending=3),
                                 target("pve:c1", "running", progress={"done": 2, "total": 9})])
    assert rows[0] == ("ldap", "failing", "2026-01-01T00:00:02Z (full)", 4, "ldap_unreachable", 3)
    assert rows[1] == ("pve:c1", "running 2/9", None, None, None, 0)


def test_sync_table_without_targets_or_directory():
    assert cli_format.sync_table({"items": [], "directory_configured": False}) == (
        "No sync targets.\n(no LDAP directory configured)")


def test_verify_report_exit_codes():
    valid = {"valid": True, "checked": 10, "start_seq": 1, "head_seq": 10, "first_break": None}
    assert cli_format.verify_report(valid) == ("Audit chain verified: 10 records checked (seq 1..10).", OK)
    broken = {**valid, "valid": False, "first_break": {"seq": 7, "event_id": "e7", "reason": "hash_mismatch"}}
    text, code = cli_format.verify_report(broken)
    assert code == CHAIN_BROKEN and "seq 7" in text and "e7" in text and "hash_mismatch" in text


def test_status_exit_code_down_before_degraded():
    assert cli_format.status_exit_code(report()) == OK
    assert cli_format.status_exit_code(report(sync_items=[target(state="failing")])) == DEGRADED
    assert cli_format.status_exit_code(report(broker="unavailable")) == DOWN
    down = {"identity": {"status": "unavailable: RpcTimeout"}}
    assert cli_format.status_exit_code(report(services=down, sync_items=[target(state="failing")])) == DOWN


def test_status_without_sync_answer_still_lists_services():
    text = cli_format.status_text({**report(services={"proxmox_sync": {"status": "unavailable: RpcTimeout"}}),
                                   "sync": None})
    assert "proxmox_sync  unavailable: RpcTimeout" in text and text.endswith("Something is DOWN.")
