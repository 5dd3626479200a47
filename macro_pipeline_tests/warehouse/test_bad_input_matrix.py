"""The generated bad-input matrix (issue 13): every malformed file of ``bad_inputs.cases()`` (more
than 300, over all seven kinds) is refused by ``macro-pipeline ingest`` with exit 2 and one
message naming the file, the line(s) and the rule, and leaves the database as it was (row counts
and checksums of every table).

A file is named by its path; a line by ``line N`` / ``lines N, ...`` (``row N`` in Parquet); a file
that has no lines to name (a directory, an empty or binary file, a file that is no Parquet) says
``whole file``.
"""

from __future__ import annotations

import re
from collections import Counter

import pandas as pd
import pytest

from macro_pipeline import cli
from macro_pipeline.settings import DATABASE_URL_ENV, HOME_ENV
from macro_pipeline.warehouse.ingest import ingest
from macro_pipeline_tests.conftest import table_state
from macro_pipeline_tests.warehouse.bad_inputs import Case, cases

pytestmark = pytest.mark.slow
RULE = re.compile(r"\[([a-z0-9-]+)\]")
LINES = re.compile(r"\b(lines?|rows?) \d+")
WHOLE_FILE_RULES = {"not-a-file", "empty-file", "malformed-file", "not-utf8"}  # may name no line


@pytest.fixture(scope="module")
def seeded(databases):
    engine = databases.new()
    ingest(engine, "instruments", pd.DataFrame({
        "instrument_id": ["AAA", "PERP", "GDP"], "asset_class": ["equity", "crypto", "macro"],
        "kind": ["spot", "perp", "macro"], "calendar": ["XNYS", "24/7", "XNYS"]}))
    ingest(engine, "prices", pd.DataFrame({"instrument_id": ["AAA"] * 3, "obs_date": ["2020-01-02", "2020-01-03", "2020-01-06"],
                                           "close": [10.0, 10.5, 11.0]}))
    ingest(engine, "macro", pd.DataFrame({"series_id": ["GDP"], "obs_date": ["2019-12-31"], "value": [1.0]}))
    ingest(engine, "funding", pd.DataFrame({"instrument_id": ["PERP"], "ts": ["2020-01-02T00:00:00Z"], "rate": [0.0001],
                                            "interval_hours": [8.0]}))
    return engine


def _write(case: Case, folder) -> str:
    path = folder / f"{case.name}{case.suffix}"
    if case.data is None:
        path.mkdir()
    else:
        path.write_bytes(case.data)
    return str(path)


def test_every_generated_bad_file_is_refused_naming_file_line_and_rule_and_changes_nothing(seeded, tmp_path,
                                                                                           monkeypatch, capsys):
    monkeypatch.setenv(DATABASE_URL_ENV, seeded.url.render_as_string(hide_password=False))
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    all_cases = list(cases())
    assert len(all_cases) >= 300 and len({c.kind for c in all_cases}) == 7
    state = table_state(seeded)
    tried, refused, survived, unclear = Counter(), Counter(), [], []
    for case in all_cases:
        path = _write(case, tmp_path)
        tried[case.kind] += 1
        code = cli.main(["ingest", case.kind, "-q", path])
        err = capsys.readouterr().err
        after = table_state(seeded)
        if code != 2 or after != state:
            survived.append((case.name, code, err.strip()[:200]))
            state = after
            continue
        refused[case.kind] += 1
        rules = RULE.findall(err)
        named = LINES.search(err) or ("whole file" in err and set(rules) <= WHOLE_FILE_RULES)
        if not (err.startswith(f"error: {path}: ") and rules and named and "Traceback" not in err):
            unclear.append((case.name, err.strip()[:300]))
    print(f"\nbad-input matrix: tried {sum(tried.values())}, refused {sum(refused.values())}, "
          f"survived {len(survived)}, refused without file/line/rule {len(unclear)}; per kind tried {dict(tried)}")
    assert not survived, "\n".join(map(str, survived))
    assert not unclear, "\n".join(map(str, unclear))
