# shellcheck shell=sh
# Sourced by the compiler wrappers of a build's tools directory (compile/cross.py writes them): fs_cc runs the
# target's compiler so that a build system that runs it, with any flags, in any step (configure tests, libtool,
# try_compile) gets static programs. libtool, for one, drops a plain -static from LDFLAGS (it wants -all-static);
# here the driver adds it after libtool has spoken.
#
#   fs_cc LINKER DRIVER STRIP ARCHIVES PCDIRS N COMMAND(N words) ARGS...
#
# COMMAND is the real compiler (argv), ARGS what the build passed. A shared object (-shared) is linked without
# -static. STRIP=1 links every program with -s too (the linker strips, so zig's programs are stripped as well: no
# zig tool strips a foreign ELF file). With FROMSCRATCH_LINKS set, a link of a program goes through fs_link
# (links.sh), which keeps what the linker used in a trace named after the program (PROGRAM.PID), for its SBOM;
# DRIVER is the gcc an SBOM names. Modes that print to stdout (-E, -M, -print-*, -dump*) are not links and pass
# straight through. A compile that does not link runs through ccache when FROMSCRATCH_CCACHE names it.
#
# A link of a program is completed for a static link (fs_static_more): ARCHIVES are the target's library
# directories (colon-separated; empty: nothing is completed), PCDIRS those of its .pc files. Each -lX the build
# names is followed by what libX.a itself needs, which a shared libX.so records and a Makefile written for dynamic
# links leaves out (-lncurses needs -ltinfo, -lssl needs -lcrypto): from X's .pc file (pkg-config --static, through
# the tools directory's pkg-config), else from the symbols libX.a leaves undefined, looked up in a table of what
# the target's other archives define (made once per build, when first needed). The additions go after
# everything the build passed, in a group the linker searches until nothing more resolves, so their order does
# not matter. What each library needs is kept in the tools directory's .static/, for the build's later links.

fs_cc() {
  fs_linker=$1 fs_driver=$2 fs_strip=$3 fs_archives=$4 fs_pcdirs=$5 fs_n=$6
  shift 6
  fs_i=0 fs_shared='' fs_linking=1 fs_out=a.out fs_prev='' fs_libs='' fs_l='' fs_sos=''
  for fs_a; do
    fs_i=$((fs_i + 1))
    [ "$fs_i" -gt "$fs_n" ] || continue
    case $fs_a in -shared) fs_shared=1 ;;
      -c|-S|-E|-M|-MM|-fsyntax-only|--help|--version|-dump*|-print-*|--print-*) fs_linking='' ;;
      -o?*) fs_out=${fs_a#-o} ;;
      -l?*) fs_l=${fs_a#-l} ;;
      */lib?*.a) case ":$fs_archives:" in *":${fs_a%/*}:"*) fs_l=${fs_a##*/lib} fs_l=${fs_l%.a} ;; esac ;;
      *.so|*.so.[0-9]*) fs_sos=1 ;; esac
    case $fs_prev in -o) fs_out=$fs_a ;; -l) fs_l=$fs_a ;; esac
    # a name that can be a library's (and a cache file's): the others are not looked at
    case $fs_l in ''|[!A-Za-z0-9_]*|*[!A-Za-z0-9_.+-]*) ;; *) fs_libs="$fs_libs $fs_l" ;; esac
    fs_l=''
    fs_prev=$fs_a
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
  if [ -n "$fs_linking" ] && [ -n "$fs_sos" ]; then
    # a shared library named by its path (CMake's find_library, a target of the project's own that is also
    # built static): its archive beside it, when there is one
    fs_i=0 fs_prev=''
    for fs_a; do
      shift
      fs_i=$((fs_i + 1))
      if [ "$fs_i" -gt "$fs_n" ] && [ "$fs_prev" != -o ]; then
        case $fs_a in */lib?*.so|*/lib?*.so.[0-9]*|lib?*.so|lib?*.so.[0-9]*)
          case $fs_a in /usr/*|/lib*) ;; *) fs_await "${fs_a%.so*}.a" ;; esac
          if [ -f "${fs_a%.so*}.a" ]; then
            fs_a=${fs_a%.so*}.a fs_l=${fs_a##*/lib}
            case ${fs_l%.a} in [!A-Za-z0-9_]*|*[!A-Za-z0-9_.+-]*) ;; *) fs_libs="$fs_libs ${fs_l%.a}" ;; esac
          fi ;;
        esac
      fi
      fs_prev=$fs_a
      set -- "$@" "$fs_a"
    done
  fi
  if [ -n "$fs_linking" ] && [ -n "$fs_libs" ] && [ -n "$fs_archives" ]; then
    # one word a line, each -l<name> or -pthread (fs_static_more prints nothing else)
    fs_more=$(fs_static_more "${0%/*}" "$fs_archives" "$fs_pcdirs" "$fs_libs")
    if [ -n "$fs_more" ]; then
      set -- "$@" -Wl,--start-group
      while IFS= read -r fs_a; do set -- "$@" "$fs_a"; done <<EOT
$fs_more
EOT
      set -- "$@" -Wl,--end-group
    fi
  fi
  set -- "$@" -static
  if [ "$fs_strip" = 1 ]; then set -- "$@" -s; fi
  if [ -n "${FROMSCRATCH_LINKS-}" ]; then
    case $fs_out in */*) fs_dir=${fs_out%/*} ;; *) fs_dir=. ;; esac
    if [ -n "$fs_linking" ] && fs_physical "${fs_dir:-/}"; then
      # shellcheck disable=SC2154 # fs_pd: set by links.sh's fs_physical
      fs_dir=$fs_pd
      [ -d "$FROMSCRATCH_LINKS" ] || mkdir -p "$FROMSCRATCH_LINKS"
      fs_link "$fs_linker" "$fs_driver" "$fs_dir/${fs_out##*/}" "$FROMSCRATCH_LINKS/${fs_out##*/}.$$" "$@"
      exit
    fi
  fi
  # a compile (no link) through the compiler cache, when the build has one (compile/kept.sh sets it)
  if [ -z "$fs_linking" ] && [ -n "${FROMSCRATCH_CCACHE-}" ]; then exec "$FROMSCRATCH_CCACHE" "$@"; fi
  exec "$@"
}

# The libraries a compiler driver links by itself, or that need nothing more: never completed.
FS_TOOLCHAIN_LIBS=' c c_nonshared g m mvec pthread dl rt util resolv anl BrokenLocale mcheck stdc++ stdc++fs supc++
 gcc gcc_eh gcc_s atomic '

# fs_static_more TOOLS ARCHIVES PCDIRS LIBS: LIBS (space-separated names, as the build gave them after -l) and what
# they need, one -l<name> or -pthread a line, when they need anything the build did not name; else nothing. A
# name outside [A-Za-z0-9_][A-Za-z0-9_.+-]* is not looked at (it names a cache file).
# fs_await ARCHIVE: a library the project builds both shared and static (cmark's libcmark.so and libcmark.a,
# separate targets) is linked from its archive; when the program's link comes first (make and ninja run them
# side by side, and a compiler cache makes the order vary), wait for the archive, at most two minutes. Not only
# for it to be there: CMake's `ar qc` writes it in place, and a link that read it half-written failed with "file
# truncated" (cmark's api_test): it is taken once ar lists it whole and its size held for a moment.
fs_await() {
  fs_w=0 fs_size=''
  while [ "$fs_w" -lt 600 ]; do
    if [ -f "$1" ]; then
      fs_now=$(wc -c < "$1" 2>/dev/null) || fs_now=''
      if [ -n "$fs_now" ] && [ "$fs_now" = "$fs_size" ] && "${AR:-ar}" t "$1" >/dev/null 2>&1; then return 0; fi
      fs_size=$fs_now
    fi
    sleep 0.2
    fs_w=$((fs_w + 1))
  done
}

fs_static_more() (
  fs_s_tools=$1 fs_s_archives=$2 fs_s_pcdirs=$3
  fs_s_cache=$fs_s_tools/.static
  [ -d "$fs_s_cache" ] || mkdir -p "$fs_s_cache" 2>/dev/null || exit 0
  set -f
  # shellcheck disable=SC2086 # the names, split on spaces: none holds one
  set -- $4
  set +f
  fs_s_given=" $* " fs_s_seen=' ' fs_s_group='' fs_s_new='' fs_s_closed=''
  while [ $# -gt 0 ]; do
    fs_s_l=$1; shift
    case $fs_s_l in ''|[!A-Za-z0-9_]*|*[!A-Za-z0-9_.+-]*) continue ;; esac
    case $fs_s_seen in *" $fs_s_l "*) continue ;; esac
    fs_s_seen="$fs_s_seen$fs_s_l "
    case $fs_s_given in *" $fs_s_l "*) ;; *) fs_s_new=1 ;; esac
    fs_s_group="$fs_s_group -l$fs_s_l"
    case $FS_TOOLCHAIN_LIBS in *" $fs_s_l "*) continue ;; esac
    fs_s_f=$fs_s_cache/needs.$fs_s_l
    if [ ! -f "$fs_s_f" ]; then
      fs_static_needs "$fs_s_l" > "$fs_s_f.$$" || true
      mv "$fs_s_f.$$" "$fs_s_f" || continue
    fi
    while IFS= read -r fs_s_w; do
      case $fs_s_w in
        '# pkg-config') fs_s_closed=1 ;;  # pkg-config --static gave the whole closure: taken as it is
        -l?*) if [ -n "$fs_s_closed" ]; then
                case $fs_s_seen in *" ${fs_s_w#-l} "*) ;; *)
                  fs_s_seen="$fs_s_seen${fs_s_w#-l} " fs_s_group="$fs_s_group $fs_s_w" fs_s_new=1 ;; esac
              else set -- "$@" "${fs_s_w#-l}"; fi ;;
        -pthread) case $fs_s_group in *" -pthread"*) ;; *) fs_s_group="$fs_s_group -pthread" fs_s_new=1 ;; esac ;;
      esac
    done < "$fs_s_f"
    fs_s_closed=''
  done
  if [ -n "$fs_s_new" ]; then
    # shellcheck disable=SC2086 # the words, split on spaces: none holds one
    printf '%s\n' $fs_s_group
  fi
)

# fs_static_archive NAME: the target's libNAME.a, if it has one.
fs_static_archive() {
  fs_s_ifs=$IFS; IFS=:
  for fs_s_d in $fs_s_archives; do
    if [ -f "$fs_s_d/lib$1.a" ]; then IFS=$fs_s_ifs; printf '%s\n' "$fs_s_d/lib$1.a"; return 0; fi
  done
  IFS=$fs_s_ifs
  return 1
}

# fs_static_needs NAME: what libNAME.a needs, one word a line (only libraries the target has an archive of).
fs_static_needs() {
  fs_s_a=$(fs_static_archive "$1") || return 0
  fs_s_real=$(realpath "$fs_s_a"); fs_s_base=${fs_s_real##*/lib}; fs_s_base=${fs_s_base%.a}  # libpng.a: png16
  [ -f "$fs_s_cache/modules" ] || fs_static_modules
  fs_s_mod=$(awk -v a="$1" -v b="$fs_s_base" '$1 == a { print $2; f = 1; exit } $1 == b && m == "" { m = $2 }
                                             END { if (!f && m != "") print m }' "$fs_s_cache/modules")
  if [ -n "$fs_s_mod" ]; then
    echo '# pkg-config'
    "$fs_s_tools/pkg-config" --libs "$fs_s_mod" 2>/dev/null | tr ' \t' '\n\n'
  else
    fs_static_undefined "$1"
  fi | while IFS= read -r fs_s_w; do
    case $fs_s_w in
      -pthread|'# pkg-config') echo "$fs_s_w" ;;
      -l"$1"|-l"$fs_s_base") ;;
      -l?*) if fs_static_archive "${fs_s_w#-l}" >/dev/null; then echo "$fs_s_w"; fi ;;
    esac
  done
}

# fs_static_modules: which .pc module each library belongs to (the first -l of its Libs line), in the cache.
fs_static_modules() {
  fs_s_ifs=$IFS; IFS=:
  for fs_s_d in $fs_s_pcdirs; do
    for fs_s_pc in "$fs_s_d"/*.pc; do [ -f "$fs_s_pc" ] && printf '%s\n' "$fs_s_pc"; done
  done > "$fs_s_cache/modules.$$"
  IFS=$fs_s_ifs
  xargs -d '\n' -r awk '/^Libs:/ { for (i = 2; i <= NF; i++) if ($i ~ /^-l/) {
        n = FILENAME; sub(/.*\//, "", n); sub(/\.pc$/, "", n); print substr($i, 3) " " n; break } }' \
    < "$fs_s_cache/modules.$$" > "$fs_s_cache/modules.$$.t"
  mv "$fs_s_cache/modules.$$.t" "$fs_s_cache/modules"; rm -f "$fs_s_cache/modules.$$"
}

# fs_static_undefined NAME: the libraries that define what libNAME.a leaves undefined (-l<name> a line, sorted),
# from the table of what every archive of the target defines (one nm over them all, once per build; the C
# library's and the compiler's own archives left out: the driver links those anyway).
fs_static_undefined() {
  fs_s_nm=$fs_s_tools/nm
  [ -x "$fs_s_nm" ] || fs_s_nm='nm'
  if [ ! -f "$fs_s_cache/symbols" ]; then
    fs_s_ifs=$IFS; IFS=: fs_s_dirs=' '
    for fs_s_d in $fs_s_archives; do
      fs_s_d=$(realpath "$fs_s_d" 2>/dev/null) || continue
      case $fs_s_dirs in *" $fs_s_d "*) continue ;; esac  # /lib is /usr/lib (merged /usr)
      fs_s_dirs="$fs_s_dirs$fs_s_d "
      for fs_s_x in "$fs_s_d"/lib*.a; do
        fs_s_n=${fs_s_x##*/lib}; fs_s_n=${fs_s_n%.a}
        case $FS_TOOLCHAIN_LIBS in *" $fs_s_n "*) continue ;; esac
        case $fs_s_n in m-*) continue ;; esac
        [ -f "$fs_s_x" ] || continue
        if [ -L "$fs_s_x" ]; then  # libtermcap.a -> libtinfo.a: the archive under its own name only
          fs_s_t=$(realpath "$fs_s_x")
          case $fs_s_t in "$fs_s_d"/lib*.a) continue ;; esac
        fi
        printf '%s\n' "$fs_s_x"
      done
    done > "$fs_s_cache/archives.$$"
    IFS=$fs_s_ifs
    xargs -d '\n' -r "$fs_s_nm" -A -g --defined-only < "$fs_s_cache/archives.$$" 2>/dev/null | awk '
      NF >= 3 && $(NF - 1) ~ /^[A-TV-Z]$/ { a = $1; sub(/:.*/, "", a); sub(/.*\/lib/, "", a); sub(/\.a$/, "", a)
                                  if (!($NF in seen)) { seen[$NF] = 1; print $NF " " a } }' \
      > "$fs_s_cache/symbols.$$"
    mv "$fs_s_cache/symbols.$$" "$fs_s_cache/symbols"; rm -f "$fs_s_cache/archives.$$"
  fi
  "$fs_s_nm" -g "$fs_s_a" 2>/dev/null | awk -v self="$1" -v base="$fs_s_base" -v table="$fs_s_cache/symbols" '
    NF >= 2 && $(NF - 1) == "U" { want[$NF] = 1; next }
    NF >= 2 && $(NF - 1) ~ /^[A-TV-Z]$/ { have[$NF] = 1 }
    END {
      while ((getline line < table) > 0) { split(line, f, " "); by[f[1]] = f[2] }
      for (s in want) if (!(s in have) && (s in by) && by[s] != self && by[s] != base) need[by[s]] = 1
      for (n in need) print "-l" n
    }' | sort
}
