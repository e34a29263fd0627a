#!/usr/bin/env bash
# HTTP plaintext throughput, measured with wrk in one run: weft's `http_hello` example against
# may_minihttp (benches/src/bin/http_may.rs) and hyper on tokio (benches/src/bin/http_hyper.rs),
# each with 1 and 2 workers, without and with pipelining. Every server answers
# `GET /plaintext` with `Hello, World!`, as TechEmpower's plaintext test asks.
#
#   benches/http.sh            # 3 interleaved repetitions of 10 s per cell, 2 s warm-up
#   benches/http.sh --quick    # 1 repetition of 3 s per cell, 1 s warm-up
#
# Needs wrk (benches/setup.sh installs it) and two CPUs.
#
# 1. Build: the example and the two peers, release, into cargo's target dir (CARGO_TARGET_DIR
#    is honoured).
# 2. Check each server once: two pipelined `GET /plaintext` must get two 200s with the body,
#    and an unknown path a 404.
# 3. For each row (workers × pipelining), for each repetition, for each server in turn (the
#    order rotates: A B C, B C A, C A B, ...): start the server on a fresh port, run wrk for
#    the warm-up and throw that away, run wrk for the measurement, stop the server.
# 4. Print a markdown table: median requests/s per server with min–max, and weft's ratio to
#    each peer. A second table gives the CPU that the server, wrk and everything else used in
#    each cell (/proc/<pid>/stat, bash's `time`, /proc/stat): a wrk near 100% of its CPU says
#    the client, not the server, set that cell's pace.
#
# Pinning: wrk runs one thread (`-t1`) on CPU 1. A 1-worker server is pinned to CPU 0 and has
# it alone. A 2-worker server cannot: it runs on CPUs 0 and 1 and shares CPU 1 with wrk, and
# its rows say so. Nothing keeps other processes off these CPUs: the script warns when they
# are busy as it starts, and marks `~` a cell during which anything else used more than 15%
# of a CPU.
#
# Load: 256 connections, the lowest level of TechEmpower's plaintext test (256 to 16,384
# connections), the load these peers are usually compared at; one wrk thread keeps them all
# busy. Pipelined rows send 16 requests per write (benches/wrk/pipeline.lua), TechEmpower's
# depth, so 4,096 requests are in flight. One wrk thread on one CPU tops out near the speed of
# a one-core server: the CPU table shows which cells it limited.
#
# Errors: wrk's "Socket errors" and "Non-2xx or 3xx responses" lines are printed as they
# happen. A cell whose errors exceed 0.01% of its requests is marked `!` in the table, and
# the script then exits 1.
#
# WEFT_HTTP_BIN=/path/to/server replaces the weft column's server: any binary taking
# `--addr ADDR --workers N` and printing `listening on ADDR` once bound. Use it to compare
# two builds of weft (copy one build's `http_hello` aside, rebuild, point this at the copy:
# the peer columns then serve as the yardstick between the two runs).
set -euo pipefail

# One group, parsed whole before it runs: editing this file during a run cannot derail the run.
{
cd "$(dirname "$0")/.."

reps=3 secs=10 warmup=2
case "${1:-}" in
  "") ;;
  --quick) reps=1 secs=3 warmup=1 ;;
  *) echo "usage: benches/http.sh [--quick]" >&2; exit 2 ;;
esac
conns=256
depth=16
max_error_ppm=100 # 0.01% of a cell's requests: stray errors as connections open and close
# % of one CPU that everything but the server and wrk may use during a cell before the cell is
# marked noisy. On an idle machine it is the loopback's interrupt time: a few %.
max_other_cpu=15
servers=(weft may_minihttp hyper)
port=19100

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk is not on PATH: run benches/setup.sh" >&2; exit 1
fi
if ! taskset -c 1 true 2>/dev/null; then
  echo "needs CPUs 0 and 1: the server runs on one, wrk on the other" >&2; exit 1
fi

cargo build --release --quiet -p weft-bench --bin http_may --bin http_hyper
if [[ -z "${WEFT_HTTP_BIN:-}" ]]; then cargo build --release --quiet --example http_hello; fi
target=$(cargo metadata --no-deps --format-version 1 |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
declare -A bin=(
  [weft]=${WEFT_HTTP_BIN:-$target/release/examples/http_hello}
  [may_minihttp]=$target/release/http_may
  [hyper]=$target/release/http_hyper
)
for s in "${servers[@]}"; do
  [[ -x "${bin[$s]}" ]] || { echo "$s: ${bin[$s]} is not an executable" >&2; exit 1; }
done

out=$(mktemp -d)
clk_tck=$(getconf CLK_TCK)
server_pid=
trap '[[ -n "$server_pid" ]] && kill -KILL "$server_pid" 2>/dev/null; rm -rf "$out"' EXIT

# Ticks all CPUs spent busy (anything but idle and iowait) since boot, from /proc/stat.
busy_ticks() { awk 'NR == 1 { for (f = 2; f <= NF; f++) t += $f; print t - $5 - $6 }' /proc/stat; }

busy0=$(busy_ticks)
sleep 1
busy=$((($(busy_ticks) - busy0) * 100 / clk_tck))
if ((busy > max_other_cpu)); then
  echo "warning: other processes kept ${busy}% of a CPU busy before the run: expect noise" >&2
fi

alive() { [[ -n "$(ps -o stat= -p "$1" 2>/dev/null | grep -v '^Z')" ]]; }

# Starts server $1 with $2 workers on $port (or the next port nothing listens on: an
# SO_REUSEPORT server would otherwise share a port with a stray one); sets $server_pid once it
# listens.
start_server() {
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  local cpus=0
  [[ "$2" -gt 1 ]] && cpus=0,1
  taskset -c "$cpus" "${bin[$1]}" --addr "127.0.0.1:$port" --workers "$2" >"$out/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 200); do
    grep -q '^listening on' "$out/server.log" && return 0
    alive "$server_pid" || break
    sleep 0.05
  done
  echo "server $1 (${bin[$1]}) did not start:" >&2; cat "$out/server.log" >&2; exit 1
}

# SIGTERM (weft's example then drains gracefully), SIGKILL after 5 s; the next server gets a
# fresh port, so none has to wait for the last one's sockets.
stop_server() {
  kill "$server_pid" 2>/dev/null || true
  for _ in $(seq 100); do alive "$server_pid" || break; sleep 0.05; done
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  port=$((port + 1))
}

# Sends two pipelined GET /plaintext and a GET for an unknown path on one connection; fails
# unless the answers are 200, 200 (both with the body) and 404. A server that keeps the
# connection open after the last answer is cut off after 1 s.
check_server() {
  local get="GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
  local last="GET /missing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
  local reply
  reply=$(timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; printf "$2$2$3" >&3; cat <&3' \
    _ "$port" "$get" "$last" || true)
  if [[ $(grep -o 'HTTP/1.1 200' <<<"$reply" | wc -l) -ne 2 ||
    $(grep -o 'Hello, World!' <<<"$reply" | wc -l) -ne 2 ||
    $(grep -o 'HTTP/1.1 404' <<<"$reply" | wc -l) -ne 1 ]]; then
    echo "server $1 answered wrongly; its reply:" >&2; printf '%s\n' "$reply" >&2; exit 1
  fi
}

# Runs wrk for $1 seconds against $port, pipelined if $2 is `pipe`. Its report goes to
# $out/wrk.out, and the CPU it used (user + system over wall time, % of one CPU) to
# $out/wrk.cpu.
run_wrk() {
  local args=(-t1 -c"$conns" -d"$1s")
  [[ "$2" == pipe ]] && args+=(-s benches/wrk/pipeline.lua)
  args+=("http://127.0.0.1:$port/plaintext")
  [[ "$2" == pipe ]] && args+=(-- "$depth")
  local TIMEFORMAT=%P
  { time taskset -c 1 wrk "${args[@]}" >"$out/wrk.out" 2>&1 || true; } 2>"$out/wrk.cpu"
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# One cell: server $1, $2 workers, mode $3. Appends "req/s requests errors server% wrk% other%"
# to its file: the CPU the server, wrk and everything else (other processes, interrupts) used
# during the measurement, in % of one CPU.
measure() {
  local label="$1, $2 worker(s), pipelined"
  [[ "$3" == plain ]] && label="$1, $2 worker(s), no pipelining"
  start_server "$1" "$2"
  run_wrk "$warmup" "$3"
  local ticks0 ticks1 busy0 busy1 start end
  ticks0=$(cpu_ticks "$server_pid") busy0=$(busy_ticks) start=$EPOCHREALTIME
  run_wrk "$secs" "$3"
  ticks1=$(cpu_ticks "$server_pid") busy1=$(busy_ticks) end=$EPOCHREALTIME
  stop_server
  local report rps requests errors server_cpu wrk_cpu all_cpu other_cpu
  report=$(<"$out/wrk.out")
  rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$report")
  requests=$(awk '/ requests in / { print $1 }' <<<"$report")
  if [[ -z "$rps" || -z "$requests" ]]; then
    echo "wrk failed for $label:" >&2; printf '%s\n' "$report" >&2; exit 1
  fi
  # "Socket errors: connect 0, read 0, write 0, timeout 0" and "Non-2xx or 3xx responses: N".
  errors=$(awk '/Socket errors:/ { gsub(",", ""); e += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { e += $NF } END { print e + 0 }' <<<"$report")
  grep -E 'Socket errors|Non-2xx' <<<"$report" | sed "s/^ */  wrk, $label: /" >&2 || true
  local pct="BEGIN { printf \"%.0f\", t * 100 / $clk_tck / ($end - $start) }"
  server_cpu=$(awk -v t=$((ticks1 - ticks0)) "$pct")
  wrk_cpu=$(awk '{ printf "%.0f", $1 }' "$out/wrk.cpu")
  all_cpu=$(awk -v t=$((busy1 - busy0)) "$pct")
  # The kernel's per-CPU and per-task clocks differ by a few %: a small negative rest is 0.
  other_cpu=$((all_cpu - server_cpu - wrk_cpu))
  ((other_cpu < 0)) && other_cpu=0
  echo "  $label: $rps req/s; CPU: server $server_cpu%, wrk $wrk_cpu%, other $other_cpu%" >&2
  echo "$rps $requests $errors $server_cpu $wrk_cpu $other_cpu" >>"$out/$1-$2-$3"
}

# Req/s in file $1, as "median|min–max|median unformatted", with thousands separators.
summarize() {
  sort -g "$1" | awk 'function commas(x,   s, r) {
      s = sprintf("%.0f", x); r = ""
      while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
      return s r
    }
    { v[NR] = $1 }
    END { m = v[int((NR + 1) / 2)]; printf "%s|%s–%s|%.0f\n", commas(m), commas(v[1]), commas(v[NR]), m }'
}

# The median of column $2 of file $1.
median_of() { sort -g -k"$2","$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'; }

# The worst error rate in file $1, in parts per million of the requests.
worst_ppm() { awk '{ p = $3 * 1e6 / ($2 > 0 ? $2 : 1); if (p > w) w = p } END { printf "%.0f", w }' "$1"; }

# The most CPU anything but the server and wrk used in one repetition in file $1.
worst_other() { sort -g -k6,6 "$1" | awk 'END { print $6 }'; }

# weft's median over peer $1's, in the row being summarized.
ratio() { awk -v a="${median[weft]}" -v b="${median[$1]}" 'BEGIN { printf "%.2f×", (b > 0 ? a / b : 0) }'; }

for s in "${servers[@]}"; do
  start_server "$s" 1
  check_server "$s"
  stop_server
done

bad=0 noisy=0
rows=() cpu_rows=()
for workers in 1 2; do
  for mode in plain pipe; do
    for rep in $(seq "$reps"); do
      for i in "${!servers[@]}"; do
        measure "${servers[$(((i + rep - 1) % ${#servers[@]}))]}" "$workers" "$mode"
      done
    done
    declare -A cell=() median=() cpu=()
    for s in "${servers[@]}"; do
      f="$out/$s-$workers-$mode"
      IFS='|' read -r med range median[$s] <<<"$(summarize "$f")"
      cell[$s]=$med
      ((reps > 1)) && cell[$s]+=" ($range)"
      if (($(worst_ppm "$f") > max_error_ppm)); then cell[$s]+=" !"; bad=1; fi
      if (($(worst_other "$f") > max_other_cpu)); then cell[$s]+=" ~"; noisy=1; fi
      cpu[$s]="$(median_of "$f" 4) / $(median_of "$f" 5) / $(median_of "$f" 6)"
    done
    placement="1, alone on CPU0"
    ((workers > 1)) && placement="$workers, CPUs 0–1: shares cores with wrk"
    pipelining=none
    [[ $mode == pipe ]] && pipelining="$depth per write"
    row="$placement | $pipelining"
    rows+=("| $row | ${cell[weft]} | ${cell[may_minihttp]} | ${cell[hyper]} | $(ratio may_minihttp) | $(ratio hyper) |")
    cpu_rows+=("| $row | ${cpu[weft]} | ${cpu[may_minihttp]} | ${cpu[hyper]} |")
  done
done

summary="median (min–max)"
((reps == 1)) && summary="one run"
echo
echo "# HTTP plaintext: weft vs may_minihttp vs hyper"
echo
echo "$reps rep(s) × ${secs} s per cell after a ${warmup} s warm-up, interleaved;" \
  "\`wrk -t1 -c$conns\` on CPU1; $(nproc) CPUs; $(date -u +%F)."
echo "weft: \`${bin[weft]}\`${WEFT_HTTP_BIN:+ (WEFT_HTTP_BIN)}. Requests/s, $summary:"
echo
echo "| server workers | pipelining | weft | may_minihttp | hyper | weft/may_minihttp | weft/hyper |"
echo "|---|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
echo "CPU used during the measurement, server / wrk / everything else, in % of one CPU"
echo "(median). wrk near 100% means the client, not the server, set the pace of that cell."
echo
echo "| server workers | pipelining | weft | may_minihttp | hyper |"
echo "|---|---|---:|---:|---:|"
printf '%s\n' "${cpu_rows[@]}"
if ((noisy)); then
  echo
  echo "~ other processes used more than $max_other_cpu% of a CPU during that cell: rerun it on a quiet machine."
fi
if ((bad)); then
  echo
  echo "! wrk counted errors above 0.01% of the requests in that cell: see its lines above."
  exit 1
fi
exit 0
}
