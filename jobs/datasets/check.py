"""An uploaded dataset is checked here, in a child process with resource limits.

    python -m jobs.datasets.check        # a JSON job on stdin, one JSON line out (see check_in_child)

The parent (``jobs.datasets.ingest.validate``, so every upload, ``trainboard datasets add`` and a new
target) starts this module as a fresh interpreter and waits. The child caps its own address
space (``RLIMIT_AS``) and CPU time (``RLIMIT_CPU``) before it reads a byte of the file, then:

1. bounds the file from its headers and metadata, before anything is inflated or parsed: a CSV's
   header row (quoted newlines included) and its line count, a Parquet file's footer (rows, row
   groups, unpacked bytes, nested columns), an NPZ's zip entries and ``.npy`` headers, an image
   zip's entries and each image's header (total pixels) — see :func:`precheck`;
2. loads it with the engine's own loader and builds the dataset report.

A file that still needs more memory or CPU than allowed (a compression bomb, a lying header)
kills or fails only this child; the parent turns that into a message for the user
(:func:`jobs.datasets.ingest.validate`). The dashboard's memory never grows with the file.

Limits come from the environment, read by the parent (:meth:`CheckLimits.from_env`) and sent to
the child with the job, so both see the same numbers.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import re
import resource
import sys
import types
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

from engine.limits import MAX_COLUMNS
from engine.messages import Message

TABLE_TEXT = (".csv", ".tsv", ".txt")
HEADER_BYTES = 4 << 20  # a header row longer than this is refused before parsing
IMAGE_HEAD_BYTES = 64 << 10  # enough of an image to read its size from the header
MAX_NPZ_ARRAYS = 64


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError as e:
        raise ValueError(f"{name} must be a number, got {raw!r}") from e
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


@dataclass(frozen=True)
class CheckLimits:
    """What checking one uploaded file may cost, and the bounds read from its headers.

    Each limit is named in the message it produces, with the setting that changes it."""

    memory_bytes: int  # TRAINBOARD_CHECK_MEMORY_MB: address space the check may add
    cpu_s: int  # TRAINBOARD_CHECK_CPU_S: CPU seconds the check may use
    max_cells: int  # TRAINBOARD_MAX_CELLS: rows × columns (tables), values (arrays)
    max_pixels: int  # TRAINBOARD_MAX_PIXELS: all images together
    max_unpacked: int  # TRAINBOARD_MAX_UNPACKED_MB: decompressed bytes (zip, npz, parquet)
    max_zip_files: int  # TRAINBOARD_MAX_ZIP_FILES: entries in an image zip
    max_name: int = 200  # characters in a column or array name

    @classmethod
    def from_env(cls) -> CheckLimits:
        return cls(
            memory_bytes=int(_env_number("TRAINBOARD_CHECK_MEMORY_MB", 4096) * 2**20),
            cpu_s=max(1, int(_env_number("TRAINBOARD_CHECK_CPU_S", 120))),
            max_cells=int(_env_number("TRAINBOARD_MAX_CELLS", 100_000_000)),
            max_pixels=int(_env_number("TRAINBOARD_MAX_PIXELS", 100_000_000)),
            max_unpacked=int(_env_number("TRAINBOARD_MAX_UNPACKED_MB", 1024) * 2**20),
            max_zip_files=int(_env_number("TRAINBOARD_MAX_ZIP_FILES", 100_000)),
        )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def size_text(n: float) -> str:
    """Bytes as people write them: '4 GiB', '512 MiB'."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.3g} {unit}"
    return f"{int(n)} bytes"


class Refused(Exception):
    """The file is refused; the message is for the user (it names the file)."""


# --- bounds from headers and metadata ---------------------------------------------------------


def precheck(path: Path, where: str, ext: str, limits: CheckLimits) -> None:
    """Refuse a file whose headers or metadata already say it is too big, before it is parsed."""
    if ext in TABLE_TEXT:
        _precheck_text(path, where, ext, limits)
    elif ext in (".parquet", ".pq"):
        _precheck_parquet(path, where, limits)
    elif ext == ".npz":
        _precheck_npz(path, where, limits)
    elif ext == ".xlsx":
        _precheck_xlsx(path, where, limits)
    elif ext == ".jsonl":
        _precheck_jsonl(path, where, limits)
    elif ext == ".zip":
        _precheck_image_zip(path, where, limits)


def _refuse_unpacked(size: int, what: Message, where: str, limits: CheckLimits) -> NoReturn:
    """The one refusal for a file whose declared unpacked size is over the limit (``what``:
    "the archive unpacks", "the arrays unpack", …, as a message)."""
    raise Refused(
        Message(
            "upload.unpacked",
            file=where,
            what=what,
            size=size_text(size),
            limit=size_text(limits.max_unpacked),
        )
    )


def _open_zip(path: Path, refusal: Message) -> zipfile.ZipFile:
    """The file as a zip, or ``Refused(refusal)`` when it is none (a workbook, an .npz and an
    image archive are each a zip)."""
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise Refused(refusal) from e


def _check_name(name: str, what: Message, where: str, limits: CheckLimits) -> None:
    if len(name) > limits.max_name:
        raise Refused(
            Message(
                "upload.long_name", file=where, what=what, length=len(name), limit=limits.max_name
            )
        )


def _check_cells(
    rows: int, columns: int, where: str, limits: CheckLimits, *, up_to: bool = False
) -> None:
    cells = rows * columns
    if cells > limits.max_cells:
        raise Refused(
            Message(
                "upload.cells_up_to" if up_to else "upload.cells",
                file=where,
                rows=rows,
                columns=columns,
                cells=cells,
                limit=limits.max_cells,
            )
        )


def _header_record(head: bytes) -> bytes | None:
    """The first record of a CSV text (a quoted field may hold newlines); None if it does not
    end within ``head``."""
    quoted = False
    for i, b in enumerate(head):
        if b == 0x22:  # '"': a doubled quote inside a quoted field toggles twice
            quoted = not quoted
        elif b == 0x0A and not quoted:
            return head[:i]
    return None


def _precheck_text(path: Path, where: str, ext: str, limits: CheckLimits) -> None:
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(HEADER_BYTES + 1)
    record = _header_record(head)
    if record is None:
        if len(head) > HEADER_BYTES:
            raise Refused(Message("upload.long_header", file=where, limit=size_text(HEADER_BYTES)))
        record = head  # one line without a newline: the whole file is the header
    text = record.decode("utf-8", errors="replace").rstrip("\r")
    if ext == ".csv":
        sep = ","
    elif ext == ".tsv":
        sep = "\t"
    else:
        sep = max("\t,;", key=text.count) if any(c in text for c in "\t,;") else ","
    csv.field_size_limit(HEADER_BYTES + 1)
    try:
        names = next(csv.reader(io.StringIO(text), delimiter=sep), [])
    except csv.Error:
        return  # the loader says what is malformed
    if len(names) > MAX_COLUMNS:
        raise Refused(
            Message("upload.header_columns", file=where, columns=len(names), limit=MAX_COLUMNS)
        )
    for i, name in enumerate(names):
        _check_name(name, Message("upload.what.column_n", n=i + 1), where, limits)
    # Rows: at most one per line break (a quoted newline only overcounts). Counted in chunks.
    lines = 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            lines += chunk.count(b"\n")
    _check_cells(max(lines, 1), max(len(names), 1), where, limits, up_to=True)
    if size > limits.max_unpacked:
        raise Refused(
            Message(
                "upload.text_size",
                file=where,
                size=size_text(size),
                limit=size_text(limits.max_unpacked),
            )
        )


def _nested_kind(arrow_type: Any) -> str | None:
    import pyarrow as pa

    t = pa.types
    if t.is_struct(arrow_type):
        return "struct"
    if t.is_map(arrow_type):
        return "map"
    if t.is_list(arrow_type) or t.is_large_list(arrow_type) or t.is_fixed_size_list(arrow_type):
        return "list"
    if t.is_union(arrow_type):
        return "union"
    if t.is_nested(arrow_type):
        return "nested value"
    return None


def _precheck_parquet(path: Path, where: str, limits: CheckLimits) -> None:
    try:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        meta = pf.metadata
        schema = pf.schema_arrow
    except MemoryError:
        raise  # a footer too big for the budget: the memory message, not "invalid"
    except Exception as e:  # pyarrow raises ArrowInvalid/OSError variants for non-parquet bytes
        raise Refused(Message("upload.bad_parquet", file=where, why=e.__class__.__name__)) from e
    for field in schema:
        _check_name(
            str(field.name), Message("upload.what.column", name=str(field.name)[:40]), where, limits
        )
        kind = _nested_kind(field.type)
        if kind is not None:
            raise Refused(
                Message("upload.nested_column", file=where, column=str(field.name), kind=kind)
            )
    if len(schema) > MAX_COLUMNS or meta.num_columns > MAX_COLUMNS:
        raise Refused(
            Message(
                "upload.columns",
                file=where,
                columns=max(len(schema), meta.num_columns),
                limit=MAX_COLUMNS,
            )
        )
    _check_cells(meta.num_rows, max(len(schema), 1), where, limits)
    unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if unpacked > limits.max_unpacked:
        _refuse_unpacked(unpacked, Message("upload.what.row_groups"), where, limits)


def _npy_header(f: Any) -> tuple[tuple[int, ...], Any]:
    import numpy as np

    version = np.lib.format.read_magic(f)
    read = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, _, dtype = read(f, max_header_size=10_000)
    return tuple(int(s) for s in shape), dtype


_DIMENSION = re.compile(rb'<dimension ref="[A-Z]+\d+(?::([A-Z]+)(\d+))?"')
XLSX_RATIO = 100  # an XML sheet packs 10–20×; beyond this a workbook is a zip bomb


def _column_number(letters: bytes) -> int:
    n = 0
    for c in letters.decode():
        n = n * 26 + ord(c) - 64
    return n


def _precheck_xlsx(path: Path, where: str, limits: CheckLimits) -> None:
    """An Excel workbook is a zip of XML: bound its entries and unpacked size like any zip,
    and its first sheet's rows × columns from the sheet's own <dimension> tag, before openpyxl
    parses a byte of it."""
    zf = _open_zip(path, Message("upload.bad_xlsx", file=where))
    with zf:
        infos = zf.infolist()
        if len(infos) > 10_000:
            raise Refused(Message("upload.xlsx_parts", file=where, parts=len(infos)))
        declared = sum(i.file_size for i in infos)
        packed = sum(i.compress_size for i in infos)
        if declared > limits.max_unpacked:
            _refuse_unpacked(declared, Message("upload.what.workbook"), where, limits)
        if declared > 1 << 20 and declared > XLSX_RATIO * max(packed, 1):
            raise Refused(
                Message(
                    "upload.xlsx_ratio",
                    file=where,
                    ratio=declared / max(packed, 1),
                    limit=XLSX_RATIO,
                )
            )
        sheets = sorted(
            (i for i in infos if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", i.filename)),
            key=lambda i: int(re.sub(r"\D", "", i.filename) or 0),
        )
        if not sheets:
            raise Refused(Message("upload.xlsx_no_sheet", file=where))
        with zf.open(sheets[0]) as f:
            head = f.read(64 * 1024)
    m = _DIMENSION.search(head)
    if m and m.group(1):
        rows, columns = int(m.group(2)), _column_number(m.group(1))
        if columns > MAX_COLUMNS:
            raise Refused(Message("upload.columns", file=where, columns=columns, limit=MAX_COLUMNS))
        _check_cells(rows, columns, where, limits)


def _precheck_jsonl(path: Path, where: str, limits: CheckLimits) -> None:
    """JSON Lines: one flat object per line. The first line must be one (no nesting, at most
    MAX_COLUMNS keys); the line count × its keys bounds the cells."""
    with path.open("rb") as f:
        first = f.readline(HEADER_BYTES + 1)
        if len(first) > HEADER_BYTES:
            raise Refused(
                Message("upload.long_first_line", file=where, limit=size_text(HEADER_BYTES))
            )
        lines = 1 + sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    try:
        row = json.loads(first)
    except ValueError as e:
        raise Refused(Message("upload.jsonl_not_json", file=where, why=e.__class__.__name__)) from e
    if not isinstance(row, dict) or not row:
        raise Refused(Message("upload.jsonl_not_object", file=where))
    if len(row) > MAX_COLUMNS:
        raise Refused(Message("upload.jsonl_keys", file=where, keys=len(row), limit=MAX_COLUMNS))
    nested = [k for k, v in row.items() if isinstance(v, dict | list)]
    if nested:
        raise Refused(Message("upload.jsonl_nested", file=where, key=str(nested[0])[:40]))
    _check_cells(lines, len(row), where, limits)


def _precheck_npz(path: Path, where: str, limits: CheckLimits) -> None:
    zf = _open_zip(path, Message("upload.bad_npz", file=where))
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_NPZ_ARRAYS:
            raise Refused(Message("upload.npz_arrays", file=where, arrays=len(infos)))
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_unpacked:
            _refuse_unpacked(declared, Message("upload.what.arrays"), where, limits)
        pixels = 0
        for info in infos:
            _check_name(
                info.filename, Message("upload.what.array", name=info.filename[:40]), where, limits
            )
            try:
                with zf.open(info) as f:
                    shape, dtype = _npy_header(f)
            except Exception as e:  # a broken header: the loader names it
                if isinstance(e, MemoryError):
                    raise
                continue
            values = math.prod(shape)
            if values * max(dtype.itemsize, 1) > limits.max_unpacked:
                raise Refused(
                    Message(
                        "upload.array_bytes",
                        file=where,
                        array=info.filename,
                        shape=str(shape),
                        size=size_text(values * dtype.itemsize),
                        limit=size_text(limits.max_unpacked),
                    )
                )
            if values > limits.max_cells:
                raise Refused(
                    Message(
                        "upload.array_values",
                        file=where,
                        array=info.filename,
                        shape=str(shape),
                        values=values,
                        limit=limits.max_cells,
                    )
                )
            if len(shape) == 4:  # (N, C, H, W): N·H·W pixels
                pixels += shape[0] * shape[2] * shape[3]
            elif len(shape) == 3:  # (N, H, W) images, or sequences: counted alike
                pixels += values
        if pixels > limits.max_pixels:
            raise Refused(
                Message("upload.npz_pixels", file=where, pixels=pixels, limit=limits.max_pixels)
            )


def _image_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:
        return None  # not an image, or its header is further in: the loader decides


def _precheck_image_zip(path: Path, where: str, limits: CheckLimits) -> None:
    zf = _open_zip(path, Message("upload.bad_zip", file=where))
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_zip_files:
            raise Refused(
                Message(
                    "upload.zip_entries", file=where, entries=len(infos), limit=limits.max_zip_files
                )
            )
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_unpacked:
            _refuse_unpacked(declared, Message("upload.what.archive"), where, limits)
        pixels = 0
        for info in infos:
            if info.is_dir() or info.file_size == 0:
                continue
            if PurePosixPath(info.filename).suffix.lower() not in (
                ".png",
                ".jpg",
                ".jpeg",
                ".bmp",
                ".gif",
                ".webp",
            ):
                continue
            try:
                with zf.open(info) as f:
                    head = f.read(IMAGE_HEAD_BYTES)
            except Exception as e:
                if isinstance(e, MemoryError):
                    raise
                continue  # the loader names a broken entry
            size = _image_size(head)
            if size is None:
                continue
            pixels += size[0] * size[1]
            if pixels > limits.max_pixels:
                raise Refused(Message("upload.zip_pixels", file=where, limit=limits.max_pixels))


# --- the child ----------------------------------------------------------------------------------


def _vm_bytes() -> int:
    """This process's address space now (VmSize), in bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _Budget:
    """The child's address-space limit: ``memory_bytes`` for the check itself, on top of what the
    interpreter and its libraries map (a CUDA build of torch maps gigabytes it never touches).
    Only the soft limit is set, so importing a library can lift it for a moment
    (:meth:`lifted`) and the file's data still gets no more than the budget."""

    def __init__(self, memory_bytes: int) -> None:
        self.memory = memory_bytes
        self.data_used = 0  # address space the check added while the limit was on
        self._hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        self._start = 0
        self._libraries: int | None = None

    def apply(self) -> None:
        self._start = _vm_bytes()
        if self._libraries is None:
            self._libraries = self._start
        soft = self._start + self.memory - self.data_used
        if self._hard != resource.RLIM_INFINITY:
            soft = min(soft, self._hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, self._hard))

    def effective(self) -> int:
        """The memory a check may really use (less under a lower hard limit, e.g. ulimit -v)."""
        if self._hard == resource.RLIM_INFINITY:
            return self.memory
        return max(0, min(self.memory, self._hard - (self._libraries or 0)))

    def lift(self) -> None:
        self.data_used += max(0, _vm_bytes() - self._start)
        resource.setrlimit(resource.RLIMIT_AS, (self._hard, self._hard))


def _light_loaders() -> types.ModuleType:
    """``engine.data.loaders`` without ``engine.data``'s package imports (torch, scikit-learn):
    most refused files never need them, and they would cost seconds and address space."""
    if "engine.data" not in sys.modules:
        spec = importlib.util.find_spec("engine.data")
        if spec is not None and spec.submodule_search_locations:
            pkg = types.ModuleType("engine.data")
            pkg.__path__ = list(spec.submodule_search_locations)
            pkg.__package__ = "engine.data"
            pkg.__spec__ = spec
            sys.modules["engine.data"] = pkg
    import engine.data.loaders as loaders

    return loaders


def report_dict(raw: Any) -> dict[str, Any]:
    """The dataset report of a loaded dataset as a JSON-ready dict, with the columns a user may
    pick as the target and what a run's size estimate needs (``jobs.runs.quotas``)."""
    from engine.data.report import dataset_report

    report = dataset_report(raw).to_dict()
    # Columns a user may pick as the target: a table's own columns, else the feature names.
    if raw.frame is not None:
        report["choices"] = [str(c) for c in raw.frame.columns]
    else:
        report["choices"] = []
    report["classes"] = raw.class_names
    report["input_shape"] = [int(n) for n in raw.x.shape[1:]]
    report["outputs"] = len(raw.class_names) if raw.class_names else 1
    return report


def memory_message(where: str, limit: int) -> Message:
    return Message("upload.memory", file=where, limit=size_text(limit))


def cpu_message(where: str, cpu_s: int) -> Message:
    return Message("upload.cpu", file=where, seconds=cpu_s)


def _error(message: str) -> dict[str, Any]:
    """The child's answer for a refusal: its English text, and its code and params when it is a
    coded message, so the page shows it in the reader's language."""
    out: dict[str, Any] = {"error": str(message)}
    if isinstance(message, Message):
        out["error_msg"] = message.to_json()
    return out


def run_check(job: dict[str, Any]) -> dict[str, Any]:
    """The child's work: limits on, bounds from the headers, then the engine's loader and the
    report. Returns {"report": …} or {"error": message}."""
    limits = CheckLimits(**job["limits"])
    path, where, target = Path(job["path"]), job["filename"], job.get("target")
    ext = Path(where).suffix.lower()
    budget = _Budget(limits.memory_bytes)
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu_now = int(used.ru_utime + used.ru_stime) + 1
    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft_cpu = cpu_now + limits.cpu_s
    if cpu_hard != resource.RLIM_INFINITY:
        soft_cpu = min(soft_cpu, cpu_hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft_cpu, cpu_hard))
    loaders = _light_loaders()
    import numpy  # noqa: F401  (mapped before the limit: it is not the file's memory)
    import pandas  # noqa: F401

    if ext in (".parquet", ".pq"):
        import pyarrow.parquet  # noqa: F401
    if ext == ".zip":
        import PIL.Image  # noqa: F401
    if ext == ".xlsx":
        import openpyxl  # noqa: F401
    from engine.errors import DataError

    budget.apply()
    try:
        precheck(path, where, ext, limits)
        loaders.MAX_ZIP_FILES = limits.max_zip_files
        loaders.MAX_ZIP_BYTES = limits.max_unpacked
        raw = loaders.load_dataset(str(path), target=target)
        budget.lift()
        import engine.data.report  # noqa: F401  (torch, via engine.data.prepare: libraries)

        budget.apply()
        report = report_dict(raw)
        del raw
        return {"report": report}
    except Refused as e:
        return _error(e.args[0])
    except DataError as e:
        # The loader names the temporary file; the user knows the file by its own name. The
        # message's code and params go along, so the page shows it in the reader's language.
        first = e.args[0] if e.args else None
        out: dict[str, Any] = {"error": str(e).replace(path.name, where)}
        if isinstance(first, Message):
            params = {
                k: where if v == path.name else v for k, v in first.to_json()["params"].items()
            }
            out["error_msg"] = {"code": first.code, "params": params}
        return out
    except MemoryError:
        return _error(memory_message(where, budget.effective()))
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        if "memory" in str(e).lower() or "bad_alloc" in str(e):
            return _error(memory_message(where, budget.effective()))
        text = str(e).replace(str(path), where).replace(path.name, where)[:300]
        return _error(Message("upload.unreadable", file=where, why=text))
    except Exception as e:  # a library's own error type for a broken file
        import traceback

        traceback.print_exc()
        return _error(Message("upload.unreadable", file=where, why=type(e).__name__))


def main() -> int:
    # The answer goes to the real stdout; anything a library prints goes to stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    job = json.loads(sys.stdin.read())
    result = run_check(job)
    out.write(json.dumps(result) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
