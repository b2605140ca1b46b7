#!/bin/sh
# Runs rate_mismatch under a pseudo-terminal (script(1) from util-linux) and checks that the live
# view redraws in place: cursor up over the block and clear-line escapes, more than once, and
# the summary after it. Exit 77 (skipped) where script(1) is missing.
demo=$1
command -v script >/dev/null 2>&1 || { echo "script(1) not found: skipped"; exit 77; }
out=$(script -qec "'$demo' --seconds 1 --policy drop --capacity 1000 --random" /dev/null </dev/null) || {
  echo "rate_mismatch failed under a terminal:"; printf '%s\n' "$out"; exit 1; }
printf '%s\n' "$out" | cat -v | tail -n 20
esc=$(printf '\033')
redraws=$(printf '%s\n' "$out" | grep -c "${esc}\[5A")
clears=$(printf '%s\n' "$out" | grep -c "${esc}\[2K")
echo "redraws: $redraws, cleared lines: $clears"
[ "$redraws" -ge 2 ] || { echo "expected the view to move the cursor up to redraw in place"; exit 1; }
[ "$clears" -ge 10 ] || { echo "expected cleared lines (ESC[2K) at each redraw"; exit 1; }
printf '%s\n' "$out" | grep -q "^verified: every item in order" || { echo "summary lacks its verdict"; exit 1; }
