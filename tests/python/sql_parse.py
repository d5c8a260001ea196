#!/usr/bin/env python3
"""Parses each SQL statement of a JSON list with sqlglot in the given dialect.

    sql_parse.py trino STATEMENTS.json

The Trino statements `kaq sql` writes cannot be run here (no Trino server): this checks that
Trino's grammar, as sqlglot knows it, reads every one of them, and that every function called is
one sqlglot knows for Trino (an unknown function parses as `Anonymous`). Prints one line per
failure and the closing line `N passed, M failed`; exit status 1 on any failure.
"""

import json
import sys

import sqlglot
from sqlglot import exp

# Trino functions sqlglot 25+ parses without a dedicated expression class.
KNOWN = {"any_match", "regexp_split", "from_unixtime_nanos", "format_datetime", "element_at", "strpos"}


def main():
    dialect, path = sys.argv[1], sys.argv[2]
    statements = json.load(open(path))
    passed = failed = 0
    for item in statements:
        sql = item["sql"].rstrip().rstrip(";")
        try:
            tree = sqlglot.parse_one(sql, read=dialect, error_level=sqlglot.ErrorLevel.RAISE)
            unknown = sorted(
                {a.name.lower() for a in tree.find_all(exp.Anonymous)} - KNOWN
            )
            if unknown:
                raise ValueError(f"functions sqlglot does not know for {dialect}: {unknown}")
            passed += 1
        except Exception as e:  # noqa: BLE001
            failed += 1
            print(f"FAIL {item['query']!r}: {str(e).splitlines()[0][:300]}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
