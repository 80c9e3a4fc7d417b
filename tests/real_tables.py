"""Real public tables that installed packages ship (nothing is downloaded), each written as the
CSV file a user would upload: the doctor corpus (tests/test_doctor_corpus.py) and the quality
bench (bench/quality.py) read the same files.

scikit-learn: breast-cancer, diabetes and digits (loaded by name, as New run offers them), wine
and iris; vega_datasets: Seattle's daily weather (dates, imbalanced classes), cars (free-text
names, gaps, a year as a date; target Origin) and barley (target yield); palmerpenguins (gaps,
text categories; target species), when installed.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def export_tables(folder: Path) -> dict[str, tuple[str, str | None]]:
    """name → (source, target), the CSVs written into ``folder``; penguins only when the
    ``palmerpenguins`` package (the test extra) is installed."""
    from sklearn.datasets import load_iris, load_wine
    from vega_datasets import local_data

    weather = local_data.seattle_weather()
    weather["date"] = weather["date"].dt.strftime("%Y-%m-%d")
    weather.to_csv(folder / "weather.csv", index=False)
    pd.read_json(local_data.cars.filepath, dtype=False).to_csv(folder / "cars.csv", index=False)
    local_data.barley().to_csv(folder / "barley.csv", index=False)
    load_wine(as_frame=True).frame.to_csv(folder / "wine.csv", index=False)
    load_iris(as_frame=True).frame.to_csv(folder / "iris.csv", index=False)
    out = {
        "breast-cancer": ("builtin:breast-cancer", None),
        "diabetes": ("builtin:diabetes", None),
        "digits": ("builtin:digits", None),
        "wine": (str(folder / "wine.csv"), None),
        "iris": (str(folder / "iris.csv"), None),
        "weather": (str(folder / "weather.csv"), None),
        "cars": (str(folder / "cars.csv"), "Origin"),
        "barley": (str(folder / "barley.csv"), "yield"),
    }
    try:
        from palmerpenguins import load_penguins
    except ImportError:
        return out
    load_penguins().to_csv(folder / "penguins.csv", index=False)
    out["penguins"] = (str(folder / "penguins.csv"), "species")
    return out
