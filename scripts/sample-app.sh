# Sourced by the scripts that need a local target: `serve_sample_app ARGS...` starts
# target/release/sample-app (built by the caller) on a free loopback port with ARGS, waits until
# it listens, and sets `addr` (127.0.0.1:PORT). `stop_sample_apps` ends every one started; call
# it from the caller's EXIT trap.
sample_app_pids=()
sample_app_logs=$(mktemp -d)

serve_sample_app() {
  local log=$sample_app_logs/${#sample_app_pids[@]}.log
  target/release/sample-app --listen 127.0.0.1:0 "$@" > "$log" 2>&1 &
  sample_app_pids+=($!)
  addr=
  for _ in $(seq 100); do
    addr=$(sed -n 's|^listening on \(.*\)$|\1|p' "$log" | head -n 1)
    [ -n "$addr" ] && return 0
    sleep 0.05
  done
  echo "$(basename "$0"): sample-app did not start: $(cat "$log")" >&2
  exit 1
}

stop_sample_apps() {
  [ ${#sample_app_pids[@]} -eq 0 ] || kill "${sample_app_pids[@]}" 2>/dev/null || true
  sample_app_pids=()
  rm -rf "$sample_app_logs"
}
