"""The value rules that keep hostile input out of the directory and the scopes (issue 20):
names, emails and scope ids, as contracts states them for the gateway and the services."""
from __future__ import annotations

import pytest

from contracts.identity import normalize_email, profile_problems, unwritable_char
from contracts.rbac import scope_problems


@pytest.mark.parametrize("value", ["a\x00b", "a\x1bb", "a\rb", "a\nb", "a\u202eb", "a\u2066b", "a\u2028b", "a\ud800b"])
def test_names_refuse_control_separator_and_direction_characters(value):
    assert unwritable_char(value) is not None
    assert "control or text-direction" in profile_problems({"first_name": value})["first_name"]


@pytest.mark.parametrize("value", ["Zoë", "Łukasz", "محمد", "می\u200cخواهم", "👩\u200d💻 Ada", "O'Brien-Smith"])
def test_names_keep_letters_of_every_script_and_joiners(value):
    assert profile_problems({"first_name": value, "last_name": value, "company": value}) == {}


def test_emails_are_what_an_ia5_mail_attribute_holds():
    assert normalize_email("üser@exämple.com")[0] is None
    assert normalize_email("Ada@Exämple.COM") == ("ada@xn--exmple-cua.com", None)
    assert normalize_email("ada@example.com") == ("ada@example.com", None)


@pytest.mark.parametrize("scope", [{"vms": ["*"]}, {"vms": ["-1"]}, {"vms": ["99"]}, {"vms": ["1" * 100]},
                                    {"vms": ["0100"]}, {"nodes": ["../x"]}, {"nodes": ["a.b"]},
                                    {"connections": ["*"]}, {"storages": ["/etc"]}, {"vms": [100]}])
def test_scope_ids_are_what_proxmox_names(scope):
    assert list(scope_problems(scope)) == list(scope)


def test_scope_ids_proxmox_uses_pass():
    assert scope_problems({"vms": ["100", "999999999"], "nodes": ["pve1", "node-2"],
                           "connections": ["conn-a", "3f1c2a9e-0b1d-4c55-9e3f-2b7a1d0c9e11"],
                           "storages": ["local", "local-lvm", "ceph.pool_1"]}) == {}
