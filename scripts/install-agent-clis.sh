#!/usr/bin/env bash
# Installs the real coding-agent CLIs that fugue's drivers were checked against, at pinned
# versions, into one directory (default ~/.cache/fugue/agent-clis), and prints the PATH to use:
#
#   eval "$(scripts/install-agent-clis.sh)"
#
# Already-installed versions are kept. The end-to-end tests drive these CLIs against scripted
# model endpoints on 127.0.0.1: no model and no internet are needed once they are installed.
set -euo pipefail

DIR="${FUGUE_AGENT_CLIS_DIR:-$HOME/.cache/fugue/agent-clis}"
NPM_PACKAGES=("@anthropic-ai/claude-code@2.1.328" "@openai/codex@0.169.0")

say() { echo "install-agent-clis: $*" >&2; }
command -v npm >/dev/null 2>&1 || { say "npm is required: apt-get install -y nodejs npm"; exit 3; }

has_version() { # BIN PATTERN
  [ -x "$DIR/node_modules/.bin/$1" ] && "$DIR/node_modules/.bin/$1" --version 2>/dev/null | grep -q "$2"
}

if ! { has_version claude '^2\.1\.328' && has_version codex '0\.169\.0'; }; then
  mkdir -p "$DIR"
  say "npm install ${NPM_PACKAGES[*]} into $DIR"
  npm install --no-audit --no-fund --loglevel=error --prefix "$DIR" "${NPM_PACKAGES[@]}" >&2
fi

echo "export PATH=\"$DIR/node_modules/.bin:\$PATH\""
