"""``load_dataset``: files and built-ins in, a :class:`RawDataset` out.

Formats: .csv, .tsv, .txt (tab, comma or semicolon, sniffed), .parquet/.pq, .npz, and .zip of
class-named image folders. See docs/data.md for the rules applied to each.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from engine.data.base import DataError, RawDataset
from engine.data.builtins import load_builtin
from engine.data.tabular import dataset_from_frame, encode_target

TABLE_EXTENSIONS = (".csv", ".tsv", ".txt", ".parquet", ".pq")
EXTENSIONS = (*TABLE_EXTENSIONS, ".npz", ".zip")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MAX_IMAGE_SIDE = 64
MAX_ZIP_BYTES = 2 << 30  # uncompressed; a guard against zip bombs
_IGNORED = ("__MACOSX/", ".DS_Store", "Thumbs.db", "desktop.ini")


def load_dataset(source: str, *, target: str | None = None, task: str = "auto") -> RawDataset:
    """Load a file path or ``builtin:NAME``.

    ``target``: the target column (tables) or array name (NPZ); by default a column named
    target/label/y/class (any case), else the last column. Ignored for image zips, whose target
    is the folder name. ``task``: "auto" (see :func:`engine.data.tabular.auto_task`),
    "classification" or "regression".
    """
    if task not in ("auto", "classification", "regression"):
        raise DataError(f"task must be one of 'auto', 'classification', 'regression', not {task!r}")
    if source.startswith("builtin:"):
        return load_builtin(source.removeprefix("builtin:"), target=target, task=task)
    path = Path(source)
    ext = path.suffix.lower()
    if ext not in EXTENSIONS:
        raise DataError(
            f"{path.name}: unsupported file type {ext or '(no extension)'!r}. "
            f"Supported: {', '.join(EXTENSIONS)}, or builtin:NAME."
        )
    if not path.is_file():
        raise DataError(f"{source}: file not found.")
    if path.stat().st_size == 0:
        raise DataError(f"{path.name}: the file is empty.")
    if ext in TABLE_EXTENSIONS:
        frame = _read_table(path, ext)
        return dataset_from_frame(frame, source=str(path), target=target, task=task)
    if ext == ".npz":
        return _load_npz(path, target=target, task=task)
    return _load_image_zip(path, task=task)


def _read_table(path: Path, ext: str) -> pd.DataFrame:
    try:
        if ext in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if ext == ".csv":
            sep = ","
        elif ext == ".tsv":
            sep = "\t"
        else:
            with path.open(newline="", encoding="utf-8", errors="replace") as f:
                head = f.read(64 * 1024)
            try:
                sep = csv.Sniffer().sniff(head, delimiters="\t,;").delimiter
            except csv.Error:
                sep = "\t" if "\t" in head else ","
        return pd.read_csv(path, sep=sep)
    except pd.errors.EmptyDataError as e:
        raise DataError(f"{path.name}: the file is empty (no header row).") from e
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as e:
        raise DataError(f"{path.name}: can't be read as a table: {e}") from e


def _load_npz(path: Path, *, target: str | None, task: str) -> RawDataset:
    where = path.name
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{where}: can't be read as an .npz of plain arrays: {e}") from e
    names = [k for k in arrays if k != "modality"]
    xkey = next((k for k in ("x", "X") if k in arrays), None)
    if target is not None:
        if target not in arrays:
            raise DataError(f"{where}: no array named {target!r}; arrays: {', '.join(arrays)}.")
        ykey = target
    else:
        ykey = next((k for k in ("y", "Y") if k in arrays), None)
    rest = [k for k in names if k not in (xkey, ykey)]
    xkey = xkey or (rest.pop(0) if rest else None)
    ykey = ykey or (rest.pop(0) if rest else None)
    if xkey is None or ykey is None:
        raise DataError(f"{where}: needs two arrays, features 'x' and target 'y'.")
    x, y = arrays[xkey], arrays[ykey]
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: array {xkey!r} must be numeric, not {x.dtype}.")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(
            f"{where}: target {ykey!r} must be one value per row: shape ({len(x)},), got {y.shape}."
        )
    if len(x) == 0:
        raise DataError(f"{where}: the arrays have no rows.")
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
        raise DataError(f"{where}: {xkey!r} has {x.ndim} dimensions; expected 2, 3 or 4.")
    if np.isinf(x).any():
        raise DataError(f"{where}: array {xkey!r} holds infinite values; replace them.")
    ys = pd.Series(y)
    keep = ys.notna().to_numpy()
    warnings = []
    if not keep.all():
        if not keep.any():
            raise DataError(f"{where}: target {ykey!r} is missing in every row.")
        warnings.append(
            {
                "tip": "T1",
                "message": f"{int((~keep).sum())} row(s) have no target and were left out.",
            }
        )
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
        raise DataError(f"{where}: unsafe path {name!r} in the archive (absolute or '..').")
    return p


def _load_image_zip(path: Path, *, task: str) -> RawDataset:
    where = path.name
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow comes with streamlit
        raise DataError("reading image zips needs Pillow: pip install pillow") from e
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise DataError(f"{where}: not a valid zip archive.") from e
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        for i in zf.infolist():
            _safe_name(i.filename, where)
        infos = [
            i
            for i in infos
            if not any(s in i.filename for s in _IGNORED)
            and not PurePosixPath(i.filename).name.startswith(".")
        ]
        if not infos:
            raise DataError(f"{where}: the archive holds no files.")
        if sum(i.file_size for i in infos) > MAX_ZIP_BYTES:
            raise DataError(f"{where}: the archive unpacks to more than 2 GB; use a smaller one.")
        parts = [_safe_name(i.filename, where).parts for i in infos]
        # One common top folder (dataset/cat/1.png) is allowed and stripped.
        if all(len(p) >= 3 for p in parts) and len({p[0] for p in parts}) == 1:
            parts = [p[1:] for p in parts]
        images, labels = [], []
        for info, p in zip(infos, parts, strict=True):
            if len(p) < 2:
                raise DataError(
                    f"{where}: {info.filename!r} is not inside a class folder; the archive must "
                    "hold one folder per class (cat/1.png, dog/2.png)."
                )
            if PurePosixPath(p[-1]).suffix.lower() not in IMAGE_EXTENSIONS:
                raise DataError(
                    f"{where}: {info.filename!r} is not an image "
                    f"(allowed: {', '.join(IMAGE_EXTENSIONS)}); remove it from the archive."
                )
            try:
                img = Image.open(io.BytesIO(zf.read(info)))
                img.load()
            except Exception as e:  # Pillow raises many types for a broken file
                raise DataError(f"{where}: {info.filename!r} can't be decoded as an image.") from e
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
