# shellcheck shell=sh
# Sourced by the compiler wrappers of a build's tools directory (compile/cross.py writes them): fs_cc runs the
# target's compiler so that a build system that runs it, with any flags, in any step (configure tests, libtool,
# try_compile) gets static programs. libtool, for one, drops a plain -static from LDFLAGS (it wants -all-static);
# here the driver adds it after libtool has spoken.
#
#   fs_cc LINKER DRIVER STRIP N COMMAND(N words) ARGS...
#
# COMMAND is the real compiler (argv), ARGS what the build passed. A shared object (-shared) is linked without
# -static. STRIP=1 links every program with -s too (the linker strips, so zig's programs are stripped as well: no
# zig tool strips a foreign ELF file). With FROMSCRATCH_LINKS set, a link of a program goes through fs_link
# (links.sh), which keeps what the linker used in a trace named after the program (PROGRAM.PID), for its SBOM;
# DRIVER is the gcc an SBOM names. Modes that print to stdout (-E, -M, -print-*, -dump*) are not links and pass
# straight through.
fs_cc() {
  fs_linker=$1 fs_driver=$2 fs_strip=$3 fs_n=$4
  shift 4
  fs_i=0 fs_shared=''
  for fs_a; do
    fs_i=$((fs_i + 1))
    if [ "$fs_i" -gt "$fs_n" ] && [ "$fs_a" = -shared ]; then fs_shared=1; fi
  done
  if [ -n "$fs_shared" ]; then
    fs_i=0
    for fs_a; do
      shift
      fs_i=$((fs_i + 1))
      if [ "$fs_i" -le "$fs_n" ] || [ "$fs_a" != -static ]; then set -- "$@" "$fs_a"; fi
    done
    exec "$@"
  fi
  set -- "$@" -static
  if [ "$fs_strip" = 1 ]; then set -- "$@" -s; fi
  if [ -n "${FROMSCRATCH_LINKS-}" ]; then
    fs_linking=1 fs_out=a.out fs_prev='' fs_i=0
    for fs_a; do
      fs_i=$((fs_i + 1))
      [ "$fs_i" -gt "$fs_n" ] || continue
      case $fs_a in -c|-S|-E|-M|-MM|-fsyntax-only|--help|--version|-dump*|-print-*|--print-*) fs_linking='' ;;
        -o?*) fs_out=${fs_a#-o} ;; esac
      [ "$fs_prev" = -o ] && fs_out=$fs_a
      fs_prev=$fs_a
    done
    case $fs_out in */*) fs_dir=${fs_out%/*} ;; *) fs_dir=. ;; esac
    if [ -n "$fs_linking" ] && fs_dir=$(cd "${fs_dir:-/}" 2>/dev/null && pwd -P); then
      [ -d "$FROMSCRATCH_LINKS" ] || mkdir -p "$FROMSCRATCH_LINKS"
      fs_link "$fs_linker" "$fs_driver" "$fs_dir/${fs_out##*/}" "$FROMSCRATCH_LINKS/${fs_out##*/}.$$" "$@"
      exit
    fi
  fi
  exec "$@"
}
