# multilang-sandbox Bash kernel. Started by runner.py as
# `bash --noprofile --norc kernel.sh`; reads one line per request from fd
# $SANDBOX_CTL_FD (`export …; __msb_script=…; __msb_stdin=…`), sources the
# script in this shell through kernel_cell.sh (not in a function, so
# `declare` and `local`-free variables, functions, exports and the working
# directory all persist), and writes {"exit_code": N} to fd $SANDBOX_DONE_FD
# when done.
# SIGINT (timeout or cancel) returns from the script and keeps the shell;
# `exit` in user code ends the kernel (the runner restarts it and reports
# that state was lost).

__msb_ctl_fd=$SANDBOX_CTL_FD
__msb_done_fd=$SANDBOX_DONE_FD
unset SANDBOX_CTL_FD SANDBOX_DONE_FD
__msb_cell=${BASH_SOURCE[0]%/*}/kernel_cell.sh

trap '' INT
printf '{"ready":true}\n' >&"$__msb_done_fd"
while IFS= read -r -u "$__msb_ctl_fd" __msb_line; do
    eval "$__msb_line"
    source "$__msb_cell"
    __msb_status=$?
    trap '' INT
    printf '{"exit_code":%d}\n' "$__msb_status" >&"$__msb_done_fd"
done
