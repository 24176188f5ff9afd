"""The house rules of the import graph (docs/architecture.md), read from the source:

- a service imports only kernel, contracts and itself (never another service, nor the gateway);
- the gateway imports only kernel, contracts and itself (never a service);
- kernel imports none of contracts, services, gateway (it is below them all);
- contracts imports only the standard library, kernel.envelope and itself (plus the pure
  parsing libraries in CONTRACTS_THIRD_PARTY).

Every import counts: at any depth (inside functions too), `import a.b` and `from a import b`,
relative ones resolved. ops/ and tests/ may import anything.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("kernel", "contracts", "services", "gateway", "ops", "tests")
# Pure validation libraries the shared rules need to answer exactly as the services do:
# email_validator (an address's normalised form), cryptography (a pinned CA's PEM parses).
CONTRACTS_THIRD_PARTY = frozenset({"email_validator", "cryptography"})


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, relative ones made absolute.
    `from a import b` yields a.b (b may be a module) as well as a."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_of(path) if path.name == "__init__.py" else _module_of(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "__future__":
                continue
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def _is_project_module(module: str) -> bool:
    return module.split(".")[0] in PROJECT


def problem(importer: str, module: str) -> str | None:
    """Why module `importer` may not import `module`, or None."""
    top = importer.split(".")
    target = module.split(".")
    if top[0] == "services":
        if target[0] == "services" and len(top) > 1 and len(target) > 1 and target[1] != top[1]:
            return f"service {top[1]} imports another service ({module})"
        if target[0] in ("gateway", "ops", "tests"):
            return f"service {top[1]} imports {module}"
    elif top[0] == "gateway":
        if target[0] in ("services", "ops", "tests"):
            return f"the gateway imports {module}"
    elif top[0] == "kernel":
        if target[0] in ("contracts", "services", "gateway", "ops", "tests"):
            return f"kernel imports {module}"
    elif top[0] == "contracts":
        if _is_project_module(module):
            if target[0] == "contracts" or module in ("kernel", "kernel.envelope") or \
                    module.startswith("kernel.envelope."):
                return None
            return f"contracts imports {module} (only kernel.envelope and contracts)"
        if target[0] not in sys.stdlib_module_names and target[0] not in CONTRACTS_THIRD_PARTY:
            return f"contracts imports {module} (stdlib only)"
    return None


def violations(root: Path = ROOT) -> list[str]:
    found = []
    for folder in ("services", "gateway", "kernel", "contracts"):
        for path in sorted((root / folder).rglob("*.py")):
            importer = _module_of(path)
            refused: list[tuple[int, str]] = []
            for line, module in imports_of(path):
                if any(line == seen and module.startswith(earlier + ".") for seen, earlier in refused):
                    continue  # `from a import b` when a is refused already: one finding per import
                # `from kernel import envelope` is kernel.envelope: a bare `kernel` alone is only
                # allowed to contracts when it names the envelope (checked on the .name form).
                if importer.startswith("contracts") and module == "kernel":
                    continue
                if reason := problem(importer, module):
                    refused.append((line, module))
                    found.append(f"{path.relative_to(root)}:{line}: {reason}")
    return found


def test_no_forbidden_import():
    found = violations()
    assert not found, "forbidden imports:\n" + "\n".join(found)


def test_the_rules_catch_what_they_forbid():
    assert problem("services.identity.storage", "services.rbac.domain")
    assert problem("services.proxmox_sync.service", "services.identity")  # its package: services/identity/__init__.py
    assert problem("services.proxmox_sync.service", "services.identity.events")
    assert problem("services.rbac.service", "services.rbac.events") is None
    assert problem("services.rbac.service", "contracts.events.identity") is None
    assert problem("gateway.schemas.users", "services.identity.domain")
    assert problem("gateway.schemas.users", "contracts.identity") is None
    assert problem("kernel.consumer", "contracts.events")
    assert problem("kernel.consumer", "services.audit")
    assert problem("contracts.rbac", "kernel.db")
    assert problem("contracts.rbac", "sqlalchemy")
    assert problem("contracts.rbac", "kernel.envelope") is None
    assert problem("contracts.rbac", "re") is None


def test_imports_are_found_at_any_depth(tmp_path):
    (tmp_path / "services" / "rbac").mkdir(parents=True)
    module = tmp_path / "services" / "rbac" / "thing.py"
    module.write_text("import os\n\ndef later():\n    import services.identity.domain\n"
                      "    from services.tenancy import events\n    from ..identity import storage\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert {m for _, m in imports_of(module)} >= {"services.identity.domain", "services.tenancy.events",
                                                       "services.identity.storage"}
        assert len(violations(tmp_path)) == 3
    finally:
        ROOT = saved


def test_the_gateway_loads_no_service_code():
    """Importing the gateway (a fresh interpreter) loads no services.* module and no proxmoxer."""
    probe = ("import json, sys\nimport gateway.app\n"
             "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('services', 'proxmoxer'))))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing gateway.app loads {loaded}"
