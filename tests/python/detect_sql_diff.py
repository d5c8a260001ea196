#!/usr/bin/env python3
"""Runs the statements `kaq detect --sql` wrote on DuckDB or Spark and compares each rule's rows
with the alerts `kaq detect --format json` printed over the same events.

    detect_sql_diff.py duckdb|spark MANIFEST.json

MANIFEST is {"statements": [{"rule", "sql"}], "expected": [alert, ...]}, the alerts as kaq
detect's JSON lines (run with a --max-evidence large enough to list every auditID). For each rule
the SQL's rows and kaq's alerts are compared as sets of (group, count, first, last, auditIDs),
times as kaq prints them; each row's `fired` must lie in [first, last] and its `kind` and
`severity` match. Prints one line per rule (`ok RULE N alerts` or `FAIL RULE: why`) and the
closing line `N passed, M failed`; exit status 1 on any failure.
"""

import datetime as dt
import json
import os
import sys
import time


def fmt_time(v):
    if v.tzinfo is not None:
        v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return v.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def kaq_time(s):
    """kaq's time text, with µs always written (kaq drops trailing zeros)."""
    d = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return fmt_time(d)


FIXED = ("rule", "severity", "kind", "count", "window", "first", "last", "fired", "auditIDs")


def alert_key(group, count, first, last, ids):
    return (tuple(sorted(group.items())), count, first, last, tuple(ids))


def main():
    engine, path = sys.argv[1], sys.argv[2]
    manifest = json.load(open(path))
    os.environ["TZ"] = "UTC"
    time.tzset()
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect()

        def run(sql):
            cur = con.execute(sql)
            return [d[0] for d in cur.description], cur.fetchall()

    elif engine == "spark":
        from pyspark.sql import SparkSession

        started = time.time()
        spark = (
            SparkSession.builder.master("local[2]")
            .appName("kaq-detect-sql-diff")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.driver.memory", "1g")
            # Not ./spark-warehouse in the caller's directory: beside the manifest.
            .config("spark.sql.warehouse.dir", os.path.join(os.path.dirname(os.path.abspath(path)), "spark-warehouse"))
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        print(f"spark {spark.version} started in {time.time() - started:.1f} s", flush=True)

        def run(sql):
            df = spark.sql(sql)
            return df.columns, [tuple(r) for r in df.collect()]

    else:
        sys.exit(f"unknown engine {engine}")

    expected = {}
    for a in manifest["expected"]:
        expected.setdefault(a["rule"], []).append(a)
    passed = failed = 0
    total_alerts = 0
    for st in manifest["statements"]:
        rule = st["rule"]
        t0 = time.time()
        try:
            columns, rows = run(st["sql"].rstrip().rstrip(";"))
        except Exception as e:  # noqa: BLE001 - any engine error fails the rule
            failed += 1
            print(f"FAIL {rule}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            continue
        why = None
        got = []
        for r in rows:
            row = dict(zip(columns, r))
            group = {}
            for c in columns:
                if c not in FIXED:
                    group[c[len("group_"):] if c.startswith("group_") and c[6:] in FIXED else c] = row[c]
            first, last, fired = (fmt_time(row[k]) for k in ("first", "last", "fired"))
            if not (first <= fired <= last):
                why = f"fired {fired} outside [{first}, {last}]"
            if row["rule"] != rule:
                why = f"row of rule {row['rule']}"
            got.append(alert_key(group, row["count"], first, last, list(row["auditIDs"])))
        want = []
        for a in expected.get(rule, []):
            want.append(alert_key(a["group"], a["count"], kaq_time(a["first"]), kaq_time(a["last"]), a["auditIDs"]))
            if a["count"] != len(a["auditIDs"]):
                why = why or "kaq listed fewer auditIDs than its count (raise --max-evidence)"
        if why is None and sorted(got) != sorted(want):
            missing = [w for w in want if w not in got]
            extra = [g for g in got if g not in want]
            why = f"{len(got)} alerts, kaq gives {len(want)}; missing {short(missing)}; extra {short(extra)}"
        if why is None and rows:
            kinds = {dict(zip(columns, r))["kind"] for r in rows}
            sev = {dict(zip(columns, r))["severity"] for r in rows}
            ek = {a["kind"] for a in expected.get(rule, [])}
            es = {a["severity"] for a in expected.get(rule, [])}
            if kinds != ek or sev != es:
                why = f"kind/severity {kinds}/{sev} != {ek}/{es}"
        if why is None:
            passed += 1
            total_alerts += len(got)
            print(f"ok {rule} {len(got)} alerts ({time.time() - t0:.2f} s)")
        else:
            failed += 1
            print(f"FAIL {rule}: {why}")
    print(f"{total_alerts} alerts compared")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def short(xs):
    out = []
    for x in xs[:3]:
        g, n, first, last, ids = x
        out.append(f"({dict(g)}, count {n}, {first}..{last}, ids {list(ids)[:3]}{'…' if len(ids) > 3 else ''})")
    return "[" + ", ".join(out) + ("…" if len(xs) > 3 else "") + "]"


if __name__ == "__main__":
    main()
