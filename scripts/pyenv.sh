#!/usr/bin/env bash
# Creates (once) the Python virtual environment used by kaq's cross-checks and benchmarks, with
# duckdb, pyarrow and the DuckDB command line (duckdb-cli, as $venv/bin/duckdb) in it, and prints the path of its python as the last line on stdout.
#
#   PY=$(scripts/pyenv.sh | tail -n 1)
#
# Environment:
#   KAQ_PYENV   where the venv lives (default: $HOME/.cache/kaq-pyenv)
#   PYTHON      the interpreter that creates it (default: python3)
#   PIP_*       passed through to pip as usual (e.g. PIP_FIND_LINKS=/some/wheels)
#
# Idempotent: when the venv already imports duckdb and pyarrow nothing is installed. Everything but
# the final path goes to stderr. Needs no stdin; works as root and in CI.
set -euo pipefail

venv="${KAQ_PYENV:-${HOME:-/root}/.cache/kaq-pyenv}"
base_python="${PYTHON:-python3}"
packages=("duckdb>=1.1" "pyarrow>=15" "duckdb-cli>=1.1")

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore

log() { echo "pyenv: $*" >&2; }

has_modules() {
    [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import duckdb, pyarrow' >/dev/null 2>&1 &&
        [[ -x "$venv/bin/duckdb" ]]
}

setup() {
    if has_modules; then
        return 0
    fi
    # A venv whose interpreter no longer runs (e.g. the base python was upgraded) is rebuilt.
    if [[ -e "$venv" ]] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        log "rebuilding broken venv at $venv"
        rm -rf -- "$venv"
    fi
    if [[ ! -x "$venv/bin/python" ]]; then
        command -v "$base_python" >/dev/null 2>&1 || { log "error: $base_python not found"; return 1; }
        log "creating venv at $venv"
        mkdir -p -- "$(dirname -- "$venv")"
        if ! "$base_python" -m venv "$venv" >&2; then
            log "error: '$base_python -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)"
            rm -rf -- "$venv"
            return 1
        fi
    fi
    log "installing ${packages[*]}"
    "$venv/bin/python" -m pip install --quiet "${packages[@]}" </dev/null >&2
    if ! has_modules; then
        log "error: duckdb/pyarrow still do not import from $venv/bin/python"
        return 1
    fi
}

mkdir -p -- "$(dirname -- "$venv")"
# Two jobs setting up the same venv at once would trip over each other: serialise them.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$venv.lock"
    flock 9
fi
setup </dev/null
echo "$venv/bin/python"
