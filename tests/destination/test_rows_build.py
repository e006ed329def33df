"""The C decoder of records (dbkit.destination._rows) is optional only for machines without a C
compiler: where one is, a missing decoder is a broken build, not a reason for test_rows.py to
skip."""

from __future__ import annotations

import os
import shutil

from dbkit.destination import rows


def test_the_decoder_is_built_where_a_c_compiler_is() -> None:
    if shutil.which("cc") or shutil.which("gcc"):
        assert rows.built(), "dbkit.destination._rows was not built"
        assert rows.available() is (os.environ.get("DBKIT_ROW_DECODER") != "python")
