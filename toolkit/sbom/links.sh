# shellcheck shell=sh
# What a link put into a program, as its linker names the inputs and as the package manager of the machine that
# linked knows them: POSIX sh and awk that run on the host and in the build container alike. Sourced by the
# compiler wrappers and every build's script (from the tools directory), or run with `sh -c` for the files an image
# adds (toolkit/sbom/links.py reads this file and parses the record fs_resolve prints).
#
#   fs_link STYLE DRIVER OUTPUT TRACE COMMAND...  runs COMMAND (a compiler that links OUTPUT) with its linker
#       naming every input; TRACE gets the inputs, everything else COMMAND prints is passed on.
#   fs_trace_of PROGRAM [REAL]  prints the trace of the link that made PROGRAM (the wrappers keep one per link in
#       $FROMSCRATCH_LINKS, named OUTPUT.PID): the newest of that very path, else the newest link, of any name,
#       whose output is still the same file (make install copies, and may rename: screen's link makes `screen`,
#       installed as screen-4.9.0), else the newest of that name (install -s strips). Prints nothing when no link
#       matches: the program was linked behind the wrappers' back. REAL: PROGRAM's real path, when the caller
#       has it already.
#   fs_resolve TRACE [OWN]  prints the record of a trace: each input's real path and sha256, the package that
#       owns it and that package's version (dpkg), the compiler's version, the distribution. Inputs under OWN
#       (the project's own build) are left out: they come from the sources. What dpkg answered is kept under
#       $FROMSCRATCH_DPKG_CACHE, when set, for as long as dpkg's status file is the same.
#
# GNU ld prints an archive member as "(ARCHIVE)MEMBER" when it takes it; an archive it only searched appears
# alone, so only member lines count. zig prints each ld.lld it runs: the program's link, and on a target's first
# build the relocatable links (-r) that make its runtime objects (crt1.o from another crt1.o), which are not the
# program's inputs. An object given on the command line is used whole (gcc's temporary objects are gone when the
# record is made, and are the program's own anyway). Older GNU ld (2.34) names its emulation first ("ld: mode
# elf_x86_64"). Any other line is the command's own output, passed on. One awk and no loop of forks: the wrappers
# run this for every link a configure script makes.

# The build's directory of the compiler's plain names (compile/collect.sh's fs_compilers_first, named by
# FROMSCRATCH_COMPILERS) leads to the wrappers. A wrapper sources this file: it takes that directory off its own
# PATH here, so that the compiler it runs is the real one, never a wrapper again (a $CC link traced twice, the
# outer trace empty).
fs_off_path() {
  fs_keep='' fs_ifs=$IFS
  set -f; IFS=:
  for fs_e in $PATH; do if [ "$fs_e" != "$1" ]; then fs_keep=${fs_keep:+$fs_keep:}$fs_e; fi; done
  IFS=$fs_ifs; set +f  # restored, not unset: a sourcing script that saves "$IFS" must get it back as it was
  PATH=$fs_keep; export PATH
}
if [ -n "${FROMSCRATCH_COMPILERS-}" ]; then fs_off_path "$FROMSCRATCH_COMPILERS"; fi

fs_link() {
  fs_style=$1 fs_driver=$2 fs_out=$3 fs_trace=$4; shift 4
  fs_raw=${fs_trace%/*}/.raw.${fs_trace##*/}
  if [ "$fs_style" = zig ]; then
    ZIG_VERBOSE_LINK=1 "$@" 2>"$fs_raw"; fs_status=$?
  else
    "$@" -Wl,-t,-t >"$fs_raw"; fs_status=$?
  fi
  awk -v style="$fs_style" -v pwd="$PWD" -v trace="$fs_trace" -v out="$fs_out" -v driver="$fs_driver" \
      -v ok="$fs_status" '
    function keep(kind, path) {
      if (path !~ /^\//) path = pwd "/" path
      if (ok == 0 && !((kind, path) in seen)) { seen[kind, path] = 1; print kind " " path > trace }
    }
    BEGIN { if (ok == 0) printf "output %s\nlinker %s\ndriver %s\n", out, style, driver > trace }
    style == "zig" && /^ld\.lld / && / -r / { next }
    style == "zig" && /^ld\.lld / {
      for (i = 2; i <= NF; i++)
        if ($i == "-o") i++
        else if ($i ~ /^\/.*\.a$/) keep("archive", $i); else if ($i ~ /^\/.*\.o$/) keep("object", $i)
      next
    }
    style == "zig" && /^ar rcs / { next }
    style == "zig" { print > "/dev/stderr"; next }
    /^\(.*\)/ { a = substr($0, 2); sub(/\).*$/, "", a); keep("archive", a); next }
    /: mode / || /\.a$/ || /\.so$/ || /\.so\.[0-9.]*$/ { next }
    /\.o$/ { keep("object", $0); next }
    { print }' "$fs_raw"
  rm -f "$fs_raw"
  return "$fs_status"
}

# fs_real PATH: sets fs_rp to PATH with every symbolic link resolved, as realpath prints it; for a regular file that
# is no link itself, by the shell's own cd -P there and back (no process, no subshell: a fork is a millisecond, and
# a build takes a program this way; each of a project's links resolves its output's directory alike, in wrapper.sh).
fs_real() {
  if [ -f "$1" ] && [ ! -L "$1" ]; then
    case $1 in /*/*) fs_rd=${1%/*} ;; /*) fs_rd=/ ;; */*) fs_rd=./${1%/*} ;; *) fs_rd=. ;; esac
    if fs_physical "$fs_rd"; then fs_rp=${fs_pd%/}/${1##*/}; return 0; fi
  fi
  fs_rp=$(realpath "$1")
}

# fs_physical DIR: sets fs_pd to DIR's path with every symbolic link resolved (pwd -P there), the current directory
# left as it was (gone back to by the path the shell knows it by); fails when DIR cannot be entered. A shell that
# cannot go back stops rather than run on in another directory.
fs_physical() {
  fs_back=$PWD
  CDPATH='' cd -P -- "$1" 2>/dev/null || return 1
  fs_pd=$PWD
  CDPATH='' cd -- "$fs_back" || { echo "fromscratch: cannot return to $fs_back" >&2; exit 1; }
}

fs_trace_of() {
  if [ -n "${2-}" ]; then fs_p=$2; else fs_real "$1"; fs_p=$fs_rp; fi; fs_n=${1##*/}
  # A trace of that very path is named after its last part (the wrappers name each OUTPUT.PID): when exactly one
  # is, it is the newest, and no process need list and read them all. (A hidden name is left to ls, which skips it.)
  fs_t='' fs_c=0
  case ${fs_p##*/} in .*) fs_c=-1 ;; esac
  if [ "$fs_c" = 0 ]; then
    for fs_f in "$FROMSCRATCH_LINKS/${fs_p##*/}".*; do
      fs_l=''
      if [ -f "$fs_f" ] && IFS= read -r fs_l < "$fs_f" && [ "$fs_l" = "output $fs_p" ]; then
        fs_t=$fs_f fs_c=$((fs_c + 1))
      fi
    done
  fi
  if [ "$fs_c" = 1 ]; then cat "$fs_t"; return 0; fi
  # One awk reads the first line of every trace, newest first (a program's name may hold spaces): the trace of
  # that very path, when there is one; else each output once, for cmp when it is still a file (configure's test
  # links are gone: skipped without a process); and last the newest of the name.
  ls -t "$FROMSCRATCH_LINKS" 2>/dev/null | awk -v dir="$FROMSCRATCH_LINKS" -v path="$fs_p" -v name="$fs_n" '
    { t = dir "/" $0; line = ""; if ((getline line < t) <= 0) next; close(t); o = substr(line, 8)
      if (substr(line, 1, 7) != "output ") next
      if (o == path) { found = t; exit }
      b = o; sub(/.*\//, "", b)
      if (b == name && last == "") last = t
      if (!(o in seen)) { seen[o] = 1; same[++n] = "same\t" t "\t" o } }
    END { if (found != "") { print "path\t" found; exit }
          for (i = 1; i <= n; i++) print same[i]
          if (last != "") print "name\t" last }' | (
    fs_last=
    while IFS="$(printf '\t')" read -r fs_k fs_t fs_o; do
      case $fs_k in
        path) cat "$fs_t"; exit 0 ;;
        same) if [ -f "$fs_o" ] && cmp -s "$fs_o" "$1"; then cat "$fs_t"; exit 0; fi ;;
        name) fs_last=$fs_t ;;
      esac
    done
    if [ -n "$fs_last" ]; then cat "$fs_last"; fi
  )
}

# fs_resolve's record, kept beside dpkg's answers under a key of all it reads: the trace's linker and driver, each
# input that exists outside OWN (the project's own files are left out of the record: an archive rebuilt there is
# no new key) by path, size, times and inode, the driver, the distribution's os-release, dpkg's status file and
# this script. A link whose inputs did not change starts no realpath, sha256sum or dpkg-query (each program's
# record took ~0.2 s of small processes on a loaded machine). The output line is the trace's own, each time.
fs_resolve() {
  fs_record_key "$1" "${2-}" || fs_rk=''
  if [ -n "$fs_rk" ] && [ -f "$fs_rk" ]; then
    fs_ifs=$IFS; IFS=$fs_nl; set -f
    for fs_l in $fs_head; do printf '%s\t%s\n' "${fs_l%% *}" "${fs_l#* }"; done
    IFS=$fs_ifs; set +f
    cat "$fs_rk"
    return 0
  fi
  if [ -z "$fs_rk" ] || ! fs_rt=$(mktemp "${fs_rk%/*}/.new.XXXXXX" 2>/dev/null); then
    fs_resolve_now "$@"
    return
  fi
  fs_resolve_now "$@" > "$fs_rt"
  cat "$fs_rt"
  find "${fs_rk%/*}" -maxdepth 1 -type f -mtime +30 -delete 2>/dev/null
  if grep -v -E "^(output|linker)$(printf '\t')" "$fs_rt" > "$fs_rt.rest"; then mv -f "$fs_rt.rest" "$fs_rk"; fi
  rm -f "$fs_rt" "$fs_rt.rest"
}

# fs_which NAME: sets fs_wp to the file NAME runs as a program, as command -v names it, without the subshell that
# $(command -v) forks (a record is made for every program of a build); fails when PATH has none.
fs_which() {
  case $1 in */*) fs_wp=$1; [ -f "$1" ] && [ -x "$1" ]; return ;; esac
  fs_wr=$PATH:
  while [ -n "$fs_wr" ]; do
    fs_wd=${fs_wr%%:*} fs_wr=${fs_wr#*:}
    if [ -f "${fs_wd:-.}/$1" ] && [ -x "${fs_wd:-.}/$1" ]; then fs_wp=${fs_wd:-.}/$1; return 0; fi
  done
  return 1
}

# fs_record_key TRACE [OWN]: the file fs_resolve keeps the record of TRACE in, as fs_rk, and the trace's output and
# linker lines, as fs_head (variables, not output: no subshell, the trace read once); fails when there is nowhere
# to keep it. The key is made by one stat and one sha256sum: what it reads is listed in variables, not in files to
# remove again.
fs_record_key() {
  fs_rk='' fs_head=''
  [ -n "${FROMSCRATCH_DPKG_CACHE-}" ] || return 1
  [ -d "$FROMSCRATCH_DPKG_CACHE/records" ] || mkdir -p "$FROMSCRATCH_DPKG_CACHE/records" 2>/dev/null || return 1
  fs_nl='
'
  fs_meta='' fs_list=''
  while IFS=' ' read -r fs_kind fs_path; do
    case $fs_kind in
      output) fs_head="$fs_head$fs_kind $fs_path$fs_nl" ;;
      linker|driver) fs_meta="$fs_meta$fs_kind $fs_path$fs_nl"
        if [ "$fs_kind" = linker ]; then fs_head="$fs_head$fs_kind $fs_path$fs_nl"; fi
        if [ "$fs_kind" = driver ] && fs_which "$fs_path"; then fs_list="$fs_list$fs_wp$fs_nl"; fi ;;
      archive|object|file)
        case $fs_path in "${2:-/nonexistent}"/*) [ -L "$fs_path" ] || continue ;; esac
        if [ -e "$fs_path" ]; then fs_meta="$fs_meta$fs_kind $fs_path$fs_nl" fs_list="$fs_list$fs_path$fs_nl"; fi ;;
    esac
  done < "$1"
  fs_ifs=$IFS; IFS=$fs_nl; set -f
  # shellcheck disable=SC2086 # one path a line, none split or expanded further
  set -- $fs_list /etc/os-release "${DPKG_ADMINDIR:-/var/lib/dpkg}/status"
  IFS=$fs_ifs; set +f
  # a file that is gone is said in the key; stat that could not run at all (too many paths) keeps nothing
  fs_st=$(stat -L -c '%n %s %.9Y %.9Z %i' -- "$@" 2>&1)
  [ $? -lt 126 ] || return 1
  fs_key=$(sha256sum <<EOF
links.sh ${FS_LINKS_SUM-}
$fs_meta$fs_st
EOF
) || return 1
  fs_key=${fs_key%% *}
  fs_key=${fs_key%"${fs_key#????????????????????????????????}"}  # its first 32 characters
  [ -n "$fs_key" ] || return 1
  fs_rk=$FROMSCRATCH_DPKG_CACHE/records/$fs_key
}

fs_resolve_now() {
  fs_d=${1%/*}/.resolve.${1##*/}
  rm -rf "$fs_d"; mkdir -p "$fs_d" || return 1
  fs_own=
  if [ -n "${2-}" ]; then fs_own=$(realpath "$2"); fi
  if [ -r /etc/os-release ]; then
    (. /etc/os-release; printf 'os\t%s\t%s\t%s\n' "${ID-}" "${VERSION_ID-}" "${VERSION_CODENAME-}")
  fi
  fs_driver=
  while IFS=' ' read -r fs_kind fs_path; do
    case $fs_kind in
      output|linker) printf '%s\t%s\n' "$fs_kind" "$fs_path" ;;
      driver) fs_driver=$fs_path ;;
      archive|object|file)
        if [ -e "$fs_path" ]; then echo "$fs_kind" >> "$fs_d/kinds"; echo "$fs_path" >> "$fs_d/paths"; fi ;;
    esac
  done < "$1"
  : > "$fs_d/asked"
  if [ -n "$fs_driver" ] && fs_c=$(command -v "$fs_driver"); then
    fs_c=$(realpath "$fs_c"); echo "$fs_c" >> "$fs_d/asked"
    fs_v=$("$fs_driver" -dumpfullversion 2>/dev/null || "$fs_driver" -dumpversion 2>/dev/null)
    printf 'compiler\t%s\t%s\t%s\n' "$fs_driver" "$fs_v" "$fs_c"
  fi
  if [ -s "$fs_d/paths" ]; then
    xargs -d '\n' realpath -s < "$fs_d/paths" > "$fs_d/norm"
    xargs -d '\n' realpath < "$fs_d/paths" > "$fs_d/real"
    # the project's own inputs are left out of the record (below): not hashed either
    while IFS= read -r fs_f; do
      case $fs_f in "${fs_own:-/nonexistent}"/*) continue ;; esac
      if [ -f "$fs_f" ]; then echo "$fs_f"; fi
    done < "$fs_d/real" > "$fs_d/hashed"
    fs_sums "$fs_d/hashed" > "$fs_d/sums"
    paste "$fs_d/kinds" "$fs_d/norm" "$fs_d/real" > "$fs_d/rows"
    awk -F '\t' -v sums="$fs_d/sums" -v own="$fs_own" -v asked="$fs_d/asked" '
      FILENAME == sums { sum[substr($0, 67)] = substr($0, 1, 64); next }
      own != "" && index($3, own "/") == 1 { next }
      { print "input\t" $1 "\t" $2 "\t" $3 "\t" (($3 in sum) ? sum[$3] : "-"); print $2 >> asked; print $3 >> asked }
    ' "$fs_d/sums" "$fs_d/rows"
  fi
  if [ -s "$fs_d/asked" ] && command -v dpkg-query >/dev/null 2>&1; then
    sort -u "$fs_d/asked" > "$fs_d/sorted"
    fs_kept=$(fs_owners_kept "$fs_d/sorted")
    if [ -n "$fs_kept" ] && [ -f "$fs_kept" ]; then cat "$fs_kept"; else
      fs_owners "$fs_d" > "$fs_d/answer"
      cat "$fs_d/answer"
      if [ -n "$fs_kept" ]; then fs_keep_owners "$fs_d/answer" "$fs_kept"; fi
    fi
  fi
  rm -rf "$fs_d"
}

# The owner and package lines of the paths listed (sorted) in $1/sorted, as dpkg-query tells them: the slow part of
# a record (dpkg reads its whole database, ~0.1-0.3 s).
# sha256sum of each file listed in $1, kept beside the dpkg answers under a key of every file's name, size,
# modification and change times and inode: a link that takes the same files (libc.a and the rest, ~50 ms to read)
# reads none of them again
fs_sums() {
  [ -s "$1" ] || return 0
  if [ -n "${FROMSCRATCH_DPKG_CACHE-}" ] &&
     fs_key=$(xargs -d '\n' stat -c '%n %s %.9Y %.9Z %i' -- < "$1" 2>/dev/null | sha256sum | cut -c1-32); then
    fs_kept=$FROMSCRATCH_DPKG_CACHE/sums/$fs_key
    if [ -f "$fs_kept" ]; then cat "$fs_kept"; return 0; fi
    xargs -d '\n' -r sha256sum -- < "$1" > "$1.sums" || return 1
    cat "$1.sums"
    if mkdir -p "${fs_kept%/*}" 2>/dev/null && fs_tmp=$(mktemp "${fs_kept%/*}/.new.XXXXXX" 2>/dev/null); then
      find "${fs_kept%/*}" -maxdepth 1 -type f -mtime +30 -delete 2>/dev/null
      if cp "$1.sums" "$fs_tmp"; then mv -f "$fs_tmp" "$fs_kept"; else rm -f "$fs_tmp"; fi
    fi
    return 0
  fi
  xargs -d '\n' -r sha256sum -- < "$1"
}

fs_owners() {
  xargs -d '\n' dpkg-query -S < "$1/sorted" 2>/dev/null > "$1/owned"
  awk -v list="$1/packages" '
    /^diversion / { next }
    { i = index($0, ": /"); if (!i) next; p = substr($0, 1, i - 1); print "owner\t" p "\t" substr($0, i + 2)
      n = split(p, names, ", "); for (k = 1; k <= n; k++) print names[k] > list }' "$1/owned"
  if [ -s "$1/packages" ]; then
    fs_f='package\t${binary:Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}'
    sort -u "$1/packages" | xargs -d '\n' dpkg-query -W -f="$fs_f"'\t${Maintainer}\n' 2>/dev/null
  fi
}

# What dpkg answered is kept in $FROMSCRATCH_DPKG_CACHE (when set), in a file named by dpkg's status file (path,
# size, mtime, inode: dpkg replaces it whenever a package changes) and by the paths asked: prints that file's
# path, or nothing when there is no cache or no status file.
fs_owners_kept() {
  [ -n "${FROMSCRATCH_DPKG_CACHE-}" ] || return 0
  fs_status=$(stat -c '%n %s %Y %i' "${DPKG_ADMINDIR:-/var/lib/dpkg}/status" 2>/dev/null) || return 0
  fs_sk=$(printf '%s\n' "$fs_status" | sha256sum | cut -c1-16)
  fs_ak=$(sha256sum < "$1" | cut -c1-32)
  printf '%s/%s-%s\n' "$FROMSCRATCH_DPKG_CACHE" "$fs_sk" "$fs_ak"
}

# Keep an answer ($1) as $2, written whole under a temporary name first; answers of an older status file go.
fs_keep_owners() {
  fs_dir=${2%/*}; fs_sk=${2##*/}; fs_sk=${fs_sk%%-*}
  mkdir -p "$fs_dir" 2>/dev/null || return 0
  find "$fs_dir" -maxdepth 1 -type f ! -name "$fs_sk-*" -delete 2>/dev/null
  fs_tmp=$(mktemp "$fs_dir/.new.XXXXXX" 2>/dev/null) || return 0
  if cp "$1" "$fs_tmp"; then mv -f "$fs_tmp" "$2"; else rm -f "$fs_tmp"; fi
}
