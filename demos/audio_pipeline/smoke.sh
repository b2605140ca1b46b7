#!/usr/bin/env bash
# Smoke test of audio_pipeline: records about a second, then checks the summary and, with
# wav_check, the WAV file itself (length, format, an unbroken tone of the right frequency).
#
#   smoke.sh simulated DEMO WAV_CHECK WORKDIR    on the simulated device
#   smoke.sh jack DEMO WAV_CHECK WORKDIR         on a private JACK server (dummy backend) that it
#                                                starts and stops; exit 77 (skip) without one
set -euo pipefail
mode=$1 demo=$2 checker=$3 workdir=$4
rate=48000 period=256 channels=2 frequency=440 seconds=1
mkdir -p "$workdir"
wav="$workdir/smoke_$mode.wav"
out="$workdir/smoke_$mode.out"
rm -f "$wav" "$out"

if [ "$mode" = jack ]; then
  if ! command -v jackd >/dev/null || ! command -v jack_wait >/dev/null; then
    echo "SKIP: jackd (Debian package jackd2) is not installed"
    exit 77
  fi
  # A server of our own, under a unique name, so that parallel runs and a user's server never meet.
  export JACK_DEFAULT_SERVER="sluice_smoke_$$_$RANDOM"
  jackd -n "$JACK_DEFAULT_SERVER" -d dummy -r "$rate" -p "$period" >"$workdir/jackd.log" 2>&1 &
  jackd_pid=$!
  trap 'kill "$jackd_pid" 2>/dev/null || true; wait "$jackd_pid" 2>/dev/null || true' EXIT
  # Up to 10 s for the server to come up; a jackd that exits (no permission for its shared
  # memory, say) ends the wait at once.
  for attempt in 1 2 3 4 5; do
    jack_wait -s "$JACK_DEFAULT_SERVER" -w -t 1 >/dev/null 2>&1 && break
    if ! kill -0 "$jackd_pid" 2>/dev/null || [ "$attempt" = 5 ]; then
      echo "SKIP: the JACK server did not start:"
      cat "$workdir/jackd.log"
      exit 77
    fi
  done
  slack=$((4 * period))  # the server may be a period or two into its cycle when we join
else
  slack=$((2 * period))  # the device produces whole periods: at most one beyond seconds * rate
fi

"$demo" --device "$mode" --seconds "$seconds" --rate "$rate" --period "$period" --channels "$channels" \
  --frequency "$frequency" --block 1000 --output "$wav" | tee "$out"

fail() { echo "FAIL: $*"; exit 1; }
grep -q "^device: $mode, $rate Hz, $period frames per period$" "$out" ||
  fail "the summary does not name the $mode device at $rate Hz"
grep -q '^overruns: 0 ' "$out" || fail "the summary reports overruns"
written=$(sed -n 's/^frames written: \([0-9]*\) .*/\1/p' "$out")
[ -n "$written" ] || fail "the summary has no 'frames written'"
"$checker" "$wav" --rate "$rate" --channels "$channels" --frequency "$frequency" \
  --frames "$written" --near $((seconds * rate)) --slack "$slack"
