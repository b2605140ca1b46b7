#!/usr/bin/env bash
# Instructions per operation (one push and one pop, or one record written and read) of every
# body of bench_instructions, counted by callgrind: the difference between 2000 and 1000
# rounds of 256, divided by 256000. Needs valgrind and the release build:
#   cmake --preset release && cmake --build --preset release --target bench_instructions
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./build/release/bench/bench_instructions
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 | awk '/Collected/{print $4}'; }
for body in spsc_ring_no_waiting spsc_ring_waitable boost_spsc_queue spsc_record_ring_no_waiting \
            spsc_record_ring_waitable mpsc_record_ring_no_waiting mpsc_record_ring_waitable boost_queue; do
  a=$(count "$body" 1000)
  b=$(count "$body" 2000)
  echo "$body: $(( (b - a) / 256000 )) instructions per operation"
done
