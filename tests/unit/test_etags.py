"""If-Match as the versioned resources read it: one of our ETags, `*`, or a 412."""
from __future__ import annotations

import pytest
from flask import Flask

from gateway.etags import if_match
from kernel.errors import PreconditionFailed

app = Flask(__name__)


@pytest.mark.parametrize("header,version", [(None, None), ("*", None), ('"7"', 7), ('W/"7"', 7)])
def test_an_etag_of_ours_or_none_is_read(header, version):
    with app.test_request_context(headers={"If-Match": header} if header else {}):
        assert if_match() == version


@pytest.mark.parametrize("header", ['""', '"abc"', '"1", "2"', "garbage", '"٣"'])
def test_anything_else_is_a_precondition_failure_never_a_crash(header):
    with app.test_request_context(headers={"If-Match": header}), pytest.raises(PreconditionFailed):
        if_match("role")
