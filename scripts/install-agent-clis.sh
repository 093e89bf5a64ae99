#!/usr/bin/env bash
# Installs the real coding-agent CLIs that fugue's drivers were checked against, at pinned
# versions, into one directory (default ~/.cache/fugue/agent-clis), and prints the PATH to use:
#
#   eval "$(scripts/install-agent-clis.sh)"
#
# npm packages (Claude Code, Codex, Gemini CLI, opencode) go to $DIR/node_modules; aider, a
# Python program, to its own venv, $DIR/aider-venv. Already-installed versions are kept: a
# second run installs nothing. The end-to-end tests drive these CLIs against scripted model
# endpoints on 127.0.0.1: no model and no internet are needed once they are installed.
set -euo pipefail

DIR="${FUGUE_AGENT_CLIS_DIR:-$HOME/.cache/fugue/agent-clis}"
NPM_PACKAGES=(
  "@anthropic-ai/claude-code@2.1.328"
  "@openai/codex@0.169.0"
  "@google/gemini-cli@0.61.0"
  "opencode-ai@1.18.33"
)
AIDER_PACKAGE="aider-chat==0.86.2"
AIDER_VENV="$DIR/aider-venv"

say() { echo "install-agent-clis: $*" >&2; }
command -v npm >/dev/null 2>&1 || { say "npm is required: apt-get install -y nodejs npm"; exit 3; }
command -v python3 >/dev/null 2>&1 || { say "python3 (with venv) is required for aider: apt-get install -y python3 python3-venv"; exit 3; }

has_version() { # PATH-TO-BIN PATTERN
  [ -x "$1" ] && "$1" --version 2>/dev/null | grep -q "$2"
}

bin="$DIR/node_modules/.bin"
if ! { has_version "$bin/claude" '^2\.1\.328' && has_version "$bin/codex" '0\.169\.0' \
       && has_version "$bin/gemini" '^0\.61\.0' && has_version "$bin/opencode" '^1\.18\.33'; }; then
  mkdir -p "$DIR"
  say "npm install ${NPM_PACKAGES[*]} into $DIR"
  npm install --no-audit --no-fund --loglevel=error --prefix "$DIR" "${NPM_PACKAGES[@]}" >&2
fi

if ! has_version "$AIDER_VENV/bin/aider" '^aider 0\.86\.2$'; then
  say "python3 -m venv $AIDER_VENV && pip install $AIDER_PACKAGE"
  mkdir -p "$DIR"
  [ -x "$AIDER_VENV/bin/pip" ] || python3 -m venv "$AIDER_VENV" >&2
  "$AIDER_VENV/bin/pip" install --quiet --disable-pip-version-check "$AIDER_PACKAGE" >&2
fi

# The venv goes last: its python3, pip and the entry points of aider's dependencies must not
# shadow the system's.
echo "export PATH=\"$bin:\$PATH:$AIDER_VENV/bin\""
