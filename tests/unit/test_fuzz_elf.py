"""Property test: real ELF files with their headers, program header tables and lengths mutated at random.
Whatever the bytes, verify returns a verdict (or a ToolkitError), never a traceback."""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import elfgen
from tests.conftest import gcc
from toolkit import targets
from toolkit.check import elf, ldso, verify
from toolkit.check import image as imagecheck
from toolkit.errors import ToolkitError

CASES = 10_000
INTERESTING = (0, 1, 2, 3, 7, 8, 0x38, 0x40, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
               0xFFFFFFFF, 2**63 - 1, 2**63, 2**64 - 1)
# (offset, size) of the ELF header fields worth lying about, per class
HEADER_FIELDS = {
    64: [(4, 1), (5, 1), (7, 1), (16, 2), (18, 2), (24, 8), (32, 8), (40, 8), (48, 4), (54, 2), (56, 2),
         (58, 2), (60, 2), (62, 2)],
    32: [(4, 1), (5, 1), (7, 1), (16, 2), (18, 2), (24, 4), (28, 4), (32, 4), (36, 4), (42, 2), (44, 2),
         (46, 2), (48, 2), (50, 2)],
}


@pytest.fixture(scope="module")
def seeds(binaries, tmp_path_factory) -> list[bytes]:
    """gcc's outputs (static, static-pie, dynamic, shared, object) and foreign identities from elfgen."""
    tmp = tmp_path_factory.mktemp("seeds")
    small_static = gcc(tmp, "int main(void){ return 0; }\n", "-static", "-s", "-Os", name="tiny")
    out = [small_static.read_bytes()] + [binaries[k].read_bytes() for k in ("dynamic", "shared", "object")]
    out += [elfgen.build(spec) for spec in (
        elfgen.Spec(elf_class=32, machine=elfgen.EM["arm"], flags=0x5000400, entry=0x10000,
                    arm_attributes=elfgen.arm_attributes(10, 1), symbols=("main", "getaddrinfo")),
        elfgen.Spec(little=False, machine=elfgen.EM["s390"], etype=3, entry=0x1000,
                    interp="/lib/ld64.so.1", needed=("libc.so.6",), runpath="$ORIGIN/../lib"),
        elfgen.Spec(elf_class=32, machine=elfgen.EM["386"], etype=3, entry=0x1000, dynamic=True, pie_flag=True),
    )]
    return out


def mutation():
    value = st.one_of(st.sampled_from(INTERESTING), st.integers(0, 2**64 - 1))
    header = st.tuples(st.just("header"), st.integers(0, 13), value)
    phdr = st.tuples(st.just("phdr"), st.integers(0, 15), st.integers(0, 55), value)
    raw = st.tuples(st.just("raw"), st.integers(0, 4095), st.binary(min_size=1, max_size=8))
    # inside what a segment points at: PT_DYNAMIC entries, notes, the interpreter path
    inside = st.tuples(st.just("inside"), st.integers(0, 15), st.floats(0, 1), st.binary(min_size=1, max_size=8))
    return st.one_of(header, phdr, raw, inside)


def apply(seed: bytes, edits: list, cut: int | None) -> bytes:
    data = bytearray(seed)
    is64 = data[4] == 2
    order = "<" if data[5] != 2 else ">"
    fields = HEADER_FIELDS[64 if is64 else 32]
    phoff = struct.unpack_from(order + ("Q" if is64 else "I"), data, 32 if is64 else 28)[0]
    phentsize = 56 if is64 else 32
    phnum = struct.unpack_from(order + "H", data, 56 if is64 else 44)[0]
    segments = []  # (p_offset, p_filesz) of the unmutated file
    for i in range(phnum if phoff + phnum * phentsize <= len(data) else 0):
        rec = struct.unpack_from(order + ("IIQQQQQQ" if is64 else "IIIIIIII"), data, phoff + i * phentsize)
        segments.append((rec[2], rec[5]) if is64 else (rec[1], rec[4]))
    for edit in edits:
        if edit[0] == "header":
            offset, size = fields[edit[1]]
            _put(data, offset, (edit[2] % (1 << (8 * size))).to_bytes(size, "little" if order == "<" else "big"))
        elif edit[0] == "phdr":
            offset = phoff + edit[1] * phentsize + edit[2]
            _put(data, offset, (edit[3] & 0xFFFFFFFF).to_bytes(4, "little" if order == "<" else "big"))
        elif edit[0] == "inside":
            if segments:
                offset, size = segments[edit[1] % len(segments)]
                _put(data, offset + int(size * edit[2]), edit[3])
        else:
            _put(data, edit[1], edit[2])
    if cut is not None:
        del data[cut % (len(data) + 1):]
    return bytes(data)


def _put(data: bytearray, offset: int, value: bytes) -> None:
    if 0 <= offset < len(data):
        data[offset:offset + len(value)] = value[:len(data) - offset]


def judge(data: bytes, path: str | None = None) -> None:
    try:
        facts = elf.read(path) if path else elf.read_stream(io.BytesIO(data), "fuzz", len(data), 0o755)
    except ToolkitError:
        return
    for want in (None, targets.lookup("arm64")):
        verdict = verify.verify(facts, want)
        assert verdict.checks and isinstance(verdict.ok, bool)
        assert verdict.render()
        json.dumps(verdict.to_dict())
        if facts.corrupt:
            assert not verdict.ok
    if facts.is_elf and not facts.corrupt:  # the image check's loader reads the same facts
        ldso.Loader(imagecheck.ImageFS()).resolve_all(facts, "/fuzz")


def test_mutated_elf_files_always_get_a_verdict(seeds):
    ran = 0

    @settings(max_examples=CASES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.integers(0, len(seeds) - 1), st.lists(mutation(), max_size=6),
           st.one_of(st.none(), st.integers(0, 1 << 20)))
    def one(which, edits, cut):
        nonlocal ran
        ran += 1
        judge(apply(seeds[which], edits, cut))

    one()
    assert ran >= CASES


def test_mutated_files_on_disk_take_the_same_path(seeds):
    """A few hundred cases through elf.read on real files (os.pread rather than a BytesIO)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fuzz")

        @settings(max_examples=300, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(st.integers(0, len(seeds) - 1), st.lists(mutation(), max_size=6),
               st.one_of(st.none(), st.integers(0, 1 << 20)))
        def one(which, edits, cut):
            data = apply(seeds[which], edits, cut)
            with open(path, "wb") as fh:
                fh.write(data)
            judge(data, path)

        one()
