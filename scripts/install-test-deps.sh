#!/usr/bin/env bash
# Install what the tests need, from the registries, on a machine with python3 (>= 3.11), node and npm:
#   - .venv with hivegate installed editable with its [test] extra;
#   - redis-server and haproxy (Debian's packages), for the Redis storage tests and the scale bench's smoke test,
#     when they are not installed;
#   - tests/tools/node_modules from tests/tools/package-lock.json: oidc-provider, the MCP conformance
#     suite, the MCP Inspector, the MCP TypeScript SDK and a Node 22 binary (tests/tools/node_modules/.bin/node)
#     to run them.
# Idempotent: each part is skipped while the files it was installed from are unchanged, so a second
# run does nothing and prints nothing. Output of the installers is shown only when one fails.
# Environment: PYTHON (default python3) is the interpreter the venv is made from.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
VENV=$ROOT/.venv
TOOLS=$ROOT/tests/tools

say() { printf 'install-test-deps: %s\n' "$*" >&2; }

# Run a command with its output captured; show the output only if it fails.
quietly() {
  local log status=0
  log=$(mktemp)
  "$@" >"$log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    cat "$log" >&2
    say "failed ($status): $*"
  fi
  rm -f "$log"
  return "$status"
}

fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }

python_deps() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating .venv with $PYTHON"
    if ! quietly "$PYTHON" -m venv "$VENV"; then
      # Debian ships venv support in a package of its own.
      if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        say "installing python3-venv"
        rm -rf "$VENV"
        quietly apt-get update -qq
        DEBIAN_FRONTEND=noninteractive quietly apt-get install -y -qq python3-venv
        quietly "$PYTHON" -m venv "$VENV"
      else
        say "install python3-venv (or set PYTHON to an interpreter with venv)"
        return 1
      fi
    fi
  fi
  if ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    say ".venv has Python < 3.11: remove it and set PYTHON to python3.11 or later"
    return 1
  fi

  local stamp=$VENV/.hivegate-test-deps want
  want=$(fingerprint "$ROOT/pyproject.toml" "$VENV/pyvenv.cfg")
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && "$VENV/bin/python" -c 'import hivegate, pytest' 2>/dev/null; then
    return 0
  fi
  say "installing hivegate[test] into .venv"
  quietly "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[test]"
  printf '%s\n' "$want" >"$stamp"
}

node_tools_ok() {
  local version
  version=$("$TOOLS/node_modules/.bin/node" --version 2>/dev/null) || return 1
  [[ $version == v22.* ]] || return 1
  [ -f "$TOOLS/node_modules/@modelcontextprotocol/conformance/dist/index.js" ] || return 1
  [ -f "$TOOLS/node_modules/conformance-next/dist/index.js" ] || return 1
  [ -f "$TOOLS/node_modules/oidc-provider/package.json" ] || return 1
  [ -f "$TOOLS/node_modules/@modelcontextprotocol/sdk/package.json" ] || return 1
  [ -f "$TOOLS/node_modules/@modelcontextprotocol/inspector/package.json" ]
}

node_deps() {
  if ! command -v npm >/dev/null; then
    say "npm not found: install Node.js 20 or later with npm"
    return 1
  fi
  # npm ci empties node_modules first, so the stamp inside it goes whenever the tools are reinstalled.
  local stamp=$TOOLS/node_modules/.hivegate-test-deps want
  want=$(fingerprint "$TOOLS/package.json" "$TOOLS/package-lock.json")
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && node_tools_ok; then
    return 0
  fi
  say "installing tests/tools (npm ci)"
  quietly npm ci --prefix "$TOOLS" --no-audit --no-fund --loglevel=error
  if ! node_tools_ok; then
    say "tests/tools/node_modules/.bin/node is not a working Node 22 after npm ci"
    return 1
  fi
  printf '%s\n' "$want" >"$stamp"
}

# Debian packages for what is not on PATH: redis-server (Redis storage tests) and haproxy (the scale bench's smoke
# test: replicas behind a real load balancer). Debian installs haproxy in /usr/sbin.
system_deps() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
  [ "${#missing[@]}" -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null || ! sudo -n true 2>/dev/null; then
      say "${missing[*]} not found: install the package(s) (needs root or passwordless sudo)"
      return 1
    fi
    sudo=(sudo -n)
  fi
  if ! command -v apt-get >/dev/null; then
    say "${missing[*]} not found and there is no apt-get: install Redis 6.2 or later and HAProxy 2.4 or later"
    return 1
  fi
  say "installing ${missing[*]}"
  quietly "${sudo[@]}" apt-get update -qq
  quietly "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

system_deps
python_deps
node_deps
