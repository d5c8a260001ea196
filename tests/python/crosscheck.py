#!/usr/bin/env python3
"""Cross-checks kaq's Parquet output against the raw audit log it was made from.

    crosscheck.py RAW_LOG PARQUET_PATH_OR_DIR [--hive]

The raw side reads the JSON-lines log with plain Python (gzip when the name ends in .gz or the file
starts with the gzip magic) and keeps the lines kaq keeps: blank lines are skipped, and a line that
is not JSON, or not an audit Event object with an `auditID` string, or has a known field of the
wrong type, is rejected (see `valid_event`). The Parquet side answers the same questions with
DuckDB SQL. Each check prints one row, name / raw / parquet / OK|MISMATCH, then the closing line
`N passed, M failed`. Exit status: 0 when everything matches, 1 on any mismatch, 2 when the inputs
cannot be read at all (then the closing line is `0 passed, 1 failed`).

PARQUET_PATH_OR_DIR is one file (`kaq convert LOG -o OUT.parquet`) or a directory; with --hive the
directory is read with hive_partitioning=true and every row's `date` (and `hour`, when the files are
partitioned by hour) must match the UTC time of the row.

Needs duckdb (pyarrow is not used). scripts/pyenv.sh makes a venv with it.
"""

import argparse
import datetime as dt
import gzip
import hashlib
import json
import os
import re
import sys
from collections import Counter

# --------------------------------------------------------------------------------------------------
# Raw side

_TS = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$"
)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def parse_ts(s):
    """RFC 3339 text -> microseconds since the epoch (UTC), truncating below µs; None if invalid."""
    if not isinstance(s, str):
        return None
    m = _TS.match(s)
    if not m:
        return None
    y, mo, d, hh, mi, ss = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    try:
        days = dt.date(y, mo, d).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    if hh > 23 or mi > 59 or ss > 60:
        return None
    off = m.group(8)
    offset = 0
    if off not in ("Z", "z"):
        sign = -1 if off[0] == "-" else 1
        offset = sign * (int(off[1:3]) * 3600 + int(off[4:6]) * 60)
    frac = int((m.group(7) or "")[:6].ljust(6, "0"))
    return ((days * 86400 + hh * 3600 + mi * 60 + ss) - offset) * 1_000_000 + frac


def fmt_us(us):
    if us is None:
        return "-"
    t = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=us)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# The fields kaq decodes into typed slots, and what it accepts in them (JSON null = absent).
_STR, _STRS, _INT32, _ANY, _TS_T = "str", "strs", "int32", "any", "ts"
_USER = {"username": _STR, "uid": _STR, "groups": _STRS, "extra": _ANY}
_OBJREF = {k: _STR for k in ("resource", "namespace", "name", "uid", "apiGroup", "apiVersion",
                             "resourceVersion", "subresource")}
_STATUS = {"metadata": _ANY, "status": _STR, "message": _STR, "reason": _STR, "details": _ANY,
           "code": _INT32}
_EVENT = {
    "kind": _STR, "apiVersion": _STR, "level": _STR, "auditID": _STR, "stage": _STR,
    "requestURI": _STR, "verb": _STR, "userAgent": _STR, "sourceIPs": _STRS,
    "user": _USER, "impersonatedUser": _USER, "objectRef": _OBJREF, "responseStatus": _STATUS,
    "requestObject": _ANY, "responseObject": _ANY,
    "requestReceivedTimestamp": _TS_T, "stageTimestamp": _TS_T, "annotations": "annotations",
}


def _type_ok(v, t):
    if v is None or t == _ANY:
        return True
    if t == _STR:
        return isinstance(v, str)
    if t == _STRS:
        return isinstance(v, list) and all(isinstance(x, str) for x in v)
    if t == _INT32:
        return isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**31
    if t == _TS_T:
        return parse_ts(v) is not None
    if t == "annotations":
        return isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
    if isinstance(t, dict):
        return isinstance(v, dict) and all(_type_ok(v.get(k), kt) for k, kt in t.items())
    raise AssertionError(t)


def valid_event(rec):
    """Whether kaq keeps this record: an object, kind Event (or none), an auditID string, and the
    fields kaq types (strings, string lists, int32 code, RFC 3339 timestamps, nested objects) of
    the right type."""
    return (
        isinstance(rec, dict)
        and rec.get("kind") in (None, "Event")
        and isinstance(rec.get("auditID"), str)
        and all(_type_ok(rec.get(k), t) for k, t in _EVENT.items())
    )


def _reject_constant(name):
    raise ValueError(f"not JSON: {name}")


def records_of(text):
    """The records in one line: an Event, the items of an EventList, or the elements of an array.
    Yields the record, or None for something that is not a record."""
    try:
        v = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        yield None
        return
    if isinstance(v, list):
        yield from v
    elif isinstance(v, dict) and v.get("kind") == "EventList" and isinstance(v.get("items"), (list, type(None))):
        yield from v.get("items") or []
    else:
        yield v


def open_log(path):
    with open(path, "rb") as f:
        magic = f.read(2)
    if path.endswith(".gz") or magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb")


def event_time(ev):
    """kaq's `time`: requestReceivedTimestamp, else stageTimestamp, else v1beta1's `timestamp`,
    else metadata.creationTimestamp."""
    for t in (ev.get("requestReceivedTimestamp"), ev.get("stageTimestamp"), ev.get("timestamp")):
        if t is not None:
            return parse_ts(t)
    md = ev.get("metadata")
    return parse_ts(md.get("creationTimestamp")) if isinstance(md, dict) else None


def raw_answers(path):
    n = 0
    blank = rejected = 0
    prod_deletes = []
    by_ip_401 = Counter()
    by_user = Counter()
    by_verb = Counter()
    tmin = tmax = None
    n_time = 0
    with open_log(path) as f:
        for raw in f:
            if not raw.strip():
                blank += 1
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                rejected += 1
                continue
            for ev in records_of(text):
                if not valid_event(ev):
                    rejected += 1
                    continue
                n += 1
                verb = ev.get("verb")
                obj = ev.get("objectRef") or {}
                ns = obj.get("namespace")
                if verb in ("delete", "deletecollection") and isinstance(ns, str) and ns.startswith("prod"):
                    prod_deletes.append(ev["auditID"])
                status = ev.get("responseStatus") or {}
                if status.get("code") == 401:
                    ips = ev.get("sourceIPs") or []
                    by_ip_401[ips[0] if ips else None] += 1
                by_user[(ev.get("user") or {}).get("username")] += 1
                by_verb[verb] += 1
                t = event_time(ev)
                if t is not None:
                    n_time += 1
                    tmin = t if tmin is None or t < tmin else tmin
                    tmax = t if tmax is None or t > tmax else tmax
    return {
        "events": n,
        "prod_deletes": sorted(prod_deletes),
        "401_by_ip": dict(by_ip_401),
        "events_per_user": dict(by_user),
        "events_per_verb": dict(by_verb),
        "time_range": (tmin, tmax, n_time),
        "_info": f"{n} events, {rejected} rejected, {blank} blank",
    }


# --------------------------------------------------------------------------------------------------
# Parquet side


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def parquet_source(path, hive):
    if os.path.isdir(path):
        glob = os.path.join(path, "**", "*.parquet")
        return f"read_parquet({sql_str(glob)}, hive_partitioning={str(hive).lower()})"
    # DuckDB guesses hive partitioning from key=value directories: say what we mean.
    return f"read_parquet({sql_str(path)}, hive_partitioning={str(hive).lower()})"


def parquet_answers(con, hive):
    """Name -> (callable giving the answer). Each runs on its own so one bad column fails one check."""

    def rows(q):
        return con.execute(q).fetchall()

    q = {
        "events": lambda: rows("SELECT count(*) FROM ev")[0][0],
        "prod_deletes": lambda: [r[0] for r in rows(
            "SELECT id FROM ev WHERE verb IN ('delete', 'deletecollection') "
            "AND starts_with(ns, 'prod') ORDER BY id")],
        "401_by_ip": lambda: dict(rows("SELECT ip[1], count(*) FROM ev WHERE code = 401 GROUP BY 1")),
        "events_per_user": lambda: dict(rows('SELECT "user", count(*) FROM ev GROUP BY 1')),
        "events_per_verb": lambda: dict(rows("SELECT verb, count(*) FROM ev GROUP BY 1")),
        "time_range": lambda: tuple(rows(
            'SELECT min(epoch_us("time")), max(epoch_us("time")), count("time") FROM ev')[0]),
    }
    if hive:
        q["hive_partitions"] = lambda: hive_violations(con)
    return q


def hive_violations(con):
    """Rows whose `date` (and `hour`) partition is not the UTC date (hour) of `time`. A row without a
    time belongs in __HIVE_DEFAULT_PARTITION__, which DuckDB may read as NULL or as the text."""
    cols = {r[0] for r in con.execute("DESCRIBE ev").fetchall()}
    if "date" not in cols:
        raise RuntimeError("no `date` partition column: is this a Hive-partitioned directory?")
    default = "'__HIVE_DEFAULT_PARTITION__'"
    utc = 'make_timestamp(epoch_us("time"))'

    def differs(got, expected):
        got = f"coalesce(nullif({got}, {default}), {default})"
        want = f'CASE WHEN "time" IS NULL THEN {default} ELSE {expected} END'
        return f"({got} IS DISTINCT FROM {want})"

    cond = differs('CAST("date" AS VARCHAR)', f"strftime({utc}, '%Y-%m-%d')")
    if "hour" in cols:
        # DuckDB may type hour=05 as the number 5: normalise to two digits.
        got = ('coalesce(lpad(CAST(TRY_CAST("hour" AS INTEGER) AS VARCHAR), 2, \'0\'), '
               'CAST("hour" AS VARCHAR))')
        cond += " OR " + differs(got, f"lpad(CAST(hour({utc}) AS VARCHAR), 2, '0')")
    return con.execute(f"SELECT count(*) FROM ev WHERE {cond}").fetchone()[0]


# --------------------------------------------------------------------------------------------------
# Reporting


def _digest(obj):
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:8]


def _sort_key(kv):
    return (kv[0] is None, str(kv[0]))


def summarize(name, v):
    if isinstance(v, Exception):
        return f"error: {str(v).splitlines()[0][:60]}"
    if name == "prod_deletes":
        return f"{len(v)} ids #{_digest(v)}"
    if name == "time_range":
        return f"{fmt_us(v[0])}..{fmt_us(v[1])} ({v[2]} timed)"
    if isinstance(v, dict):
        top = sorted(v.items(), key=lambda kv: (-kv[1],) + _sort_key(kv))[:1]
        lead = f" top {str(top[0][0])[:24]}={top[0][1]}" if top else ""
        return f"{len(v)} keys, {sum(v.values())} ev{lead} #{_digest(sorted(v.items(), key=_sort_key))}"
    return str(v)


def differences(name, raw, pq, limit=10):
    if isinstance(pq, Exception):
        return [f"{type(pq).__name__}: {pq}"]
    out = []
    if isinstance(raw, dict) and isinstance(pq, dict):
        for k in sorted(set(raw) | set(pq), key=lambda k: (k is None, str(k))):
            if raw.get(k) != pq.get(k):
                out.append(f"{k!r}: raw={raw.get(k)} parquet={pq.get(k)}")
    elif isinstance(raw, list) and isinstance(pq, list):
        rc, pc = Counter(raw), Counter(pq)
        for k in sorted(set(rc) | set(pc)):
            if rc[k] != pc[k]:
                out.append(f"{k}: raw x{rc[k]} parquet x{pc[k]}")
    else:
        out.append(f"raw={raw!r} parquet={pq!r}")
    if len(out) > limit:
        out = out[:limit] + [f"... and {len(out) - limit} more"]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("raw_log", help="the audit log (JSON lines; .gz ok)")
    ap.add_argument("parquet", help="kaq's Parquet file, or a directory of them")
    ap.add_argument("--hive", action="store_true",
                    help="the directory is Hive-partitioned (date=.../[hour=.../]); also check partitions")
    a = ap.parse_args(argv)

    def fatal(msg):
        # Still end with the summary line, so that tooling counting checks sees the failure.
        print(f"crosscheck: {msg}", file=sys.stderr)
        print("0 passed, 1 failed")
        return 2

    try:
        import duckdb
    except ImportError:
        return fatal("duckdb is not installed (run with the python that scripts/pyenv.sh prints)")
    for p in (a.raw_log, a.parquet):
        if not os.path.exists(p):
            return fatal(f"{p}: no such file or directory")

    raw = raw_answers(a.raw_log)

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
    except duckdb.Error:
        pass  # only matters for printing; every comparison goes through epoch_us
    try:
        con.execute(f"CREATE VIEW ev AS SELECT * FROM {parquet_source(a.parquet, a.hive)}")
        types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE ev)").fetchall())
    except duckdb.Error as e:
        return fatal(f"cannot read {a.parquet}: {e}")

    print(f"raw:     {a.raw_log}: {raw['_info']}")
    print(f"parquet: {a.parquet}: " + ", ".join(f"{c} {types.get(c, 'MISSING')}" for c in
                                                ("time", "ip", "code", "verb", "ns", "user")))
    checks = parquet_answers(con, a.hive)
    raw["hive_partitions"] = 0

    results = []
    for name, fn in checks.items():
        try:
            pq = fn()
        except Exception as e:  # noqa: BLE001 - a failing query is a failed check
            pq = e
        ok = not isinstance(pq, Exception) and raw[name] == pq
        results.append((name, summarize(name, raw[name]), summarize(name, pq), ok, pq))

    w = [max(len(r[i]) for r in results + [("check", "raw", "parquet")]) for i in range(3)]
    print()
    print(f"{'check':<{w[0]}}  {'raw':<{w[1]}}  {'parquet':<{w[2]}}  result")
    for name, rs, ps, ok, pq in results:
        print(f"{name:<{w[0]}}  {rs:<{w[1]}}  {ps:<{w[2]}}  {'OK' if ok else 'MISMATCH'}")
    for name, _, _, ok, pq in results:
        if not ok:
            print(f"\n{name}: differences")
            for line in differences(name, raw[name], pq):
                print(f"  {line}")
    passed = sum(1 for r in results if r[3])
    failed = len(results) - passed
    print()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
