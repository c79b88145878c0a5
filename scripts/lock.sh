#!/usr/bin/env bash
# Pin every dependency of the server and of every extra into constraints.txt.
#
# The container image installs from it (`pip install -c constraints.txt`), so an
# image built today and one built next month hold the same versions. Run this
# after changing a dependency in pyproject.toml; tests/test_constraints.py fails
# while constraints.txt does not satisfy pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=$(command -v uv || echo .venv/bin/uv)
"$uv" pip compile pyproject.toml --all-extras --python-version 3.11 \
    --python-platform x86_64-manylinux_2_28 --no-emit-package pichat-trio \
    --custom-compile-command scripts/lock.sh --quiet -o constraints.txt
echo "constraints.txt: $(grep -c '==' constraints.txt) pins"
