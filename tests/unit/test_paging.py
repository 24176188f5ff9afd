import pytest

from kernel import paging
from kernel.errors import ValidationFailed
from kernel.paging import (decode_cursor, encode_cursor, encode_keyset_cursor, keyset_of, offset_of, page,
                           page_answer)


@pytest.mark.parametrize("offset", [0, 1, 50, 123456])
def test_cursor_round_trip(offset):
    cursor = encode_cursor(offset)
    assert not cursor.isdigit()  # opaque: callers cannot compute one
    assert decode_cursor(cursor) == offset


@pytest.mark.parametrize("cursor", ["garbage!", "bm90aGluZw", encode_cursor(5)[:-2], "b2Zmc2V0Oi0x",
                                    "b2Zmc2V0OsKy"])
def test_foreign_cursors_are_refused(cursor):
    assert decode_cursor(cursor) is None
    with pytest.raises(ValidationFailed) as refused:
        offset_of(cursor)
    assert "cursor" in refused.value.details


def test_no_cursor_is_the_first_page():
    assert decode_cursor(None) == 0 and decode_cursor("") == 0


def test_page_of_a_small_list():
    first = page(list(range(5)), 2, None)
    assert first == {"items": [0, 1], "next_cursor": encode_cursor(2), "total": 5}
    assert page(list(range(5)), 2, encode_cursor(4)) == {"items": [4], "next_cursor": None, "total": 5}


def test_the_last_page_has_no_next_cursor():
    assert page_answer([1, 2], 3, 5) == {"items": [1, 2], "next_cursor": None, "total": 5}
    assert page_answer([1, 2], 0, 5)["next_cursor"] == encode_cursor(2)


# --- keyset cursors -----------------------------------------------------------------

@pytest.mark.parametrize("key", [1, 50, 987654321])
def test_keyset_cursor_round_trip(key):
    cursor = encode_keyset_cursor(key)
    assert not cursor.isdigit() and cursor != encode_cursor(key)
    assert keyset_of(cursor) == key


def test_no_keyset_cursor_is_the_first_page():
    assert keyset_of(None) is None and keyset_of("") is None


@pytest.mark.parametrize("cursor", ["garbage!", encode_cursor(5), "YmVmb3JlOi0x", "12345"])
def test_foreign_keyset_cursors_are_refused(cursor):
    with pytest.raises(ValidationFailed) as refused:
        keyset_of(cursor)
    assert "cursor" in refused.value.details


def test_a_keyset_cursor_is_not_an_offset_cursor():
    assert decode_cursor(encode_keyset_cursor(5)) is None


def test_a_position_cursor_names_its_list_and_carries_its_values():
    cursor = paging.encode_position("users", ["name", "asc", None, ["Ada", "Lovelace"], "id-1"])
    assert "=" not in cursor
    assert paging.position_of("users", cursor) == ["name", "asc", None, ["Ada", "Lovelace"], "id-1"]
    assert paging.position_of("users", None) is None


@pytest.mark.parametrize("cursor", [paging.encode_position("invitations", ["x"]), paging.encode_cursor(20),
                                    "not base64!", paging._to_cursor('{"a": 1}'), paging._to_cursor("[]")])
def test_a_cursor_of_another_list_or_of_nothing_is_refused(cursor):
    with pytest.raises(ValidationFailed) as refused:
        paging.position_of("users", cursor)
    assert refused.value.details == {"cursor": "is not a cursor of this list"}
