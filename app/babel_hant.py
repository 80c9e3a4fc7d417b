"""繁體中文 from 简体中文: writes ``app/locale/zh_Hant/LC_MESSAGES/messages.po`` from the
Simplified catalogue, so a new msgid gets its Traditional entry the same way as every other.

    python -m app.babel_hant            # rewrite the Traditional catalogue
    python -m app.babel_hant --stats    # also: how OpenCC's s2twp and s2t compare on our strings

Each Simplified msgstr goes through OpenCC (the ``opencc`` package) with ``s2twp``: Traditional
characters *and* Taiwan's words (数据→資料, 文件→檔案, 默认→預設, 内存→記憶體), which plain
``s2t`` leaves Simplified-world (數據, 文件, 默認, 內存). A short glossary of this field's
terms then fixes what OpenCC gets wrong here (read entry by entry against 資料集, 學習率,
驗證集, 批次, 梯度):

* :data:`BEFORE` (Simplified → Traditional, applied first, so OpenCC leaves the result alone):
  "preset" must not become 預設, which is already "default"; a process is a 行程, not a 程式;
* :data:`AFTER` (fixes of OpenCC's output): an ensemble is 集成 (OpenCC: 整合, "integration");
  an optimizer is 優化器 in Taiwan's ML writing as often as 最佳化器, and the shorter reads
  better in a table; "new" on a button is 新增;
* quotes as Taiwan writes them: “…” → 「…」, ‘…’ → 『…』.

A test checks that the committed catalogue is exactly what this script writes, and that it
holds none of the characters only Simplified uses (资, 数, 训, 练, 习, 设, 这, 个).
"""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path

LOCALE = Path(__file__).resolve().parent / "locale"
HANS = LOCALE / "zh_Hans" / "LC_MESSAGES" / "messages.po"
HANT = LOCALE / "zh_Hant" / "LC_MESSAGES" / "messages.po"

# Columns and rows: the mainland writes 列 for a column and 行 for a row, Taiwan 欄 for a
# column and 列 for a row (行 stays a line of text: 每行一個). OpenCC converts characters and
# words, not this swap. Every 列 of the Simplified text is a column except in these words;
# a row is 行 only in the phrases of BEFORE, since 行 is also in 运行, 进行, 每行 (a line) ….
NOT_A_COLUMN = ("序列", "队列", "列表", "列出", "列在", "并列", "列举")
COLUMN_FIRST = (("该列在", "該欄在"),)  # "that column over …", not "listed in"
# Applied in order, to the Simplified text, after the columns.
BEFORE: tuple[tuple[str, str], ...] = (
    ("} 行", "} 列"),
    ("的行（", "的列（"),
    ("」行", "」列"),
    ("“{name}”行", "“{name}”列"),
    ("种行", "種列"),
    ("行数", "列數"),
    ("重复行", "重複列"),
    ("训练行", "訓練列"),
    ("数据行", "資料列"),
    ("每一行", "每一列"),
    ("的行计算", "的列計算"),
    ("用的行", "用的列"),
    ("预设", "預設集"),  # a preset (默认, "default", is 預設)
    ("进程", "行程"),  # a process (OpenCC: 程序 → 程式, "a program")
)
AFTER: tuple[tuple[str, str], ...] = (
    ("整合", "集成"),  # ensemble (T14)
    ("最佳化器", "優化器"),
    ("新建", "新增"),
    ("質量", "品質"),  # quality (質量 is "mass" in Taiwan)
    ("示例", "範例"),
    ("併為", "並為"),  # OpenCC's 并 → 併 where it means "and"
    ("合並", "合併"),
    ("分割槽", "分區"),
    ("錶格", "表格"),
    ("隻有", "只有"),
    ("數據集", "資料集"),  # 一个数据集: OpenCC matches 个数 (count) first
    ("數據", "資料"),
    ("迴圈網路", "遞迴網路"),  # a recurrent net (迴圈 is a program loop)
    ("單元格", "儲存格"),
    ("文本", "文字"),
    ("賬號", "帳號"),  # a config section (OpenCC: 分区 → 分割槽, a disk partition)
    ("引數", "參數"),  # a model's parameters (OpenCC: 参数 → 引數, a function's argument)
    ("數組", "陣列"),  # an array, where OpenCC reads 个数 (a count) first: 个数组 → 個數組
)
QUOTES = {"“": "「", "”": "」", "‘": "『", "’": "』"}
SIMPLIFIED_ONLY = "资数训练习设这个们为体说时会过还对发经动开关务网际"


def converter(config: str = "s2twp"):
    import opencc

    return opencc.OpenCC(config)


def to_hant(text: str, cc=None) -> str:
    """One Simplified text in Traditional Chinese with Taiwan's words and this glossary."""
    cc = cc or converter()
    for a, b in COLUMN_FIRST:
        text = text.replace(a, b)
    kept = {f"\x00{i}\x00": w for i, w in enumerate(NOT_A_COLUMN)}
    for mark, w in kept.items():
        text = text.replace(w, mark)
    text = text.replace("列", "欄")
    for mark, w in kept.items():
        text = text.replace(mark, w)
    text = re.sub(r"(\d) 行", r"\1 列", text)  # "442 行": rows, as in BEFORE
    for a, b in BEFORE:
        text = text.replace(a, b)
    text = cc.convert(text)
    for a, b in AFTER:
        text = text.replace(a, b)
    for a, b in QUOTES.items():
        text = text.replace(a, b)
    return text


def hant_catalogue() -> bytes:
    """The Traditional catalogue's bytes, from the Simplified one."""
    from babel.messages.pofile import read_po, write_po

    with HANS.open("rb") as f:
        cat = read_po(f, locale="zh_Hans")
    cc = converter()
    cat.locale = "zh_Hant"
    cat.header_comment = (
        "# Chinese (Traditional) translations for Trainboard: GENERATED from zh_Hans by\n"
        "# `python -m app.babel_hant` (OpenCC s2twp + this field's glossary). Don't edit by hand:\n"
        "# fix the Simplified entry or the glossary in app/babel_hant.py, then run it again."
    )
    for m in cat:
        if not m.id:
            continue
        if isinstance(m.string, tuple | list):
            m.string = tuple(to_hant(s, cc) for s in m.string)
        elif m.string:
            m.string = to_hant(m.string, cc)
    buf = io.BytesIO()
    write_po(buf, cat, width=0, omit_header=False, sort_output=False)
    return buf.getvalue()


def stats() -> dict[str, int]:
    """How the two OpenCC configurations differ on this catalogue's strings, and how many
    entries the glossary changes after each."""
    from babel.messages.pofile import read_po

    with HANS.open("rb") as f:
        strings = [m.string for m in read_po(f) if m.id and isinstance(m.string, str) and m.string]
    tw, t = converter("s2twp"), converter("s2t")
    out = {"entries": len(strings), "s2twp_differs_from_s2t": 0, "glossary_fixes_s2twp": 0}
    for s in strings:
        a, b = tw.convert(s), t.convert(s)
        out["s2twp_differs_from_s2t"] += a != b
        out["glossary_fixes_s2twp"] += to_hant(s, tw) != a.translate(str.maketrans(QUOTES))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stats", action="store_true")
    args = parser.parse_args()
    HANT.parent.mkdir(parents=True, exist_ok=True)
    HANT.write_bytes(hant_catalogue())
    print(f"wrote {HANT.relative_to(LOCALE.parent.parent)}")
    if args.stats:
        for k, v in stats().items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
