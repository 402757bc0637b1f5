# Sourced by the bench scripts that run podman.
# podman (cgroupfs) makes /libpod_parent in every hierarchy and leaves it:
# remove it afterwards (only empty cgroups go) unless it was there before.
libpod_before=$(ls -d /sys/fs/cgroup/*/libpod_parent 2>/dev/null || true)
drop_libpod_parent() {
  [ -z "$libpod_before" ] || return 0
  for d in /sys/fs/cgroup/*/libpod_parent; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  return 0
}
