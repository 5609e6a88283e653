# shellcheck shell=sh
# A build in a kept state (compile/kept.py): the files the project no longer has are deleted from the copy, then
# the build runs. The mark that the state is changing ($W/.fromscratch/dirty, the first file sent in) goes only
# when the build ended by itself, passed or failed: a state whose build was stopped half-way (Ctrl-C, the
# container killed) is built from nothing the next time.
# $1: the work directory; the rest: build.sh's arguments.
W=$1; shift
S=$W/.fromscratch
# what dpkg said owns each input of a link, kept with the state (a state's build image, its dpkg, never changes)
FROMSCRATCH_DPKG_CACHE=${FROMSCRATCH_DPKG_CACHE:-$S/dpkg-owners}; export FROMSCRATCH_DPKG_CACHE
# the compiler cache, shared by every project built for the target, when this machine has ccache and the build
# is given a directory for it: paths under $W hashed relative to it, so that a fresh copy of a project hits
if [ -n "${FROMSCRATCH_CCACHE_DIR-}" ] && FROMSCRATCH_CCACHE=$(command -v ccache); then
  CCACHE_DIR=$FROMSCRATCH_CCACHE_DIR CCACHE_BASEDIR=$W CCACHE_NOHASHDIR=1
  export CCACHE_DIR CCACHE_BASEDIR CCACHE_NOHASHDIR FROMSCRATCH_CCACHE
fi
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
sh "$W/tools/build.sh" "$@"
code=$?
rm -f "$S/dirty"
exit "$code"
