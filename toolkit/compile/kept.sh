# shellcheck shell=sh
# A build in a kept state (compile/kept.py): the files the project no longer has are deleted from the copy, then
# the build runs. The mark that the state is changing ($W/.fromscratch/dirty, the first file sent in) goes only
# when the build ended by itself, passed or failed: a state whose build was stopped half-way (Ctrl-C, the
# container killed) is built from nothing the next time.
# $1: the work directory; the rest: build.sh's arguments.
W=$1; shift
S=$W/.fromscratch
# the build's output goes to standard error; standard output carries, when asked (FROMSCRATCH_OUT_TAR=1), the
# programs (out/) as a tar archive once the build passed: the host takes them from the same attachment
exec 4>&1 1>&2
# what dpkg said owns each input of a link: where the host says (the target's shared cache volume), else with the
# state (keyed on the build image's dpkg status either way)
FROMSCRATCH_DPKG_CACHE=${FROMSCRATCH_DPKG_CACHE:-$S/dpkg-owners}; export FROMSCRATCH_DPKG_CACHE
# the compiler cache, shared by every project built for the target, when this machine has ccache and the build
# is given a directory for it: paths under $W hashed relative to it, so that a fresh copy of a project hits
if [ -n "${FROMSCRATCH_CCACHE_DIR-}" ] && FROMSCRATCH_CCACHE=$(command -v ccache); then
  CCACHE_DIR=$FROMSCRATCH_CCACHE_DIR CCACHE_BASEDIR=$W CCACHE_NOHASHDIR=1
  export CCACHE_DIR CCACHE_BASEDIR CCACHE_NOHASHDIR FROMSCRATCH_CCACHE
fi
# A rebuild whose changes were made against the host's record of the state's last build ($S/expect, not empty):
# they apply only to the generation that build left, with no other change begun since (one cut short, here or
# from another machine, left its changing.* mark; a build stopped half-way left the dirty mark). Otherwise nothing
# is built: exit 75, the dirty mark left, and the host builds from nothing.
fs_new=$(cat "$S/generation.new" 2>/dev/null) || fs_new=''
fs_stale=''
if [ -s "$S/expect" ]; then
  [ "$(cat "$S/generation" 2>/dev/null)" = "$(cat "$S/expect")" ] && [ ! -e "$S/dirty" ] || fs_stale=1
  for fs_m in "$S"/changing.*; do
    if [ -e "$fs_m" ] && [ "$fs_m" != "$S/changing.$fs_new" ]; then fs_stale=1; fi
  done
  : > "$S/dirty"  # (the host sent no mark: it would have hidden one a stopped build left)
fi
rm -f "$S/expect" "$S/generation.new"
if [ -n "$fs_stale" ]; then exit 75; fi
if [ -n "$fs_new" ]; then printf '%s\n' "$fs_new" > "$S/generation"; fi
rm -f "$S"/changing.*
if [ -s "$S/gone" ]; then
  # NUL-separated paths, each ./ relative to src (no word of them is read as an option or as code)
  (cd "$W/src" && xargs -0 rm -rf -- < "$S/gone") || true
fi
rm -f "$S/gone"
if [ -s "$S/sent" ]; then
  # what a rebuild sent, touched by this machine's clock: newer than anything built from the copy it replaces
  (cd "$W/src" && xargs -0 touch -c -- < "$S/sent") || true
fi
rm -f "$S/sent"
sh "$W/tools/build.sh" "$@" 4>&-
code=$?
if [ "$code" -eq 0 ] && [ "${FROMSCRATCH_OUT_TAR-}" = 1 ]; then
  tar -c -f - -C "$W/out" . >&4 || code=$?
fi
rm -f "$S/dirty"
exit "$code"
