# Sourced by the scripts that start daemons (cluster.sh, dns.sh, s3.sh, kueue.sh): is a recorded
# daemon still alive, and still the process that was started?
#
#   daemon_alive PID WORD   true while PID runs and, where /proc shows our own pid namespace, its
#                           command line contains WORD (so a later process that reused the pid is
#                           not mistaken for it)
#
# The command line is empty while a process is in the middle of execve (hack/spawn.py starts
# `nsenter ... -- etcd`, and nsenter execs the daemon just as we look) and for a zombie. An empty
# read is looked at again; taken for dead only when the process is a zombie. Reading it as "exited"
# once made `make test` stop at "etcd exited while waiting for etcd" while etcd was starting.

# Does /proc show this shell's own pid namespace? Not always: a sandbox may run us in a pid
# namespace of our own under the host's /proc, where /proc/PID is some other process.
read -r _daemon_self_pid _ </proc/self/stat 2>/dev/null || _daemon_self_pid=
DAEMON_PROC_IS_OURS=false
[ "$_daemon_self_pid" = "$BASHPID" ] && DAEMON_PROC_IS_OURS=true

daemon_alive() { # pid word
  local p=$1 word=$2 cmd stat try
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 1
  $DAEMON_PROC_IS_OURS || return 0
  for try in 1 2 3 4 5; do
    cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || return 1
    if [ -n "$cmd" ]; then
      [[ $cmd == *"$word"* ]]
      return
    fi
    sleep 0.1
  done
  # Still empty: the third field after the parenthesised name in /proc/PID/stat is the state.
  stat=$(cat "/proc/$p/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}
