# shellcheck shell=sh disable=SC2154
# Sourced by a build's build.sh (compile/plan.py writes it), after the build's steps, with W (the work directory),
# P (the install prefix) and JOBS set and links.sh sourced: the functions that take the programs the build made
# into $W/out, and the record of each one's link into $W/out/.records. (SC2154: those variables, and CC, are
# the sourcing script's.)
# Exit codes of the script's own failures, told apart from a build step's (plan.NO_ARTIFACT, plan.NO_PROGRAM):
FS_NO_ARTIFACT=91
FS_NO_PROGRAM=92

# After a failed link: which -lNAME had a shared library but no static archive for the target (asked of the
# target's compiler, which knows where it looks).
fs_static_hint() {
  for l in $(sed -n 's/.*cannot find -l\([^ :]*\).*/\1/p' "$W/build.log" | sort -u); do
    so=$("$CC" -print-file-name="lib$l.so" 2>/dev/null); a=$("$CC" -print-file-name="lib$l.a" 2>/dev/null)
    if [ "$so" != "lib$l.so" ] && [ "$a" = "lib$l.a" ]; then
      echo "fromscratch: -l$l: $so is there, lib$l.a is not: its package ships no static archive" >&2
    fi
  done
}

# out/ (with its .records/) and taken/ are made after the build, never found: a build that made out/ a symlink
# cannot send the programs elsewhere. (In a fresh work directory there is nothing to remove.)
fs_collect_start() {
  if [ -e "$W/out" ] || [ -L "$W/out" ] || [ -e "$W/taken" ] || [ -L "$W/taken" ]; then rm -rf "$W/out" "$W/taken"; fi
  mkdir "$W/out" "$W/out/.records" "$W/taken" || exit 1
}

# Whether out/ has no program yet (fs_take never takes a hidden name: a glob sees every program).
fs_none_taken() {
  for fs_f in "$W/out/"*; do
    if [ -e "$fs_f" ] || [ -L "$fs_f" ]; then return 1; fi
  done
}

fs_is_elf() { [ "$(od -An -N4 -c "$1" 2>/dev/null | tr -d ' \n')" = '177ELF' ]; }

# A program's name starting with a dot is refused: out/.records (and its .symlinks) are the collector's own.
fs_take() {
  n=${1##*/}
  case $n in .*) echo "fromscratch: skipped $1: a hidden file is not taken as a program" >&2; return ;; esac
  if [ -e "$W/out/$n" ]; then echo "fromscratch: skipped $1: a program named $n was taken already" >&2; return; fi
  cp "$1" "$W/out/$n" && echo "fromscratch: took $1" >&2
  fs_real "$1"; fs_took=$fs_rp
  fs_trace_of "$1" "$fs_took" > "$W/taken/$n"
  printf '%s\n' "$fs_took" > "$W/taken/.from.$n"
}

# The --artifact paths (the script's arguments: checked by grammar.inside, and here again once the build has made
# them: a symlink the build left must not lead out of the build's own directories).
fs_from_artifacts() {
  for a in "$@"; do
    found=""
    for d in "$W/src" "$W/stage$P" "$W/build"; do
      if [ -f "$d/$a" ]; then found="$d/$a"; break; fi
    done
    if [ -z "$found" ]; then
      echo "fromscratch: --artifact $a: not in the project, its build directory or the install prefix" >&2
      exit "$FS_NO_ARTIFACT"
    fi
    real=$(realpath "$found")
    case "$real" in
      "$W"/src/*|"$W"/stage/*|"$W"/build/*) fs_take "$found" ;;
      *) echo "fromscratch: --artifact $a: leads outside the build, to $real" >&2; exit "$FS_NO_ARTIFACT" ;;
    esac
  done
}

# What the build installed in bin/ and sbin/; and each symlink there to a program taken (screen installs
# screen-4.9.0 and the link screen), as a line LINK/PROGRAM of out/.records/.symlinks: pipeline.py makes the link
# beside the program. A link that leads anywhere else is not delivered.
fs_from_install() {
  for f in "$W/stage$P/bin/"* "$W/stage$P/sbin/"*; do
    if [ -f "$f" ] && [ ! -L "$f" ] && fs_is_elf "$f"; then fs_take "$f"; fi
  done
  for f in "$W/stage$P/bin/"* "$W/stage$P/sbin/"*; do
    [ -L "$f" ] || continue
    real=$(realpath "$f" 2>/dev/null) || continue
    for from in "$W/taken/".from.*; do
      fs_was=''
      [ -f "$from" ] && read -r fs_was < "$from" && [ "$fs_was" = "$real" ] || continue
      printf '%s/%s\n' "${f##*/}" "${from##*/.from.}" >> "$W/taken/.symlinks"
      break
    done
  done
}

# Executables the build made, where the project installs nothing: configure's, CMake's and Meson's own test
# programs are not the project's.
fs_from_tree() {
  if fs_none_taken; then
    find "$W/src" "$W/build" -type f -newer "$W/.started" -perm -u+x ! -name '*.so' ! -name '*.so.*' \
      ! -name '*.o' ! -name '*.a' ! -name 'conftest*' ! -path '*/CMakeFiles/*' ! -path '*/meson-private/*' \
      2>/dev/null | sort | while read -r f; do if fs_is_elf "$f"; then fs_take "$f"; fi; done
  fi
}

# None taken is a failure; else each program's record, made here: the machine that linked it knows which package
# shipped each input. $JOBS at a time (one at a time, in this shell, when a rule's build sets none): each hashes
# and looks up the same archives, a few hundred ms of processes.
fs_collect_end() {
  if fs_none_taken; then echo "fromscratch: the build made no program" >&2; exit "$FS_NO_PROGRAM"; fi
  if [ -f "$W/taken/.symlinks" ]; then cp "$W/taken/.symlinks" "$W/out/.records/.symlinks"; fi
  i=0
  for f in "$W/out/"*; do
    n=${f##*/}
    if [ "${JOBS:-1}" -le 1 ]; then fs_resolve "$W/taken/$n" "$W" > "$W/out/.records/$n"; continue; fi
    fs_resolve "$W/taken/$n" "$W" > "$W/out/.records/$n" &
    i=$((i + 1)); [ $((i % JOBS)) -ne 0 ] || wait
  done
  wait
}

fs_quoted() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# A Makefile that links with its own `gcc` (figlet: LD = gcc), or runs cc, g++, c++ or <triplet>-gcc by name,
# reaches the compiler wrappers too: a directory of those names (the arguments) first on PATH, each running its
# wrapper (cc or c++). The wrapper takes the directory off PATH again (links.sh, FROMSCRATCH_COMPILERS), so that
# its own gcc is the real one, never itself. The build's steps run in a subshell: only they see the change.
fs_compilers_first() {
  FROMSCRATCH_COMPILERS="$W/tools/path"; export FROMSCRATCH_COMPILERS
  mkdir -p "$FROMSCRATCH_COMPILERS" || return 1
  for fs_name in "$@"; do
    case $fs_name in *++) fs_w=c++ ;; *) fs_w=cc ;; esac
    printf '#!/bin/sh\n# made by fromscratch: the compiler wrapper by this name\nexec %s "$@"\n' \
      "$(fs_quoted "$W/tools/$fs_w")" > "$FROMSCRATCH_COMPILERS/$fs_name"
    chmod 755 "$FROMSCRATCH_COMPILERS/$fs_name"
  done
  PATH="$FROMSCRATCH_COMPILERS:$PATH"; export PATH
}
