#!/usr/bin/env bash
# Echo throughput, latency and server CPU: the weft echo server against the same server run with
# std threads (`echo_server --threads`: std::net, one thread per connection), measured in one
# run with the project's load generator.
#
#   benches/echo.sh            # 3 interleaved repetitions of 5 s per cell
#   benches/echo.sh --quick    # 1 repetition of 1 s per cell
#
# The server is pinned to CPU 0 (weft with one worker), the client to CPU 1 (one worker), so
# neither steals the other's core. Each cell reports the median over repetitions, and min–max.
# Server CPU per message comes from utime+stime in /proc/<pid>/stat. The last section holds
# 10,000 idle connections open and reports the server's RSS per connection.
set -euo pipefail
cd "$(dirname "$0")/.."

reps=3 secs=5 warmup=1
if [[ "${1:-}" == "--quick" ]]; then reps=1 secs=1 warmup=0.5; fi
conns_grid=(1 100 1000 10000)
size_grid=(64 4096)
servers=(weft threads)
port=19000

cargo build --release --quiet --example echo_server --example echo_client
bin=target/release/examples
out=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$out"' EXIT
clk_tck=$(getconf CLK_TCK)

# Starts a server of kind $1 on $port; sets $server_pid once it listens.
start_server() {
  local flags=(--addr "127.0.0.1:$port")
  [[ "$1" == threads ]] && flags+=(--threads) || flags+=(--workers 1)
  taskset -c 0 "$bin/echo_server" "${flags[@]}" >"$out/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 200); do
    grep -q '^listening on' "$out/server.log" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "server $1 did not start:" >&2; cat "$out/server.log" >&2; exit 1
}

stop_server() { kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true; port=$((port + 1)); }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# One measurement: server kind, conns, size -> "msgs_per_sec p50 p99 p999 cpu_us_per_msg"
measure() {
  start_server "$1"
  local before after result
  before=$(cpu_ticks "$server_pid")
  result=$(taskset -c 1 "$bin/echo_client" --addr "127.0.0.1:$port" --workers 1 --conns "$2" \
    --size "$3" --duration "$secs" --warmup "$warmup" 2>"$out/client.err" | grep '^RESULT' || true)
  after=$(cpu_ticks "$server_pid")
  stop_server
  if [[ -z "$result" ]]; then echo "client failed:" >&2; cat "$out/client.err" >&2; exit 1; fi
  local msgs cpu_us
  msgs=$(field msgs "$result")
  cpu_us=$(awk -v t=$((after - before)) -v hz="$clk_tck" -v m="$msgs" \
    'BEGIN { printf "%.2f", (m > 0 ? t * 1e6 / hz / m : 0) }')
  echo "$(field msgs_per_sec "$result") $(field p50_us "$result") $(field p99_us "$result") $(field p999_us "$result") $cpu_us"
}

# Median and range of column $2 of file $1.
stat_col() {
  sort -g -k"$2","$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END {
    printf "%s|%s–%s", v[int((NR + 1) / 2)], v[1], v[NR] }'
}

echo "# echo: weft vs std threads ($reps reps × ${secs}s, server CPU0, client CPU1, $(date -u +%F))"
echo
echo "| conns | size | server | msgs/s (median, min–max) | p50 µs | p99 µs | p99.9 µs | server CPU µs/msg | msgs/s ratio weft/threads |"
echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|"
for conns in "${conns_grid[@]}"; do
  for size in "${size_grid[@]}"; do
    for rep in $(seq "$reps"); do
      for server in "${servers[@]}"; do
        measure "$server" "$conns" "$size" >>"$out/$server-$conns-$size"
      done
    done
    declare -A median=()
    for server in "${servers[@]}"; do
      f="$out/$server-$conns-$size"
      IFS='|' read -r med range <<<"$(stat_col "$f" 1)"
      median[$server]=$med
      p50=$(stat_col "$f" 2 | cut -d'|' -f1)
      p99=$(stat_col "$f" 3 | cut -d'|' -f1)
      p999=$(stat_col "$f" 4 | cut -d'|' -f1)
      cpu=$(stat_col "$f" 5 | cut -d'|' -f1)
      ratio=""
      if [[ "$server" == threads ]]; then
        ratio=$(awk -v a="${median[weft]}" -v b="$med" 'BEGIN { printf "%.2f×", (b > 0 ? a / b : 0) }')
      fi
      echo "| $conns | $size | $server | $med ($range) | $p50 | $p99 | $p999 | $cpu | $ratio |"
    done
  done
done

echo
echo "# memory: server RSS per idle connection at 10,000 connections"
echo
echo "| server | RSS before (KiB) | RSS at 10,000 conns (KiB) | bytes per connection |"
echo "|---|---:|---:|---:|"
for server in "${servers[@]}"; do
  start_server "$server"
  rss0=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")
  # One message per connection per 10 s: the connections are open and almost always idle.
  # The client runs until killed; the server is measured once it holds every connection (a
  # thread-per-connection server takes a while to accept them all).
  taskset -c 1 "$bin/echo_client" --addr "127.0.0.1:$port" --workers 1 --conns 10000 --size 64 \
    --duration 600 --rate 1000 >"$out/idle.out" 2>&1 &
  client=$!
  for _ in $(seq 1200); do
    [[ $(ls "/proc/$server_pid/fd" | wc -l) -ge 10000 ]] && break
    sleep 0.05
  done
  sleep 2
  rss1=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")
  kill "$client" 2>/dev/null; wait "$client" 2>/dev/null || true
  stop_server
  echo "| $server | $rss0 | $rss1 | $(( (rss1 - rss0) * 1024 / 10000 )) |"
done
