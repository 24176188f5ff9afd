"""Schemathesis hooks of tests/integration/test_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

The fuzzing admin must stay able to act: a generated request that names the admin itself or its
active tenant in the path (suspend, delete, require 2FA of, remove from its tenant, disable the
tenant, ...) is sent about a made-up id instead, which the API answers 404.
"""
import os
import uuid

import schemathesis

PROTECTED = frozenset(filter(None, os.environ.get("GATEHOUSE_FUZZ_PROTECTED_IDS", "").split(",")))


@schemathesis.hook
def before_call(context, case, kwargs):
    for name, value in (case.path_parameters or {}).items():
        if str(value) in PROTECTED:
            case.path_parameters[name] = str(uuid.uuid4())
