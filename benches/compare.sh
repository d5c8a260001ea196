#!/usr/bin/env bash
# Compares kaq with DuckDB (and jq, for queries) on the same generated audit log, in one run, one
# after the other: `kaq convert` against DuckDB's JSON→Parquet, and `kaq query` against the same
# questions asked of jq and of the DuckDB command line's read_json_auto over the raw log (QUESTIONS).
#
#   benches/compare.sh [EVENTS]          # default 1000000
#   KAQ_BENCHES="queries kaq_query_all" benches/compare.sh
#   KAQ_BENCHES="duckdb_convert kaq_ingest store_queries" benches/compare.sh   # the store (issue 4)
#
# Environment:
#   KAQ=path/to/kaq        use this binary, skip `cargo build --release`
#   KAQ_BENCH_DIR=DIR      logs, outputs and results (default target/bench-data)
#   GEN_AUDIT=PATH         the log generator (default ../shared/tools/gen-audit, from the repo root)
#   KAQ_BENCHES="a b"      which measurements to run, in order (default: all of BENCHES below)
#   KAQ_QUESTIONS="a b"    which of QUESTIONS the `queries` measurement asks (default: all)
#   DUCKDB_THREADS=N       pin DuckDB's thread count (default: DuckDB's own choice)
#   KAQ_PYENV              where scripts/pyenv.sh keeps the venv with duckdb
#   KAQ_STORE_RUNS=N       runs of each store query, kaq and the DuckDB CLI alike; the median counts
#                          (default 5)
#   KAQ_RUNS=N             runs of each other kaq and DuckDB measurement (conversion, ingest, the raw
#                          questions, alternating kaq and DuckDB for those); the run of median wall
#                          time counts, with its CPU, memory and output, and every run's time is
#                          printed (default 3; jq runs once: it is 20-150 times slower)
#
# Each measured command is one function `bench_NAME` that calls `measure`; to add one, write the
# function and add NAME to BENCHES. The log is generated once and reused. Wall time and peak RSS come
# from `/usr/bin/time -v` (or, without GNU time, from a small Python runner that reads the same
# numbers from getrusage). Ratios are DuckDB / kaq, so > 1 means kaq is faster / smaller.
set -euo pipefail

die() { echo "compare.sh: $*" >&2; exit 1; }
note() { echo "compare.sh: $*" >&2; }

root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
cd -- "$root"

events="${1:-1000000}"
[[ "$events" =~ ^[1-9][0-9]*$ ]] || die "EVENTS must be a positive whole number, got '$events'"

bench_dir="${KAQ_BENCH_DIR:-target/bench-data}"
mkdir -p -- "$bench_dir"
bench_dir="$(cd -- "$bench_dir" && pwd)"
gen_audit="${GEN_AUDIT:-../shared/tools/gen-audit}"
log_file="$bench_dir/audit-$events.log"
out_dir="$bench_dir/out-$events"
work_dir="$bench_dir/work"
mkdir -p -- "$out_dir" "$work_dir"

BENCHES=(kaq_convert duckdb_convert kaq_convert_completion_order queries kaq_query_all kaq_ingest store_queries)
read -r -a selected <<<"${KAQ_BENCHES:-${BENCHES[*]}}"

# Results, by measurement name.
declare -A SECS=() CPU_SECS=() RSS_KB=() BYTES=() INNER_SECS=()
# Each run's figures, space-separated, for names measured several times (`measure_run`).
declare -A RUN_SECS=() RUN_CPU=() RUN_RSS=() RUN_BYTES=() RUN_INNER=()
runs="${KAQ_RUNS:-3}"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "KAQ_RUNS must be a positive whole number, got '$runs'"
order=()
store_lines=()

# ------------------------------------------------------------------------------------------------
# Setup

build_kaq() {
    if [[ -n "${KAQ:-}" ]]; then
        [[ -x "$KAQ" ]] || die "KAQ=$KAQ is not an executable file"
        kaq="$(cd -- "$(dirname -- "$KAQ")" && pwd)/$(basename -- "$KAQ")"
        note "using kaq at $kaq (no build)"
        return
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust, or set KAQ=path/to/kaq"
    note "cargo build --release"
    cargo build --release >&2
    kaq="${CARGO_TARGET_DIR:-$root/target}/release/kaq"
    [[ -x "$kaq" ]] || die "the build did not produce $kaq"
}

setup_python() {
    py="$(scripts/pyenv.sh </dev/null | tail -n 1)"
    [[ -x "$py" ]] || die "scripts/pyenv.sh did not give a python (got '$py')"
}

generate_log() {
    if [[ -s "$log_file" ]]; then
        note "reusing $log_file"
        return
    fi
    [[ -f "$gen_audit" ]] || die "log generator not found at '$gen_audit' (from $root); set GEN_AUDIT=/path/to/gen-audit"
    note "generating $events events into $log_file"
    local tmp="$log_file.tmp.$$"
    if [[ -x "$gen_audit" ]]; then
        "$gen_audit" --events "$events" --seed 1 --out "$tmp"
    else
        python3 "$gen_audit" --events "$events" --seed 1 --out "$tmp"
    fi
    mv -f -- "$tmp" "$log_file"
}

gnu_time=""
if [[ -x /usr/bin/time ]] && /usr/bin/time -v true >/dev/null 2>&1; then
    gnu_time=/usr/bin/time
fi

# Stand-in for `/usr/bin/time -v -o FILE CMD...`: the same two lines, from getrusage.
time_runner() {
    cat >"$work_dir/timerun.py" <<'PY'
import resource, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
rc = subprocess.call(cmd)
s = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(out, "w") as f:
    f.write(f"\tElapsed (wall clock) time (h:mm:ss or m:ss): {int(s // 60)}:{s % 60:05.2f}\n")
    f.write(f"\tMaximum resident set size (kbytes): {rss}\n")
sys.exit(rc)
PY
}

# ------------------------------------------------------------------------------------------------
# Measuring

bytes_of() {
    if [[ -d "$1" ]]; then
        find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'
    elif [[ -e "$1" ]]; then
        stat -L -c %s -- "$1"
    else
        echo 0
    fi
}

# Reads the log once, so that every measurement reads it from the page cache (on a shared machine
# it is evicted between runs, and the first peer to read it would pay for the disk).
warm() {
    cat -- "$log_file" >/dev/null
}

# measure NAME OUTPUT CMD...: runs CMD once (OUTPUT, a file or directory, removed first), and records
# its wall seconds, peak RSS and the bytes of OUTPUT under NAME. CMD's stdout goes to
# $work_dir/NAME.stdout, its stderr to $work_dir/NAME.stderr.
measure() {
    local name=$1 output=$2
    shift 2
    rm -rf -- "$output"
    # What earlier runs wrote (a store, Parquet files, 0.9 GB of printed events, DuckDB's
    # temporary files) goes to disk now, not while this command runs: no command pays for
    # another's writeback.
    sync
    local tfile="$work_dir/$name.time"
    note "running $name: $*"
    local rc=0
    if [[ -n "$gnu_time" ]]; then
        "$gnu_time" -v -o "$tfile" -- "$@" >"$work_dir/$name.stdout" 2>"$work_dir/$name.stderr" || rc=$?
    else
        "$py" "$work_dir/timerun.py" "$tfile" "$@" >"$work_dir/$name.stdout" 2>"$work_dir/$name.stderr" || rc=$?
    fi
    if ((rc != 0)); then
        tail -n 20 -- "$work_dir/$name.stderr" >&2 || true
        die "$name failed (exit $rc); full output in $work_dir/$name.stderr"
    fi
    SECS[$name]=$(awk -F': ' '/Elapsed \(wall clock\)/ {
            n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.2f", s }' "$tfile")
    RSS_KB[$name]=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tfile")
    CPU_SECS[$name]=$(awk -F': ' '/User time|System time/ { s += $2 } END { if (NR) printf "%.2f", s }' "$tfile")
    BYTES[$name]=$(bytes_of "$output")
    order+=("$name")
}

# measure_run NAME OUTPUT CMD...: one run of `measure` (the log warmed first), its figures added to
# NAME's runs; `keep_median NAME` then keeps the run of median wall time as NAME's figures. The last
# line of CMD's stdout is kept too (DuckDB's conversion prints its own query time there).
measure_run() {
    local name=$1
    local -a before=("${order[@]}")
    warm
    measure "$@"
    order=("${before[@]}")
    RUN_SECS[$name]+="${SECS[$name]} "
    RUN_CPU[$name]+="${CPU_SECS[$name]:--} "
    RUN_RSS[$name]+="${RSS_KB[$name]} "
    RUN_BYTES[$name]+="${BYTES[$name]} "
    RUN_INNER[$name]+="$(tail -n 1 -- "$work_dir/$name.stdout" | tr -d ' ' || true) "
}

keep_median() {
    local name=$1 m
    local -a s c r b i
    read -r -a s <<<"${RUN_SECS[$name]}"
    read -r -a c <<<"${RUN_CPU[$name]}"
    read -r -a r <<<"${RUN_RSS[$name]}"
    read -r -a b <<<"${RUN_BYTES[$name]}"
    read -r -a i <<<"${RUN_INNER[$name]}"
    # The index of the median wall time (the lower middle for an even count).
    m=$(printf '%s\n' "${s[@]}" | awk '{ print NR - 1, $1 }' | sort -k2,2g |
        awk -v n="${#s[@]}" 'NR == int((n + 1) / 2) { print $1 }')
    SECS[$name]=${s[$m]} CPU_SECS[$name]=${c[$m]} RSS_KB[$name]=${r[$m]} BYTES[$name]=${b[$m]}
    RUN_INNER[$name]=${i[$m]:-}
    order+=("$name")
}

# measure_n NAME OUTPUT CMD...: KAQ_RUNS runs of CMD, the median kept.
measure_n() {
    local k
    for ((k = 0; k < runs; k++)); do
        measure_run "$@"
    done
    keep_median "$1"
}

bench_kaq_convert() {
    local out="$out_dir/out_kaq.parquet"
    measure_n kaq "$out" "$kaq" convert "$log_file" -o "$out"
}

# The same events in the order the API server writes them (when each request completes, i.e. by
# stageTimestamp): `time` is then out of order by each request's duration, up to minutes for
# watches. kaq must still write a time-sorted file.
bench_kaq_convert_completion_order() {
    local staged="$bench_dir/audit-$events-completion-order.log"
    if [[ ! -s "$staged" ]]; then
        note "writing $staged (sorted by stageTimestamp)"
        python3 - "$log_file" "$staged.tmp" <<'PY'
import sys
lines = [l for l in open(sys.argv[1], "rb").read().split(b"\n") if l]
def key(l):
    i = l.find(b'"stageTimestamp":"')
    return l[i + 18:i + 45] if i >= 0 else b""
lines.sort(key=key)
open(sys.argv[2], "wb").write(b"\n".join(lines) + b"\n")
PY
        mv -f -- "$staged.tmp" "$staged"
    fi
    local out="$out_dir/out_kaq_completion.parquet"
    measure_n "kaq (completion order)" "$out" "$kaq" convert "$staged" -o "$out"
}

bench_duckdb_convert() {
    local out="$out_dir/out_duck.parquet"
    cat >"$work_dir/duckdb_convert.py" <<'PY'
import os, sys, time
import duckdb

log, out, tmp = sys.argv[1:4]
q = lambda s: "'" + s.replace("'", "''") + "'"
con = duckdb.connect()
con.execute(f"SET temp_directory = {q(tmp)}")  # not ./.tmp in the repo
if os.environ.get("DUCKDB_THREADS"):
    con.execute(f"SET threads = {int(os.environ['DUCKDB_THREADS'])}")
t0 = time.perf_counter()
con.execute(f"COPY (SELECT * FROM read_json_auto({q(log)}, sample_size=-1)) "
            f"TO {q(out)} (FORMAT parquet, COMPRESSION zstd)")
print(f"{time.perf_counter() - t0:.3f}")
PY
    measure_n duckdb "$out" "$py" "$work_dir/duckdb_convert.py" "$log_file" "$out" "$work_dir/duckdb-tmp"
    INNER_SECS[duckdb]=${RUN_INNER[duckdb]}
}

# Questions over the raw log, each asked of kaq, jq and the DuckDB command line, one after the
# other. Each peer gets its cheapest correct form: DuckDB reads only the columns a question names,
# with its default schema sample, except where that fails on this log (`SELECT *` meets a key first
# seen after row 20 480, "has unknown key securityContext"): there, and only there,
# sample_size=-1. Every command must exit 0 (`measure` stops the script otherwise: a fast error is
# not a fast answer), and the three must print the same number of rows (checked in the report).
# The generated log has one event per request (no --stages), so kaq's latest-stage rule changes
# nothing and the answers must be equal.
#
# A question is NAME, kaq's query, a jq program (run as `jq -nc PROGRAM LOG`, reading `inputs`)
# and DuckDB's SQL (LOG is replaced by the reader, with the options after it).
QUESTIONS=(deletes 401 users p99 timeline)
declare -A Q_KAQ=() Q_JQ=() Q_SQL=() Q_SQL_OPTS=()

Q_KAQ[deletes]='verb:delete ns:prod*'
Q_JQ[deletes]='inputs | select(.verb == "delete" and ((.objectRef.namespace // "") | startswith("prod")))'
Q_SQL[deletes]="SELECT * FROM LOG WHERE verb = 'delete' AND objectRef.namespace LIKE 'prod%'"
Q_SQL_OPTS[deletes]=', sample_size=-1' # SELECT *: the default sample fails on this log

Q_KAQ[401]='code:401 | count by ip'
Q_JQ[401]='reduce (inputs | select(.responseStatus.code == 401) | .sourceIPs[]?) as $ip ({}; .[$ip] += 1)
    | to_entries[] | {ip: .key, count: .value}'
Q_SQL[401]="SELECT ip, count(*) AS count FROM (SELECT unnest(sourceIPs) AS ip FROM LOG WHERE responseStatus.code = 401) GROUP BY ip"

Q_KAQ[users]='| count by user'
Q_JQ[users]='reduce (inputs | .user.username // "") as $u ({}; .[$u] += 1) | to_entries[] | {user: .key, count: .value}'
Q_SQL[users]="SELECT \"user\".username AS user, count(*) AS count FROM LOG GROUP BY 1"

# Microseconds since the epoch of a canonical timestamp (…T00:00:00.438988Z), for jq.
JQ_US='def us: (.[0:19] + "Z" | fromdateiso8601) * 1000000 + (.[20:26] | tonumber);'
Q_KAQ[p99]='latency>1s | stats p99(latency) by verb'
Q_JQ[p99]="$JQ_US"'
    [inputs | ((.stageTimestamp | us) - (.requestReceivedTimestamp | us)) as $l | select($l > 1000000) | {verb, l: $l}]
    | group_by(.verb)[] | (map(.l) | sort) as $s
    | {verb: .[0].verb, p99: $s[(($s | length) * 0.99 | ceil) - 1]}'
Q_SQL[p99]="SELECT verb, quantile_disc(epoch_us(CAST(stageTimestamp AS TIMESTAMP)) - epoch_us(CAST(requestReceivedTimestamp AS TIMESTAMP)), 0.99) AS p99 FROM LOG WHERE epoch_us(CAST(stageTimestamp AS TIMESTAMP)) - epoch_us(CAST(requestReceivedTimestamp AS TIMESTAMP)) > 1000000 GROUP BY verb"

Q_KAQ[timeline]='| timeline 5m by verb'
# The 5-minute bucket by slicing the timestamp (jq's fromdateiso8601 would take a quarter hour).
Q_JQ[timeline]='reduce (inputs | [(.requestReceivedTimestamp | .[0:14] + (.[14:16] | tonumber | . - . % 5
        | tostring | if length < 2 then "0" + . else . end)), .verb]) as $k
    ({}; .[$k | tojson] += 1) | to_entries[] | (.key | fromjson) as [$t, $v] | {time: $t, verb: $v, count: .value}'
Q_SQL[timeline]="SELECT time_bucket(INTERVAL '5 minutes', CAST(requestReceivedTimestamp AS TIMESTAMP)) AS time, verb, count(*) AS count FROM LOG GROUP BY 1, 2"

# Rows each peer printed, by measurement name (for the check).
declare -A QUERY_ROWS=()
query_lines=()

bench_queries() {
    command -v jq >/dev/null || die "jq not found (apt-get install jq)"
    local duck
    duck="$(dirname -- "$py")/duckdb"
    [[ -x "$duck" ]] || die "no DuckDB command line at $duck (scripts/pyenv.sh installs duckdb-cli)"
    local q reader sql k j d
    local -a questions
    read -r -a questions <<<"${KAQ_QUESTIONS:-${QUESTIONS[*]}}"
    for q in "${questions[@]}"; do
        [[ -n "${Q_KAQ[$q]:-}" ]] || die "unknown question '$q' (known: ${QUESTIONS[*]})"
        reader="read_json_auto('${log_file//\'/\'\'}'${Q_SQL_OPTS[$q]:-})"
        sql="${Q_SQL[$q]//LOG/$reader}"
        # kaq and DuckDB alternately, KAQ_RUNS times each (the median counts); jq once.
        local r
        for ((r = 0; r < runs; r++)); do
            measure_run "kaq $q" "$work_dir/none" "$kaq" query "${Q_KAQ[$q]}" "$log_file" --format json
            measure_run "duckdb $q" "$work_dir/none" "$duck" -jsonlines -c "$sql"
        done
        keep_median "kaq $q"
        keep_median "duckdb $q"
        warm
        measure "jq $q" "$work_dir/none" jq -nc "${Q_JQ[$q]}" "$log_file"
        k=$(rows_of "kaq $q") j=$(rows_of "jq $q") d=$(rows_of "duckdb $q")
        local verdict=ok
        [[ "$k" == "$j" && "$k" == "$d" ]] || { verdict="ROWS DIFFER"; ROWS_DIFFER=1; }
        query_lines+=("$(printf '%-9s %8s %8s %8s %7s %7s  %7s %7s %7s %7s  %6s %6s %6s  %s' "$q" \
            "${SECS[kaq $q]}" "${SECS[jq $q]}" "${SECS[duckdb $q]}" \
            "$(ratio "${SECS[jq $q]}" "${SECS[kaq $q]}")" "$(ratio "${SECS[duckdb $q]}" "${SECS[kaq $q]}")" \
            "${CPU_SECS[kaq $q]:--}" "${CPU_SECS[jq $q]:--}" "${CPU_SECS[duckdb $q]:--}" \
            "$(ratio "${CPU_SECS[duckdb $q]:-}" "${CPU_SECS[kaq $q]:-}")" \
            "$(mb "kaq $q")" "$(mb "jq $q")" "$(mb "duckdb $q")" "rows $k/$j/$d $verdict")")
    done
}

# Every event printed: the memory a raw scan needs when nothing can be dropped early.
bench_kaq_query_all() {
    measure_n "kaq all events" "$work_dir/none" "$kaq" query '' "$log_file" --format json
}

# The store: `kaq ingest` of the log (against duckdb_convert's JSON→Parquet), then each query asked
# of the store by `kaq query --store` and of DuckDB's own Parquet of the log by the DuckDB command
# line (whole processes both, the median of KAQ_STORE_RUNS runs each).

bench_kaq_ingest() {
    measure_n "kaq ingest" "$out_dir/store" "$kaq" ingest "$log_file" --store "$out_dir/store" -q
}

# median_secs NAME CMD...: runs CMD KAQ_STORE_RUNS times (stdout to $work_dir/NAME.stdout), prints
# the median wall time in seconds.
median_secs() {
    local name=$1
    shift
    "$py" - "$work_dir/$name.stdout" "${KAQ_STORE_RUNS:-5}" "$@" <<'PY'
import statistics, subprocess, sys, time
out, runs, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
times = []
for _ in range(runs):
    with open(out, "wb") as f:
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    if rc != 0:
        sys.exit(f"{cmd} failed (exit {rc})")
print(f"{statistics.median(times):.3f}")
PY
}

bench_store_queries() {
    local store="$out_dir/store" parquet="$out_dir/out_duck.parquet" duck
    [[ -f "$store/MANIFEST.json" ]] || die "store_queries needs kaq_ingest first (no store at $store)"
    [[ -f "$parquet" ]] || die "store_queries needs duckdb_convert first (no $parquet)"
    duck="$(dirname -- "$py")/duckdb"
    [[ -x "$duck" ]] || die "no DuckDB command line at $duck (scripts/pyenv.sh installs duckdb-cli)"
    local id
    id=$("$py" -c 'import json, sys
for i, line in enumerate(open(sys.argv[1])):
    if i == 500000 or not line.strip(): break
    last = line
print(json.loads(last)["auditID"])' "$log_file")
    local P="'$parquet'"
    local -a names=(id ip exec users 401 timeline p99)
    local -a kq=("id:$id" "ip:203.0.113.45" "subresource:exec" "| count by user" "code:401 | count by ip"
        "| timeline 5m" "latency>1s | stats p99(latency) by verb")
    local -a sql=(
        "SELECT * FROM $P WHERE auditID = '$id'"
        "SELECT * FROM $P WHERE list_contains(sourceIPs, '203.0.113.45')"
        "SELECT * FROM $P WHERE objectRef.subresource = 'exec'"
        "SELECT \"user\".username AS user, count(*) AS count FROM $P GROUP BY 1 ORDER BY 1"
        "SELECT ip, count(*) AS count FROM (SELECT unnest(sourceIPs) AS ip FROM $P WHERE responseStatus.code = 401) GROUP BY ip ORDER BY ip"
        "SELECT time_bucket(INTERVAL '5 minutes', CAST(requestReceivedTimestamp AS TIMESTAMP)) AS time, count(*) AS count FROM $P GROUP BY 1 ORDER BY 1"
        "SELECT verb, quantile_disc(epoch_us(CAST(stageTimestamp AS TIMESTAMP)) - epoch_us(CAST(requestReceivedTimestamp AS TIMESTAMP)), 0.99) AS p99 FROM $P WHERE CAST(stageTimestamp AS TIMESTAMP) - CAST(requestReceivedTimestamp AS TIMESTAMP) > INTERVAL 1 second GROUP BY verb ORDER BY verb")
    local i k d
    for i in "${!names[@]}"; do
        note "store query ${names[$i]}: kaq '${kq[$i]}' / duckdb: ${sql[$i]}"
        k=$(median_secs "kaq store ${names[$i]}" "$kaq" query "${kq[$i]}" --store "$store" --format json) ||
            die "kaq store ${names[$i]} failed"
        d=$(median_secs "duckdb store ${names[$i]}" "$duck" -jsonlines -c "${sql[$i]}") ||
            die "duckdb store ${names[$i]} failed"
        local kr dr verdict=ok
        kr=$(rows_of "kaq store ${names[$i]}") dr=$(rows_of "duckdb store ${names[$i]}")
        [[ "$kr" == "$dr" ]] || { verdict="ROWS DIFFER"; ROWS_DIFFER=1; }
        store_lines+=("$(printf '%-10s %9s %9s %8s   rows: kaq %s, duckdb %s %s' "${names[$i]}" "$k" "$d" \
            "$(ratio "$d" "$k")" "$kr" "$dr" "$verdict")")
    done
}

mb() { # peak RSS of a measurement in MB
    awk -v k="${RSS_KB[$1]:-}" 'BEGIN { if (k == "") print "-"; else printf "%.0f", k / 1024 }'
}

rows_of() { # the number of answer lines a measurement printed
    wc -l <"$work_dir/$1.stdout" | tr -d ' '
}

# ------------------------------------------------------------------------------------------------
# Report

ratio() { # ratio A B: A / B to two places, or "-" when either is missing or B is 0
    awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}

report() {
    local results="$bench_dir/results-$events.tsv"
    printf 'tool\tseconds\toutput_bytes\tpeak_rss_mb\n' >"$results"
    echo
    echo "events: $events   log: $log_file ($(bytes_of "$log_file") bytes)   cpus: $(nproc)"
    echo "load average: at the start $LOAD_START; at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    printf '%-22s %10s %10s %14s %12s\n' tool seconds "cpu s" "output bytes" "peak RSS MB"
    local name mb
    for name in "${order[@]}"; do
        mb=$(awk -v k="${RSS_KB[$name]}" 'BEGIN { printf "%.1f", k / 1024 }')
        printf '%-22s %10s %10s %14s %12s\n' "$name" "${SECS[$name]}" "${CPU_SECS[$name]:--}" "${BYTES[$name]}" "$mb"
        printf '%s\t%s\t%s\t%s\n' "$name" "${SECS[$name]}" "${BYTES[$name]}" "$mb" >>"$results"
        if [[ -n "${INNER_SECS[$name]:-}" ]]; then
            printf '%-22s %10s %14s %12s\n' "$name (query only)" "${INNER_SECS[$name]}" "-" "-"
            printf '%s\t%s\t\t\n' "$name (query only)" "${INNER_SECS[$name]}" >>"$results"
        fi
    done
    echo
    if [[ -n "${SECS[kaq]:-}" && -n "${SECS[duckdb]:-}" ]]; then
        echo "duckdb_seconds / kaq_seconds:         $(ratio "${SECS[duckdb]}" "${SECS[kaq]}")"
        echo "duckdb query-only / kaq_seconds:      $(ratio "${INNER_SECS[duckdb]:-}" "${SECS[kaq]}")"
        echo "duckdb_bytes / kaq_bytes:             $(ratio "${BYTES[duckdb]}" "${BYTES[kaq]}")"
        echo "duckdb_rss / kaq_rss:                 $(ratio "${RSS_KB[duckdb]}" "${RSS_KB[kaq]}")"
    fi
    if ((${#query_lines[@]})); then
        echo
        echo "(wall seconds, their ratios; CPU seconds, user + system, and DuckDB's over kaq's; peak RSS)"
        printf '%-9s %8s %8s %8s %7s %7s  %7s %7s %7s %7s  %6s %6s %6s  %s\n' question "kaq s" "jq s" "duckdb s" \
            "jq/kaq" "duck/kaq" "kaq cpu" "jq cpu" "duckcpu" "duck/kaq" "kaq MB" "jq MB" "duck MB" "rows kaq/jq/duckdb"
        printf '%s\n' "${query_lines[@]}"
    fi
    if [[ -n "${SECS[kaq ingest]:-}" ]]; then
        echo
        echo "store: $(bytes_of "$out_dir/store") bytes = $(awk -v a="$(bytes_of "$out_dir/store")" -v b="$(bytes_of "$log_file")" \
            'BEGIN { printf "%.1f", 100 * a / b }')% of the log"
        [[ -n "${SECS[duckdb]:-}" ]] &&
            echo "duckdb convert seconds / kaq ingest seconds: $(ratio "${SECS[duckdb]}" "${SECS[kaq ingest]}")"
    fi
    if ((${#store_lines[@]})); then
        echo
        printf '%-10s %9s %9s %8s\n' "store" "kaq s" "duckdb s" "ratio"
        printf '%s\n' "${store_lines[@]}"
    fi
    local runs_seen=0
    for name in "${order[@]}"; do
        [[ -n "${RUN_SECS[$name]:-}" ]] || continue
        ((runs_seen++ == 0)) && { echo; echo "each run's wall seconds (the median counts):"; }
        printf '  %-26s %s\n' "$name" "${RUN_SECS[$name]}"
    done
    echo
    echo "results: $results"
}

# ------------------------------------------------------------------------------------------------

main() {
    local b needs_kaq=0 needs_py=0
    for b in "${selected[@]}"; do
        declare -F "bench_$b" >/dev/null || die "unknown benchmark '$b' (known: ${BENCHES[*]})"
        [[ "$b" == kaq_* ]] && needs_kaq=1
        [[ "$b" == duckdb_* || "$b" == store_* || "$b" == queries ]] && needs_py=1
        [[ "$b" == store_* || "$b" == queries ]] && needs_kaq=1
        [[ "$b" == jq_* || "$b" == queries ]] && { command -v jq >/dev/null || die "jq not found: install it (apt-get install jq)"; }
    done
    ((needs_kaq)) && build_kaq
    # The venv is also the fallback timer when GNU time is missing.
    if ((needs_py)) || [[ -z "$gnu_time" ]]; then
        setup_python
    fi
    [[ -n "$gnu_time" ]] || { note "no GNU time at /usr/bin/time: timing with getrusage instead"; time_runner; }
    generate_log
    LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
    # Sequential on purpose: the machine is noisy, and the ratios within one run are what count.
    for b in "${selected[@]}"; do
        "bench_$b"
    done
    report
    ((ROWS_DIFFER == 0)) || die "peers printed different numbers of rows (see the table above)"
}

ROWS_DIFFER=0
main "$@"
