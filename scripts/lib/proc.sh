# shellcheck shell=bash
# Process checks shared by the start/stop scripts of the test servers (sourced, not run).

running() { # pid $1 exists and is not a zombie (a killed server is one until it is reaped)
    local s
    read -r s 2>/dev/null <"/proc/$1/stat" || return 1
    s=${s##*) }
    [[ ${s%% *} != Z ]]
}

cmdline_of() { # the command line of pid $1, arguments joined by spaces; empty for a process exiting
    tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" || true
}
