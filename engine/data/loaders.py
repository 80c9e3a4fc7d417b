"""``load_dataset``: files and built-ins in, a :class:`RawDataset` out.

Formats: .csv, .tsv, .txt (tab, comma or semicolon, sniffed), .parquet/.pq, .npz, and .zip of
class-named image folders. See docs/data.md for the rules applied to each.
"""

from __future__ import annotations

import csv
import io
import math
import stat
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from engine.data.base import DataError, RawDataset, warning
from engine.data.builtins import is_builtin, load_builtin, unknown_builtin
from engine.data.tabular import dataset_from_frame, encode_target
from engine.limits import EXTENSIONS, MAX_COLUMNS, TABLE_EXTENSIONS
from engine.messages import Message

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MAX_IMAGE_SIDE = 64
# Guards against hostile archives and files (issue: safe uploads). Each limit names itself in
# the message it produces, so a user knows which one they hit.
MAX_ZIP_BYTES = 1 << 30  # total uncompressed size
MAX_ZIP_RATIO = 100  # uncompressed / compressed, per entry and in total: beyond it, a zip bomb
MAX_ZIP_FILES = 100_000
MAX_IMAGE_PIXELS = 4096 * 4096  # per decoded image; checked from the header before decoding
_IGNORED = ("__MACOSX/", ".DS_Store", "Thumbs.db", "desktop.ini")


def check_source(source: str) -> None:
    """What :func:`load_dataset` refuses without reading any data: an unknown built-in, an
    unsupported file type, a missing or empty file (``trainboard submit`` asks this first)."""
    if source.startswith("builtin:"):
        name = source.removeprefix("builtin:")
        if not is_builtin(name):
            raise unknown_builtin(name)
        return
    path = Path(source)
    ext = path.suffix.lower()
    if ext not in EXTENSIONS:
        raise DataError(
            Message(
                "data.file_type",
                where=path.name,
                ext=ext or "(no extension)",
                allowed=", ".join(EXTENSIONS),
            )
        )
    if not path.is_file():
        raise DataError(Message("data.not_found", where=source[:300]))
    if path.stat().st_size == 0:
        raise DataError(Message("data.empty_file", where=path.name))


def load_dataset(
    source: str,
    *,
    target: str | None = None,
    task: str = "auto",
    columns: dict[str, str] | None = None,
) -> RawDataset:
    """Load a file path or ``builtin:NAME``.

    ``target``: the target column (tables) or array name (NPZ); by default the column a person
    would pick (:func:`engine.data.tabular.guess_target`: named like a label, else the last
    column unless it is an ID, a date or free text). Ignored for image zips, whose target
    is the folder name. ``task``: "auto" (see :func:`engine.data.tabular.auto_task`),
    "classification" or "regression". ``columns``: a table's column kinds chosen by the user
    (``data.columns``, :mod:`engine.data.columns`); the rest are guessed.
    """
    if task not in ("auto", "classification", "regression"):
        raise DataError(Message("data.bad_task", value=task))
    check_source(source)
    if source.startswith("builtin:"):
        return load_builtin(
            source.removeprefix("builtin:"), target=target, task=task, columns=columns
        )
    path = Path(source)
    ext = path.suffix.lower()
    if ext in TABLE_EXTENSIONS:
        frame = _read_table(path, ext)
        return dataset_from_frame(
            frame, source=str(path), target=target, task=task, columns=columns
        )
    if ext == ".npz":
        return _load_npz(path, target=target, task=task)
    return _load_image_zip(path, task=task)


def _check_text(path: Path) -> None:
    """A text table must be UTF-8 text: say so plainly instead of a codec traceback."""
    with path.open("rb") as f:
        head = f.read(64 * 1024)
    if b"\x00" in head or head.startswith(
        (b"\x89PNG", b"PK\x03\x04", b"\x7fELF", b"MZ", b"%PDF", b"PAR1")
    ):
        raise DataError(Message("data.binary", where=path.name))
    try:
        # an incomplete multi-byte character at the cut is fine: decode what is complete
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:
            raise DataError(Message("data.not_utf8_at", where=path.name, byte=e.start)) from e


def _check_columns(n_columns: int, where: str) -> None:
    if n_columns > MAX_COLUMNS:
        raise DataError(
            Message("data.too_many_columns", where=where, count=n_columns, limit=MAX_COLUMNS)
        )


def _read_table(path: Path, ext: str) -> pd.DataFrame:
    if ext in (".csv", ".tsv", ".txt"):
        _check_text(path)
        with path.open("rb") as f:
            first_line = f.readline(4 * 1024 * 1024)
        if first_line.count(b",") + first_line.count(b"\t") + first_line.count(b";") >= MAX_COLUMNS:
            raise DataError(Message("data.header_too_wide", where=path.name, limit=MAX_COLUMNS))
    try:
        if ext in (".parquet", ".pq"):
            try:
                import pyarrow.parquet as pq

                n_cols = len(pq.read_schema(path).names)
            except (
                Exception
            ) as e:  # pyarrow raises ArrowInvalid/OSError variants for non-parquet bytes
                raise DataError(
                    Message("data.bad_parquet", where=path.name, error=e.__class__.__name__)
                ) from e
            _check_columns(n_cols, path.name)
            return pd.read_parquet(path)
        if ext == ".xlsx":
            # the first sheet, through openpyxl (the upload check bounded its size first)
            frame = pd.read_excel(path, sheet_name=0, engine="openpyxl")
            _check_columns(frame.shape[1], path.name)
            return frame
        if ext == ".jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
            nested = [
                c for c in frame.columns if frame[c].map(lambda v: isinstance(v, dict | list)).any()
            ]
            if nested:
                raise DataError(Message("data.nested", where=path.name, column=str(nested[0])[:60]))
            _check_columns(frame.shape[1], path.name)
            return frame
        if ext == ".csv":
            sep = ","
        elif ext == ".tsv":
            sep = "\t"
        else:
            with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
                head = f.read(64 * 1024)
            try:
                sep = csv.Sniffer().sniff(head, delimiters="\t,;").delimiter
            except csv.Error:
                sep = "\t" if "\t" in head else ","
        # utf-8-sig: a BOM (Excel writes one) is not part of the first column's name
        frame = pd.read_csv(path, sep=sep, encoding="utf-8-sig")
        _check_columns(frame.shape[1], path.name)
        return frame
    except DataError:
        raise
    except pd.errors.EmptyDataError as e:
        raise DataError(Message("data.no_header", where=path.name)) from e
    except pd.errors.ParserError as e:
        detail = str(e).strip().splitlines()[-1]
        raise DataError(Message("data.malformed", where=path.name, detail=detail)) from e
    except UnicodeDecodeError as e:
        raise DataError(Message("data.not_utf8", where=path.name)) from e
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(Message("data.unreadable_table", where=path.name, error=str(e))) from e


def _check_npz(path: Path, where: str) -> None:
    """Bound an NPZ before a byte of it is inflated: the zip's own limits (entries, unpacked
    size, ratio), then each array's shape from its .npy header — at most MAX_ZIP_BYTES of data
    and MAX_IMAGE_PIXELS per image-shaped slice — so a 2 MB file of zeros, or a header that
    claims (10⁷, 10⁴), is refused instead of allocated."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise DataError(Message("data.npz_not_zip", where=where)) from e
    with zf:
        infos = zf.infolist()
        if len(infos) > 64:
            raise DataError(Message("data.npz_many_arrays", where=where, count=len(infos)))
        total = 0
        for info in infos:
            _check_entry(info, where)
            with zf.open(info) as f:
                try:
                    version = np.lib.format.read_magic(f)
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(f, max_header_size=10_000)
                except (ValueError, OSError, SyntaxError, TypeError) as e:
                    raise DataError(
                        Message("data.npz_not_npy", where=where, name=info.filename)
                    ) from e
            size = math.prod(shape) * dtype.itemsize
            total += size
            if total > MAX_ZIP_BYTES:
                raise DataError(
                    Message(
                        "data.npz_too_big", where=where, mb=total / 2**20, limit=MAX_ZIP_BYTES >> 20
                    )
                )
            if len(shape) >= 3 and math.prod(shape[-2:]) > MAX_IMAGE_PIXELS:
                raise DataError(
                    Message(
                        "data.npz_images_too_big",
                        where=where,
                        name=info.filename,
                        height=shape[-2],
                        width=shape[-1],
                        limit=MAX_IMAGE_PIXELS,
                    )
                )


def _load_npz(path: Path, *, target: str | None, task: str) -> RawDataset:
    where = path.name
    _check_npz(path, where)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        # numpy's own text would suggest allow_pickle=True, which is exactly what must not be
        # done with an uploaded file; say what is wrong in our words instead.
        raise DataError(Message("data.npz_unreadable", where=where)) from e
    names = [k for k in arrays if k != "modality"]
    xkey = next((k for k in ("x", "X") if k in arrays), None)
    if target is not None:
        if target not in arrays:
            raise DataError(
                Message("data.npz_no_array", where=where, name=target, arrays=", ".join(arrays))
            )
        ykey = target
    else:
        ykey = next((k for k in ("y", "Y") if k in arrays), None)
    rest = [k for k in names if k not in (xkey, ykey)]
    xkey = xkey or (rest.pop(0) if rest else None)
    ykey = ykey or (rest.pop(0) if rest else None)
    if xkey is None or ykey is None:
        raise DataError(Message("data.npz_two_arrays", where=where))
    x, y = arrays[xkey], arrays[ykey]
    if x.dtype.kind not in "biuf":
        raise DataError(Message("data.npz_not_numeric", where=where, name=xkey, dtype=str(x.dtype)))
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(
            Message(
                "data.npz_target_shape", where=where, name=ykey, rows=len(x), shape=str(y.shape)
            )
        )
    if len(x) == 0:
        raise DataError(Message("data.npz_no_rows", where=where))
    hint = str(arrays["modality"]) if "modality" in arrays else None
    x = x.astype(np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim == 2:
        modality = "tabular"
    elif x.ndim == 3 and hint == "image":
        modality, x = "image", x[:, None]
    elif x.ndim == 3:
        modality = "sequence"
    elif x.ndim == 4:
        modality = "image"
    else:
        raise DataError(Message("data.npz_dims", where=where, name=xkey, dims=x.ndim))
    if modality == "tabular":
        _check_columns(x.shape[1], where)
    if np.isinf(x).any():
        raise DataError(Message("data.npz_infinite", where=where, name=xkey))
    ys = pd.Series(y)
    keep = ys.notna().to_numpy()
    warnings = []
    if not keep.all():
        if not keep.any():
            raise DataError(Message("data.npz_target_missing", where=where, name=ykey))
        warnings.append(warning("T1", Message("report.no_target", count=int((~keep).sum()))))
        x, ys = x[keep], ys[keep]
    y_enc, task, class_names = encode_target(ys, task, ykey, where)
    n_feat = x.shape[1] if modality == "image" else x.shape[-1]
    prefix = {"tabular": "x", "sequence": "ch", "image": "c"}[modality]
    features = [f"{prefix}{i}" for i in range(n_feat)]
    frame = None
    if modality == "tabular":
        frame = pd.DataFrame(x, columns=features)
        frame[ykey] = ys.to_numpy()
    return RawDataset(
        x, y_enc, modality, task, features, class_names, str(path), ykey, frame, warnings
    )


def _safe_name(name: str, where: str) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise DataError(Message("data.zip_unsafe_path", where=where, name=name))
    return p


def _check_entry(info: zipfile.ZipInfo, where: str) -> None:
    """Only plain files and folders: a symlink could point outside the data directory, and
    device files or FIFOs have no business in a dataset."""
    mode = info.external_attr >> 16
    if mode and stat.S_ISLNK(mode):
        raise DataError(Message("data.zip_symlink", where=where, name=info.filename))
    if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise DataError(Message("data.zip_special", where=where, name=info.filename))
    _check_ratio(info.file_size, info.compress_size, where, info.filename)


def _check_ratio(unpacked: int, packed: int, where: str, name: str | None = None) -> None:
    """A zip bomb's signature: more than 1 MB that expands beyond MAX_ZIP_RATIO× its packed size.
    ``name``: the entry (None: the whole archive)."""
    if unpacked > 1 << 20 and unpacked > MAX_ZIP_RATIO * max(packed, 1):
        code = "data.zip_bomb" if name is None else "data.zip_bomb_entry"
        ratio = unpacked / max(packed, 1)
        raise DataError(Message(code, where=where, name=name, ratio=ratio, limit=MAX_ZIP_RATIO))


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    """Read at most the declared size (+1 byte): a header that lies about its size can't make
    us inflate more than the limits above allowed."""
    with zf.open(info) as f:
        data = f.read(info.file_size + 1)
    if len(data) > info.file_size:
        raise DataError(Message("data.zip_entry_lies", where=where, name=info.filename))
    return data


def _load_image_zip(path: Path, *, task: str) -> RawDataset:
    where = path.name
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow comes with streamlit
        raise DataError(Message("data.needs_pillow")) from e
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise DataError(Message("data.bad_zip", where=where)) from e
    with zf:
        all_infos = zf.infolist()
        if len(all_infos) > MAX_ZIP_FILES:
            raise DataError(
                Message("data.zip_many", where=where, count=len(all_infos), limit=MAX_ZIP_FILES)
            )
        for i in all_infos:
            _safe_name(i.filename, where)
            _check_entry(i, where)
        total = sum(i.file_size for i in all_infos)
        packed = sum(i.compress_size for i in all_infos)
        if total > MAX_ZIP_BYTES:
            raise DataError(
                Message(
                    "data.zip_too_big", where=where, mb=total / 2**20, limit=MAX_ZIP_BYTES >> 20
                )
            )
        _check_ratio(total, packed, where)
        infos = [i for i in all_infos if not i.is_dir()]
        infos = [
            i
            for i in infos
            if not any(s in i.filename for s in _IGNORED)
            and not PurePosixPath(i.filename).name.startswith(".")
        ]
        if not infos:
            raise DataError(Message("data.zip_empty", where=where))
        parts = [_safe_name(i.filename, where).parts for i in infos]
        # One common top folder (dataset/cat/1.png) is allowed and stripped.
        if all(len(p) >= 3 for p in parts) and len({p[0] for p in parts}) == 1:
            parts = [p[1:] for p in parts]
        images, labels = [], []
        for info, p in zip(infos, parts, strict=True):
            if len(p) < 2:
                raise DataError(Message("data.zip_no_folder", where=where, name=info.filename))
            if PurePosixPath(p[-1]).suffix.lower() not in IMAGE_EXTENSIONS:
                raise DataError(
                    Message(
                        "data.zip_not_image",
                        where=where,
                        name=info.filename,
                        allowed=", ".join(IMAGE_EXTENSIONS),
                    )
                )
            try:
                img = Image.open(io.BytesIO(_read_entry(zf, info, where)))
                if img.size[0] * img.size[1] > MAX_IMAGE_PIXELS:
                    # checked from the header, before decoding: a tiny PNG can claim gigapixels
                    raise DataError(
                        Message(
                            "data.image_too_big",
                            where=where,
                            name=info.filename,
                            width=img.size[0],
                            height=img.size[1],
                            limit=MAX_IMAGE_PIXELS,
                        )
                    )
                img.load()
            except DataError:
                raise
            except Exception as e:  # Pillow raises many types for a broken file
                raise DataError(
                    Message("data.image_undecodable", where=where, name=info.filename)
                ) from e
            images.append(img)
            labels.append(p[0])
    gray = all(im.mode in ("1", "L", "LA", "I", "I;16", "F") for im in images)
    (w, h), _ = Counter(im.size for im in images).most_common(1)[0]
    scale = min(1.0, MAX_IMAGE_SIDE / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    arrays = []
    for im in images:
        im = im.convert("L" if gray else "RGB")
        if im.size != size:
            im = im.resize(size, Image.Resampling.BILINEAR)
        a = np.asarray(im, dtype=np.float32) / 255.0
        arrays.append(a[None] if gray else a.transpose(2, 0, 1))
    x = np.stack(arrays)
    y, task, class_names = encode_target(pd.Series(labels, dtype=str), task, "folder", where)
    features = ["gray"] if gray else ["red", "green", "blue"]
    return RawDataset(x, y, "image", task, features, class_names, str(path), "folder")
