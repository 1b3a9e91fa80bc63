#!/usr/bin/env bash
# Interactive use of the GIMP plug-in under a virtual X display (run by tests/hosts/gimp_test.py
# inside xvfb-run): opens the Sprites dialog, asks for 1024 sprites at 64 steps, presses OK, waits
# for the progress dialog, presses its Cancel and reports how long GIMP took to finish and how
# many images it then had. Without a window manager the dialogs sit at the screen's top left.
#   gimp_cancel.sh PROFILE
set -uo pipefail
PROFILE=$1
GIMP2_DIRECTORY=$PROFILE gimp-console-2.10 -i -d -f -n \
    -b '(plug-in-lediflow-sample RUN-INTERACTIVE "" 16 7 4)' \
    -b '(gimp-message (string-append "images-after-cancel: " (number->string (car (gimp-image-list)))))' \
    -b '(gimp-quit 0)' > "$PROFILE/cancel.log" 2>&1 &
find_window() { # name seconds
    for _ in $(seq 1 $(($2 * 2))); do
        id=$(xdotool search --name "$1" 2>/dev/null | head -1)
        [ -n "$id" ] && { echo "$id"; return; }
        sleep 0.5
    done
}
dialog=$(find_window "Sprites \(lediflow\)" 90)
[ -n "$dialog" ] || { echo "no settings dialog"; kill %1; exit 1; }
sleep 1
eval "$(xdotool getwindowgeometry --shell "$dialog")"
# The Count and Steps spin buttons (rows 1 and 3 of the table under the model chooser), then OK.
xdotool mousemove $((X + 200)) $((Y + 61)) click --repeat 3 1 && sleep 0.3 && xdotool type 1024
xdotool mousemove $((X + 200)) $((Y + 119)) click --repeat 3 1 && sleep 0.3 && xdotool type 64
sleep 0.3
xdotool mousemove $((X + WIDTH - 45)) $((Y + HEIGHT - 20)) click 1
progress=$(find_window "Sampling sprites" 30)
[ -n "$progress" ] || { echo "no progress dialog"; kill %1; exit 1; }
sleep 2
eval "$(xdotool getwindowgeometry --shell "$progress")"
xdotool mousemove $((X + WIDTH - 45)) $((Y + HEIGHT - 20)) click 1
t0=$(date +%s%3N)
wait
echo "progress-dialog-seen finished-after-cancel-ms: $(($(date +%s%3N) - t0))"
