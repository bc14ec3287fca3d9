# multilang-sandbox Bash kernel's cell: kernel.sh sources this file for each
# request, and it sources the request's script, so the script runs in the
# kernel's shell. SIGINT (timeout or cancel) returns with 130 from whichever
# of the two files runs; {"started": true} on the done fd tells the runner
# that from now on an interrupt stops the cell.

trap 'return 130' INT
printf '{"started": true}\n' >&"$__msb_done_fd"
source "$__msb_script" <"$__msb_stdin"
__msb_status=$?
trap '' INT
return "$__msb_status"
