#!/usr/bin/env python3
"""Runs the SQL `kaq sql` wrote on DuckDB or Spark and compares each answer with `kaq query`'s.

    sql_diff.py duckdb|spark MANIFEST.json

MANIFEST is a JSON list of cases, each {"query", "all_stages", "sql", "expected"}: `expected` is
the list of rows `kaq query --format json` printed (whole events, or objects keyed by column).
Whole events are compared by (auditID, stage, stageTimestamp) with the SQL's (id, stage,
stage_time); other rows column by column (times as kaq prints them, numbers to 1e-9 relative).
Rows are compared in order: kaq's order (input order, stable sorts, groups by key) is what the
statement's ORDER BY gives. Prints one line per failing case and the closing line
`N passed, M failed`; exit status 1 on any failure.

Spark runs in local[2] mode with the session time zone UTC, every statement in one session.
"""

import datetime as dt
import json
import math
import os
import sys
import time


def fmt_time(v):
    if v.tzinfo is not None:
        v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return v.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def norm(v):
    """A SQL value as kaq's JSON writes it."""
    if isinstance(v, dt.datetime):
        return fmt_time(v)
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    if hasattr(v, "__float__") and not isinstance(v, (bool, int, float)):
        return float(v)  # Decimal
    return v


def same(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if a == b:
            return True
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return abs(a - b) <= 1e-9 * max(abs(a), abs(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def event_key_expected(e):
    return (e.get("auditID"), e.get("stage"), e.get("stageTimestamp"))


def compare(case, columns, rows):
    """None when the SQL's rows are kaq's, else why not."""
    expected = case["expected"]
    rows = [dict(zip(columns, (norm(v) for v in r))) for r in rows]
    if len(rows) != len(expected):
        return f"{len(rows)} rows, kaq gives {len(expected)}"
    whole = "id" in columns and "stage_time" in columns and "unmapped" in columns
    for i, (got, want) in enumerate(zip(rows, expected)):
        if whole:
            # kaq prints the event as read; times in the log are canonical µs RFC 3339.
            g = (got["id"], got["stage"], got["stage_time"])
            w = event_key_expected(want)
            w = (w[0], w[1], normalize_ts(w[2]))
            if g != w:
                return f"row {i}: {g} != {w}"
        else:
            if sorted(want.keys()) != sorted(columns):
                return f"columns {columns} != {sorted(want.keys())}"
            for k in columns:
                if not same(got[k], want[k]):
                    return f"row {i} column {k}: {got[k]!r} != {want[k]!r}"
    return None


def normalize_ts(s):
    if s is None:
        return None
    d = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return fmt_time(d)


def main():
    engine, path = sys.argv[1], sys.argv[2]
    cases = json.load(open(path))
    os.environ["TZ"] = "UTC"
    time.tzset()
    started = time.time()
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect()

        def run(sql):
            cur = con.execute(sql)
            return [d[0] for d in cur.description], cur.fetchall()

    elif engine == "spark":
        from pyspark.sql import SparkSession

        spark = (
            SparkSession.builder.master("local[2]")
            .appName("kaq-sql-diff")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.driver.memory", "1g")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        print(f"spark {spark.version} started in {time.time() - started:.1f} s", flush=True)

        def run(sql):
            df = spark.sql(sql)
            return df.columns, [tuple(r) for r in df.collect()]

    else:
        sys.exit(f"unknown engine {engine}")
    passed = failed = 0
    t0 = time.time()

    def check(case):
        try:
            columns, rows = run(case["sql"].rstrip().rstrip(";"))
            return compare(case, columns, rows)
        except Exception as e:  # noqa: BLE001 - any engine error is a failure of the case
            return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"

    if engine == "spark":
        # Two statements at a time: the driver plans one while the executors run the other.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(check, cases))
    else:
        results = [check(c) for c in cases]
    for case, why in zip(cases, results):
        if why is None:
            passed += 1
        else:
            failed += 1
            flag = " --all-stages" if case["all_stages"] else ""
            print(f"FAIL {case['query']!r}{flag}: {why}", flush=True)
    print(f"{engine}: {len(cases)} statements in {time.time() - t0:.1f} s")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
