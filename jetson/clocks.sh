#!/usr/bin/env bash
# Power mode and clocks, printed before and after any change (benchmarks record both).
#   jetson/clocks.sh              show the nvpmodel mode and whether jetson_clocks pinned the clocks
#   sudo jetson/clocks.sh max     jetson_clocks (clocks pinned at their maximum for this power mode)
#   sudo jetson/clocks.sh mode N  nvpmodel -m N (e.g. 0 = MAXN; JetPack 6.2 adds the 25 W "super" modes)
#   sudo jetson/clocks.sh restore jetson_clocks --restore (from the state saved by `max`)
set -euo pipefail

if [[ ! -r /etc/nv_tegra_release ]]; then
  echo "clocks.sh: not a Jetson (/etc/nv_tegra_release not found)" >&2
  exit 2
fi
state=${XDG_STATE_HOME:-$HOME/.local/state}/hrm-edge/jetson_clocks.conf

show() {
  echo "L4T: $(head -n1 /etc/nv_tegra_release)"
  nvpmodel -q 2>/dev/null | sed -n 's/^NV Power Mode: /power mode: /p' || echo "power mode: unknown (nvpmodel)"
  if jetson_clocks --show >/dev/null 2>&1; then
    jetson_clocks --show | grep -E '^(cpu[0-9]+|GPU|EMC)' || true
  else
    echo "jetson_clocks: state needs root (sudo $0)"
  fi
}

case "${1:-show}" in
  show) show ;;
  max) mkdir -p "$(dirname "$state")"; jetson_clocks --store "$state"; jetson_clocks; show ;;
  restore) jetson_clocks --restore "$state"; show ;;
  mode) [[ $# -eq 2 ]] || { echo "usage: $0 mode N" >&2; exit 2; }; nvpmodel -m "$2"; show ;;
  *) echo "usage: $0 [show|max|restore|mode N]" >&2; exit 2 ;;
esac
