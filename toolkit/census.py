"""`census`: many Debian source packages built by the `build --debian` path, each build a subprocess of this
command bounded by a timeout (one package failing, hanging or crashing never stops the others), each program it
delivered smoke-run in its own scratch image; a report by what a user can do about each failure. Results are kept
in the user's cache, keyed on the source version, the target and the build image, so a rerun builds only what
changed."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import __version__, files, targets
from .errors import InputError, ToolkitError

log = logging.getLogger(__name__)

_LIST_MAX = 1 << 20  # a FILE of package names larger than this is not a list of names
_NAMES_MAX = 2000
_SMOKE_SECONDS = 60
# What a smoke run tries, in order: the first that exits 0 saying something passes; failing that, the program's
# own usage text with exit 1 or 2 (it ran in its scratch image and parsed its arguments: chkfont, bzip2recover).
SMOKE_ARGS: tuple[tuple[str, ...], ...] = (("--version",), ("-v",), ("-V",), ("--help",), ("-h",), ())
SMOKE_SAID = "--version, -v, -V, --help, -h or no arguments (also on a terminal)"
CACHE_SCHEMA = 1

# Failure classes, in the order a report lists them, with what a user can do about each.
CLASSES = {
    "fetch": "the mirror cannot give the source (404): another --mirror, or a later version",
    "no-static-archive": "a Build-Depends library ships no static archive (.a): build that library static first, "
                         "or drop the feature that needs it (a configure flag)",
    "dlopen": "the program loads plugins or libraries with dlopen: a scratch image has no shared libraries; "
              "build the plugins in (a configure flag) or ship them",
    "dynamic": "a program came out dynamic: the project's build ignored the static flags (see its build options)",
    "build": "the build failed: read the last lines; often a build-time tool or a patch the plan lacks",
    "timeout": "the build did not finish within --timeout",
    "smoke": "built static, but did not answer " + SMOKE_SAID + " in its scratch image",
}
# Notes on a build that worked: verify's libc warnings (NSS or iconv calls that need files a scratch image lacks).
NOTE_NSS = "nss-iconv"
NOTES = {NOTE_NSS: "built, but calls NSS or iconv (verify's libc note): the image needs /etc files, or build with "
                   "--libc musl",
         "partly-dynamic": "built, but some programs came out dynamic and were left out (see the project's build "
                           "options for them)",
         "dlopen-warning": "built, but the link warned that dlopen needs shared libraries at run time"}


def _note_class(note: str) -> str:
    if "came out dynamic" in note:
        return "partly-dynamic"
    return "dlopen-warning" if note.startswith("dlopen:") else NOTE_NSS


@dataclass
class Smoke:
    program: str
    arch: str
    ok: bool
    how: str  # "--version", "--help: usage, exit 1", or what failed


@dataclass
class TargetResult:
    arch: str
    built: bool
    seconds: float
    failure: str = ""  # one of CLASSES, "" when it built and every program answered
    detail: str = ""  # what names the cause: the package and library, the dynamic program, the last lines
    programs: dict[str, int] = field(default_factory=dict)  # name: size in bytes
    smoke: list[Smoke] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # verify's run-time warnings (NSS, iconv)
    cached: bool = False


@dataclass
class PackageResult:
    package: str
    version: str
    targets: list[TargetResult] = field(default_factory=list)


def parse_names(text: str) -> list[str]:
    """--debian NAMES (comma-separated) or FILE (one a line, # comments): each NAME[=VERSION] checked against
    Debian's grammar before anything is fetched or written."""
    from .debian import source

    path = Path(text)
    if "/" in text or path.is_file():
        entries = _read_list(path)
    else:
        entries = [(None, e) for e in text.split(",")]
    names: list[str] = []
    for line, entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        try:
            source.parse(entry)
        except InputError as exc:
            where = f"{text}, line {line}: " if line is not None else ""
            raise InputError(f"{where}{exc.message}", hint=exc.hint) from None
        if entry not in names:
            names.append(entry)
    if not names:
        raise InputError(f"--debian {text!r}: no source package named", hint="e.g. --debian pv,tree or a FILE")
    if len(names) > _NAMES_MAX:
        raise InputError(f"--debian: {len(names)} packages, more than a census takes ({_NAMES_MAX})")
    return names


def _read_list(path: Path) -> list[tuple[int | None, str]]:
    text = files.small_text(path, _LIST_MAX, "list of source packages")
    return [(n, word) for n, line in enumerate(text.splitlines(), 1)
            for word in line.split("#", 1)[0].replace(",", " ").split()]


def _toolkit(*args: str, timeout: float | None) -> subprocess.CompletedProcess[str]:
    """This command in a subprocess, its output kept; on timeout it gets SIGTERM (its finally blocks remove its
    containers), then SIGKILL a minute later."""
    env = {**os.environ, "FROMSCRATCH_LOG": "WARNING",
           "PYTHONPATH": os.pathsep.join(filter(None, (str(Path(__file__).parent.parent),
                                                       os.environ.get("PYTHONPATH"))))}
    # errors="replace": a program's --help may print bytes that are not UTF-8 (bzip2 does)
    # run in an empty directory of its own: `-m toolkit` imports from the current directory first, which must not
    # be a toolkit/ that the directory the census was started in happens to hold (paths given are absolute)
    with tempfile.TemporaryDirectory(prefix="fromscratch-census-run-") as here:
        proc = subprocess.Popen([sys.executable, "-m", "toolkit", *args], stdout=subprocess.PIPE, cwd=here,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, errors="replace",
                                env=env)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def error_line(said: str) -> str:
    """The error: line a toolkit command printed last, else its last line."""
    lines = [line for line in said.splitlines() if line.startswith("error: ")]
    return (lines[-1] if lines else (said.strip().splitlines() or ["(no output)"])[-1])[:300]


def smoke(binary: Path, arch: str, tag: str, remove: Callable[[str], None]) -> Smoke:
    """Run binary in its own scratch image (tag) with SMOKE_ARGS until it answers; the image removed after."""
    try:
        made = _toolkit("image", "--tag", tag, "--binary", str(binary.resolve()), "--sbom", "none", "--arch", arch,
                        timeout=300)
        if made.returncode != 0:
            return Smoke(binary.name, arch, False, f"image: {error_line(made.stderr)}")
        usage = None  # the first answer that is the program's own usage text, exiting 1 or 2
        for args in SMOKE_ARGS:
            try:
                # arguments replace the image's CMD (as docker run's do): the program first
                ran = _toolkit("run", "--tag", tag, "--", f"/{binary.name}", *args, timeout=_SMOKE_SECONDS)
            except subprocess.TimeoutExpired:
                continue
            said = (ran.stdout + ran.stderr).strip()
            how = args[0] if args else "no arguments"
            if ran.returncode == 0 and said:
                return Smoke(binary.name, arch, True, how)
            if usage is None and ran.returncode in (1, 2) and "usage" in said.lower():
                usage = Smoke(binary.name, arch, True, f"{how}: usage, exit {ran.returncode}")
        if usage is None:  # a program that draws (sl's train) answers nothing until it has a terminal
            try:
                ran = _toolkit("run", "--tty", "--tag", tag, "--", f"/{binary.name}", timeout=_SMOKE_SECONDS)
                if ran.returncode == 0 and ran.stdout.strip():
                    return Smoke(binary.name, arch, True, "no arguments, on a terminal")
            except subprocess.TimeoutExpired:
                pass
        return usage or Smoke(binary.name, arch, False, f"no answer to {SMOKE_SAID}")
    except subprocess.TimeoutExpired:
        return Smoke(binary.name, arch, False, "image: timed out")
    finally:
        try:
            remove(tag)
        except ToolkitError as exc:
            log.warning("the smoke image %s was not removed: %s", tag, exc)


def engine_remover() -> Callable[[str], None]:
    """Removes an image from the engine by its tag."""
    from .engine import client as engine

    client = engine.connect()

    def remove(tag: str) -> None:
        with engine.step(f"removing {tag}"):
            engine.remove_image(client, tag)

    return remove


# What a failed build's output says, matched in order: the class, and the words that name the cause.
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("fetch", re.compile(r"^.*(?:404\s+Not Found|the mirror has no upstream tarball|Failed to fetch"
                         r"|no source package ).*$", re.M)),
    ("no-static-archive", re.compile(r"^.*(?:ships no static archive|attempted static link of dynamic object"
                                     r"|cannot find -l\S+|no static archive).*$", re.M)),
    ("dlopen", re.compile(r"^.*(?:Using 'dlopen' in statically linked|undefined reference to `dl(?:open|sym)'"
                          r"|dlopen).*$", re.M)),
    ("dynamic", re.compile(r"^.*(?:came out dynamic|dynamically linked|is static:).*$", re.M)),
)


def classify(said: str) -> tuple[str, str]:
    """A failed build's output: its class (CLASSES) and the lines that name the cause."""
    for name, rule in _RULES:
        found = rule.findall(said)
        if found:
            return name, " ".join(dict.fromkeys(line.strip() for line in found[-3:]))[:400]
    tail = [line.strip()[:240] for line in said.splitlines() if line.strip()][-5:]
    return "build", " / ".join(tail)[-600:]  # the end: where the error is


def cache_key(package: str, version: str, arch: str, build_image: str) -> str:
    text = json.dumps([CACHE_SCHEMA, __version__, package, version, arch, build_image])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class Cache:
    """Finished results under the user's cache dir, one JSON file per key in a directory per package (remove it to
    build that package again); what cannot be read is built again."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or files.cache_dir() / "census"

    def get(self, package: str, key: str) -> TargetResult | None:
        try:
            doc = json.loads((self.root / package / f"{key}.json").read_text())
            doc["smoke"] = [Smoke(**s) for s in doc.get("smoke", [])]
            return TargetResult(**{**doc, "cached": True})
        except (OSError, ValueError, TypeError):
            return None

    def put(self, package: str, key: str, result: TargetResult) -> None:
        where = self.root / package
        where.mkdir(parents=True, exist_ok=True)
        tmp = where / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({**asdict(result), "cached": False}, sort_keys=True))
        tmp.replace(where / f"{key}.json")


@dataclass
class Census:
    """One census: its targets, the build image its results are keyed on, and how long a build may take."""

    wanted: Sequence[targets.Target]
    build_image: str  # the build image's base and its image ID: a new base is a new build image
    builder_base: str | None
    timeout: int
    cache: Cache
    remove: Callable[[str], None]
    say: Callable[[str], None]
    workdir: Path

    def package(self, spec: str) -> PackageResult:
        from .debian import source

        request = source.parse(spec)
        try:
            src = source.fetch(request)
        except ToolkitError as exc:
            failure, detail = classify(f"{exc.message}\n{getattr(exc, 'log', '')}")
            return PackageResult(request.name, request.version or "?", [
                TargetResult(t.name, False, 0.0, failure if failure == "fetch" else "fetch", detail or exc.message)
                for t in self.wanted])
        result = PackageResult(src.name, src.version)
        for target in self.wanted:
            key = cache_key(src.name, src.version, target.name, self.build_image)
            done = self.cache.get(src.name, key)
            if done is None:
                done = self.target(src.spec, target)
                if done.failure != "timeout":  # a timeout may be the machine's load, not the package
                    self.cache.put(src.name, key, done)
            result.targets.append(done)
        return result

    def target(self, spec: str, target: targets.Target) -> TargetResult:
        from .check import elf, verify

        out = self.workdir.resolve() / f"{spec.replace(':', '_')}-{target.name}"
        args = ["build", "--debian", spec, "--arch", target.name, "--out", str(out), "--timeout", str(self.timeout)]
        if self.builder_base:
            args += ["--builder-base", self.builder_base]
        started = time.monotonic()
        try:
            proc = _toolkit(*args, timeout=self.timeout + 900 if self.timeout else None)  # + build image layers
        except subprocess.TimeoutExpired:
            return TargetResult(target.name, False, time.monotonic() - started, "timeout",
                                f"no result within {self.timeout} s")
        seconds = round(time.monotonic() - started, 1)
        said = proc.stdout + "\n" + proc.stderr
        if proc.returncode != 0:
            failure, detail = classify(proc.stderr or said)
            if "timed out" in error_line(proc.stderr) or "time limit" in error_line(proc.stderr):
                failure = "timeout"
            return TargetResult(target.name, False, seconds, failure, detail)
        programs = sorted(p for p in out.iterdir()  # a program once: not its installed names (symlinks)
                          if p.is_file() and not p.is_symlink() and not p.name.endswith(".spdx.json"))
        result = TargetResult(target.name, True, seconds, programs={p.name: p.stat().st_size for p in programs})
        for p in programs:
            verdict = verify.verify(elf.read(str(p)), target)
            result.notes += [f"{p.name}: {w}" for w in verdict.runtime]
            tag = f"fromscratch-census/{spec.split('=')[0]}-{p.name}:{target.name}".lower()
            result.smoke.append(smoke(p, target.name, re.sub(r"[^a-z0-9/:._-]", "-", tag), self.remove))
        for name in re.findall(r"^left out (\S+): came out dynamic", proc.stderr, re.M):  # its siblings delivered
            result.notes.append(f"{name}: came out dynamic, left out")
        if "Using 'dlopen' in statically linked" in said:
            result.notes.append("dlopen: " + classify(said)[1])
        if not all(s.ok for s in result.smoke):
            result.failure = "smoke"
            result.detail = "; ".join(f"{s.program}: {s.how}" for s in result.smoke if not s.ok)
        return result


def run(names: Sequence[str], census: Census, jobs: int = 1,
        so_far: Callable[[list[PackageResult]], None] = lambda done: None) -> list[PackageResult]:
    """Each package through census, jobs at a time; a progress line as each finishes, and so_far called with the
    results finished until then, in the order of names (a report that is there however long the census runs)."""
    total = len(names)
    count = 0
    finished: dict[str, PackageResult] = {}
    lock = threading.Lock()

    def one(spec: str) -> PackageResult:
        nonlocal count
        try:
            done = census.package(spec)
        except ToolkitError as exc:  # anything else this package hit: its row says so, the others go on
            done = PackageResult(spec, "?", [TargetResult(t.name, False, 0.0, "build", exc.message)
                                             for t in census.wanted])
        with lock:
            count += 1
            finished[spec] = done
            census.say(f"[{count}/{total}] {progress(done)}")
            so_far([finished[n] for n in names if n in finished])
        return done

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, names))


def load(path: Path) -> list[PackageResult]:
    """A report's JSON, read back (to write its Markdown again, or join two runs)."""
    doc = json.loads(path.read_text())
    return [PackageResult(p["package"], p["version"], [
        TargetResult(**{**t, "smoke": [Smoke(**s) for s in t.get("smoke", [])]}) for t in p["targets"]])
        for p in doc]


def progress(p: PackageResult) -> str:
    parts = []
    for t in p.targets:
        state = "static" if t.built else f"failed ({t.failure})"
        smoked = f", smoke {sum(s.ok for s in t.smoke)}/{len(t.smoke)}" if t.built else ""
        parts.append(f"{t.arch} {state}{smoked}, {t.seconds:.0f} s{' (cached)' if t.cached else ''}")
    return f"{p.package} {p.version}: " + "; ".join(parts)


def _by_arch(said: dict[str, list[str]], arch_first: bool = True) -> str:
    """What each target said, once for the targets that said the same: "amd64, arm64: text"."""
    if not said:
        return "-"
    if arch_first:
        return "; ".join(f"{', '.join(archs)}: {text}" for text, archs in said.items())
    return "; ".join(f"{text} ({', '.join(archs)})" for text, archs in said.items())


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "/")


def report(results: Sequence[PackageResult], archs: Iterable[str], markdown: Path, title: str = "Census") -> None:
    """The Markdown table, a summary by failure class, and the same as JSON beside it (written whole or not)."""
    archs = list(archs)
    head = ["package", "version", "programs", *archs, "smoke", "seconds", "bytes", "failure", "detail"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    classes: dict[str, dict[str, list[str]]] = {}  # class: package: targets
    built = total = answered = 0
    for p in results:
        by_arch = {t.arch: t for t in p.targets}
        programs = sorted({name for t in p.targets for name in t.programs})
        cells = []
        for a in archs:
            t = by_arch.get(a)
            cells.append("-" if t is None else "static" if t.built else f"failed: {t.failure}")
        smoke_cells: dict[str, list[str]] = {}
        seconds, sizes = [], []
        failures: dict[str, list[str]] = {}
        details: dict[str, list[str]] = {}
        for t in p.targets:
            total += 1
            built += t.built
            answered += bool(t.built and t.smoke and all(s.ok for s in t.smoke))
            if t.smoke:
                text = ", ".join(f"{s.program} {'ok' if s.ok else 'no'} ({s.how})" for s in t.smoke)
                smoke_cells.setdefault(text, []).append(t.arch)
            seconds.append(f"{t.seconds:.0f}")
            if t.programs:
                sizes.append(f"{t.arch}: " + ", ".join(f"{n} {s:,}" for n, s in sorted(t.programs.items())))
            if t.failure:
                classes.setdefault(t.failure, {}).setdefault(p.package, []).append(t.arch)
                failures.setdefault(t.failure, []).append(t.arch)
                details.setdefault(t.detail, []).append(t.arch)
            for note in {_note_class(n): n for n in t.notes}.items():
                classes.setdefault(note[0], {}).setdefault(p.package, []).append(t.arch)
                details.setdefault(f"note: {note[1]}", []).append(t.arch)
        rows.append("| " + " | ".join(_cell(x) for x in (
            p.package, p.version, ", ".join(programs) or "-", *cells, _by_arch(smoke_cells),
            "/".join(seconds), "; ".join(sizes) or "-", _by_arch(failures, arch_first=False),
            _by_arch(details)[:700])) + " |")
    summary = [f"{built} of {total} builds (package × target) made static programs; {answered} of {total} also "
               f"answered {SMOKE_SAID} in their scratch image (exit 0 with output, or the program's usage with "
               "exit 1 or 2).", "", "| class | count | what to do | packages |", "|---|---:|---|---|"]
    for name in [*CLASSES, *NOTES]:
        if name in classes:
            packages = classes[name]
            listed = ", ".join(f"{n} ({'/'.join(archs)})" for n, archs in packages.items())
            summary.append(f"| {name} | {sum(map(len, packages.values()))} | "
                           f"{_cell(CLASSES.get(name) or NOTES[name])} | {_cell(listed)} |")
    text = f"# {title}\n\n" + "\n".join(summary) + "\n\n" + "\n".join(rows) + "\n"
    doc = json.dumps([asdict(p) for p in results], indent=1, sort_keys=True) + "\n"
    for path, body in ((markdown, text), (markdown.with_suffix(".json"), doc)):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(body)
        tmp.replace(path)
