# What the bench scripts share (sourced, bash): rates and per-job figures, and the CPU time of
# processes read from /proc.

clock_ticks=$(getconf CLK_TCK)

# cpu_seconds PID: user + system CPU seconds of one process so far (0 once it is gone).
cpu_seconds() { awk -v hz="$clock_ticks" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# tree_cpu PID: the same for a process and its live children (the postmaster and its backends).
# A child that ended in between is not counted, so the scripts' own psql sessions are left out.
tree_cpu() {
    local pid=$1 total=0 p
    for p in $pid $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do
        total=$(minus "$total" "-$(cpu_seconds "$p")")
    done
    echo "$total"
}

# tree_cpu_with_ended PID: tree_cpu plus the children that ended and were reaped (the process's
# cutime and cstime), for clients such as pgbench whose backends end before the second reading.
tree_cpu_with_ended() {
    minus "$(tree_cpu "$1")" "-$(awk -v hz="$clock_ticks" '{ sub(/^.*\) /, ""); printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0)"
}

# minus A B: A − B, 2 decimals.
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

# rate COUNT SECONDS: COUNT per second, whole ("n/a" for no time).
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "n/a" }'; }

# per VALUE COUNT [DIGITS]: VALUE / COUNT with DIGITS decimals (2).
per() { awk -v a="$1" -v n="$2" -v d="${3:-2}" 'BEGIN { if (n > 0) printf "%.*f", d, a / n; else print "n/a" }'; }

# per_job_ms SECONDS JOBS [DIGITS]: CPU milliseconds per job, DIGITS decimals (3); "n/a" when
# SECONDS is not a number (a side that did not run).
per_job_ms() { awk -v s="$1" -v n="$2" -v d="${3:-3}" 'BEGIN { if (s ~ /^[0-9.]+$/ && n > 0) printf "%.*f", d, 1000 * s / n; else print "n/a" }'; }
