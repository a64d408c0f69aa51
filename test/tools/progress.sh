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

# heartbeat LABEL -> runs in the background until killed, saying every
# PULLSAFE_HEARTBEAT seconds that LABEL is still running and for how long.
# heartbeat -d DIR -> the same for what runs now: one file in DIR per task,
# named by it, holding its start (date +%s); says nothing while DIR is empty.
heartbeat() {
  local label=$1 dir= start=$SECONDS s= f now what
  if [ "$1" = -d ]; then dir=$2; fi
  # sleep is killed with the loop: a leftover sleep would hold the output
  # pipe open (`make test | tee`) for up to a heartbeat after the run.
  trap 'kill $s 2>/dev/null; exit 0' TERM
  while :; do
    sleep "${PULLSAFE_HEARTBEAT:-30}" & s=$!
    wait "$s"
    # The script that started it ($$, also in this subshell) gone without
    # stopping it (a TERM trap's exit skips the step's own kill): stop too,
    # rather than print "still ..." for ever from an orphan.
    kill -0 "$$" 2>/dev/null || exit 0
    if [ -z "$dir" ]; then
      echo "    ... still $label ($(dur $((SECONDS - start))); elapsed $(elapsed))" >&2
      continue
    fi
    what= now=$(date +%s)
    for f in "$dir"/*; do
      [ -f "$f" ] || continue
      what="$what${what:+, }${f##*/} ($(dur $((now - $(cat "$f" 2>/dev/null || echo "$now")))))"
    done
    [ -z "$what" ] || echo "    ... still $what (elapsed $(elapsed))" >&2
  done
}

# task DIR NAME CMD... -> runs CMD with DIR/NAME present meanwhile, for
# heartbeat -d DIR; returns CMD's status.
task() {
  local dir=$1 name=$2 rc=0
  shift 2
  date +%s >"$dir/$name"
  "$@" || rc=$?
  rm -f "$dir/$name"
  return "$rc"
}

# step N M LABEL CMD... -> runs CMD, announcing "[N/M] LABEL", a heartbeat
# while it runs (unless step_heartbeat=0: steps run side by side share one),
# and its wall and CPU time when it ends; returns CMD's status.
step() {
  local n=$1 m=$2 label=$3 start=$SECONDS tf hb= rc=0
  shift 3
  echo "[$n/$m] $label (elapsed $(elapsed))" >&2
  tf=$(mktemp "${TMPDIR:-/tmp}/pullsafe-step.XXXXXX")
  # progress_hb: the running step's heartbeat, for the caller's exit trap
  # (progress_stop) when the script exits mid-step.
  if [ "${step_heartbeat:-1}" != 0 ]; then heartbeat "$label" & hb=$! progress_hb=$!; fi
  # A subshell of its own, so `times` counts this step's commands only.
  ( set +e; "$@"; rc=$?; times >"$tf"; exit "$rc" ) || rc=$?
  if [ -n "$hb" ]; then kill "$hb" 2>/dev/null; wait "$hb" 2>/dev/null || true; progress_hb=; fi
  local cpu
  cpu=$(cpu_of "$tf" 2>/dev/null); rm -f "$tf"
  if [ "$rc" -eq 0 ]; then
    echo "[$n/$m] $label: done in $(dur $((SECONDS - start))), CPU $(dur "${cpu:-0}") (elapsed $(elapsed))" >&2
  else
    echo "[$n/$m] $label: FAILED (exit $rc) after $(dur $((SECONDS - start))) (elapsed $(elapsed))" >&2
  fi
  return "$rc"
}

# progress_stop -> stops the heartbeat of a step the script exits in the
# middle of (a TERM trap's exit): left running, it would print for ever and
# hold a pipe reading the output (`make test | tee`) open.
progress_stop() {
  if [ -n "${progress_hb:-}" ]; then kill "$progress_hb" 2>/dev/null || true; progress_hb=; fi
}
