# Progress lines for test/run.sh and test/tools/build.sh (sourced, not run):
# a first run on a cold 2-core machine spends many minutes compiling, and a
# command that prints nothing for minutes looks hung. Plain lines only, no
# carriage returns: they read the same in a terminal and in a CI log.
#
#   PULLSAFE_HEARTBEAT  seconds between "still ..." lines (default 30)

progress_t0=${progress_t0:-$SECONDS}

# dur SECONDS -> 1m23s
dur() { local s=$1; if [ "$s" -ge 60 ]; then echo "$((s / 60))m$((s % 60))s"; else echo "${s}s"; fi; }

# elapsed -> time since the run began, as dur prints it
elapsed() { dur $((SECONDS - progress_t0)); }

# cpu_of FILE -> "1m50s" from the children line of bash's `times` in FILE
# (user+sys of everything the step ran, compilers included: go waits for them).
cpu_of() { awk 'NR==2 { n = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += a[1] * 60 + a[2] } printf "%d\n", n }' "$1"; }

# heartbeat LABEL [DIR] -> runs in the background until killed, saying every
# PULLSAFE_HEARTBEAT seconds that LABEL is still running and for how long;
# with DIR, LABEL is followed by the names of the files in DIR (what is
# running now), and nothing is said while DIR is empty.
heartbeat() {
  local label=$1 dir=${2:-} start=$SECONDS s= what
  # sleep is killed with the loop: a leftover sleep would hold the output
  # pipe open (`make test | tee`) for up to a heartbeat after the run.
  trap 'kill $s 2>/dev/null; exit 0' TERM
  while :; do
    sleep "${PULLSAFE_HEARTBEAT:-30}" & s=$!
    wait "$s"
    what=$label
    if [ -n "$dir" ]; then
      what=$(ls "$dir" 2>/dev/null | paste -sd, - | sed 's/,/, /g')
      [ -n "$what" ] || continue
      what="$label $what"
    fi
    echo "    ... still $what ($(dur $((SECONDS - start))); elapsed $(elapsed))" >&2
  done
}

# step N M LABEL CMD... -> runs CMD, announcing "[N/M] LABEL", a heartbeat
# while it runs (unless step_heartbeat=0: steps run side by side share one),
# and its wall and CPU time when it ends; returns CMD's status.
step() {
  local n=$1 m=$2 label=$3 start=$SECONDS tf hb= rc=0
  shift 3
  echo "[$n/$m] $label (elapsed $(elapsed))" >&2
  tf=$(mktemp)
  if [ "${step_heartbeat:-1}" != 0 ]; then heartbeat "$label" & hb=$!; fi
  # A subshell of its own, so `times` counts this step's commands only.
  ( set +e; "$@"; rc=$?; times >"$tf"; exit "$rc" ) || rc=$?
  if [ -n "$hb" ]; then kill "$hb" 2>/dev/null; wait "$hb" 2>/dev/null || true; fi
  local cpu
  cpu=$(cpu_of "$tf"); rm -f "$tf"
  if [ "$rc" -eq 0 ]; then
    echo "[$n/$m] $label: done in $(dur $((SECONDS - start))), CPU $(dur "${cpu:-0}") (elapsed $(elapsed))" >&2
  else
    echo "[$n/$m] $label: FAILED (exit $rc) after $(dur $((SECONDS - start))) (elapsed $(elapsed))" >&2
  fi
  return "$rc"
}
