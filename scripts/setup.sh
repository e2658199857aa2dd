#!/usr/bin/env bash
# One-command setup for a fresh Debian/Ubuntu machine (no GPU, no ROS, no weights needed):
#   creates .venv in the repository root with pinned dependencies, adds ROS 2 Kilted rclpy and
#   message packages from PyPI when no ROS installation is sourced, installs this package, then
#   runs the embedded-default demo (`ffs-stereo demo`) unless --no-demo is given.
set -euo pipefail
cd "$(dirname "$0")/.."

run_demo=1
for arg in "$@"; do
  case "$arg" in
    --no-demo) run_demo=0 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (use --no-demo or --help)" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "setup.sh: Python >= 3.10 is needed (found: $("$python" --version 2>&1)); set PYTHON=/path/to/python3" >&2
  exit 2
fi

venv_args=()
if [ -n "${ROS_DISTRO:-}" ]; then
  # A sourced ROS installation provides rclpy and the messages: see them from the venv.
  venv_args+=(--system-site-packages)
  echo "setup.sh: using the sourced ROS 2 $ROS_DISTRO installation for rclpy and messages"
fi
[ -x .venv/bin/python ] || "$python" -m venv "${venv_args[@]}" .venv

pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install -r requirements.txt
# AutoCast's own dependency list would replace onnxruntime (CPU) by onnxruntime-gpu: install only what it imports
"${pip[@]}" install --no-deps -r requirements-autocast.txt
if [ -z "${ROS_DISTRO:-}" ]; then
  echo "setup.sh: no ROS installation sourced: installing ROS 2 Kilted rclpy + messages from PyPI"
  "${pip[@]}" install -r requirements-ros.txt
fi
"${pip[@]}" install --no-deps --no-build-isolation -e .
echo "setup.sh: environment ready in .venv (activate with: source .venv/bin/activate)"

if [ "$run_demo" = 1 ]; then
  .venv/bin/ffs-stereo demo --output output/demo
fi
