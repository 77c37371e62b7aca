"""Where the input data comes from, and the bilingual labels every output carries.

One place decides whether a run used synthesized data and words it, so that every output (report,
maps, PNG prints, console, JSON, XLSX, CSV folders, and whatever later outputs are added) says the
same thing in Chinese and English.

A layer counts as synthesized when

- any value of its ``source`` column (or of a ``synthetic`` flag column) says so: the words
  *synthetic*, *synthesized/synthesised*, *simulated* or 合成/模拟/虚拟, anywhere in the text
  (``synthetic (location, …)`` and ``NBS 2023 (code, name); location: synthetic`` both count), or
- its GeoPackage layer metadata (``layers.metadata[name]``) has such a word in a ``source`` or
  ``synthetic`` item, or
- for the DEM, the GeoTIFF ``source`` tag (or a ``synthetic`` tag) says so.

A layer set in which nothing says so is treated as real: the labels are then empty and outputs
carry no synthetic banner.

Use :func:`data_status` once per run and pass the dict on; :func:`banner_text`,
:func:`banner_html`, :func:`about_table` and :func:`readme_text` turn it into output text.
"""
from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

import pandas as pd

#: Words that mark synthesized data in a source text (case-insensitive).
SYNTHETIC_RE = re.compile(r"synthe(?:tic|si[sz]ed)|simulated|合成|模拟|虚拟", re.I)

#: The words that begin the banner; an output without them carries no synthetic label.
MARK_ZH = "合成数据"
MARK_EN = "SYNTHETIC DATA"
#: Label texts (one truth: every output uses these).
LABEL_ZH = ("合成数据：本次结果所用的部分输入图层（{layers}）为程序合成的模拟数据，"
            "结果仅用于演示分析方法，不代表{district}的实际情况。")
LABEL_EN = ("SYNTHETIC DATA: some input layers of this run ({layers}) are synthesized; the results "
            "show how the analysis works and are not facts about {district}.")
SHORT_ZH = "合成数据（非实测）"
SHORT_EN = "synthetic data (not surveyed)"
REAL_ZH = "所有输入图层均未标注为合成或模拟。"
REAL_EN = "No input layer is marked as synthesized."

#: Marks for figures the synthetic layers were built to match (not independent results).
CALIBRATED_ZH = "合成图层按此数值校准，非独立结果"
CALIBRATED_EN = "the synthetic layers were calibrated to this figure; not an independent result"
#: After-works figures are planned results, not achievements.
PLANNED_ZH = "实施拟建工程后（规划）"
PLANNED_EN = "with the proposed works (planned)"
#: A target group with no members: neither met nor missed.
NO_TARGET_ZH = "无目标聚居点"
NO_TARGET_EN = "no target settlements"

_LAYER_ZH = {"boundary": "边界", "townships": "乡镇", "township_seats": "乡镇驻地",
             "villages": "行政村/社区", "settlements": "自然村", "roads": "道路", "dem": "高程",
             "sites": "安置点"}
_VECTOR = ("boundary", "townships", "township_seats", "villages", "settlements", "roads", "sites")


def is_synthetic_text(value: Any) -> bool:
    """True when a source text (or a flag) says the data is synthesized."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value != value:  # NaN
        return False
    return bool(SYNTHETIC_RE.search(str(value)))


def _flag_true(v: Any) -> bool:
    return str(v).strip().lower() in {"1", "true", "t", "yes", "y", "是", "1.0"}


def _layer_status(gdf, metadata: dict | None) -> dict | None:
    """{'rows': n synthetic, 'of': n, 'sources': [...]} or None when nothing is synthesized."""
    sources: list[str] = []
    rows = 0
    n = 0 if gdf is None else len(gdf)
    if gdf is not None and n:
        mask = pd.Series(False, index=gdf.index)
        if "source" in gdf.columns:
            src = gdf["source"].astype("string").fillna("")
            hit = src.map(is_synthetic_text).astype(bool)
            mask |= hit
            sources = sorted(set(src[hit].astype(str)))
        if "synthetic" in gdf.columns:
            mask |= gdf["synthetic"].map(_flag_true).astype(bool)
        rows = int(mask.sum())
    meta_hit = [f"{k}: {v}" for k, v in (metadata or {}).items()
                if str(k).lower() in ("source", "synthetic", "provenance")
                and (is_synthetic_text(v) or (str(k).lower() == "synthetic" and _flag_true(v)))]
    if not rows and not meta_hit:
        return None
    if meta_hit and not rows:
        rows = n  # the layer as a whole is declared synthesized
    return {"rows": rows, "of": n, "sources": (sources + meta_hit)[:5]}


def _dem_status(path: str | None, tags: dict | None = None) -> dict | None:
    if tags is None:
        tags = {}
        if path:
            try:
                import rasterio
                with rasterio.open(path) as ds:
                    tags = dict(ds.tags())
            except Exception:  # an unreadable DEM is the layer checks' business, not ours
                tags = {}
    hits = [f"{k}: {v}" for k, v in tags.items()
            if str(k).lower() in ("source", "synthetic", "provenance", "tifftag_imagedescription")
            and (is_synthetic_text(v) or (str(k).lower() == "synthetic" and _flag_true(v)))]
    return {"rows": None, "of": None, "sources": hits[:5]} if hits else None


def data_status(layers, *, district: str | None = None, estimated: Iterable[dict] | None = None) -> dict:
    """What of the input is synthesized (or estimated), with the bilingual labels.

    Parameters
    ----------
    layers : kaizhou_gis.layers.Layers
        The loaded layers (any object with the vector layers as attributes and ``dem_path``).
    district : str, optional
        District name for the label (default: the boundary layer's ``name``).
    estimated : iterable of dict, optional
        Columns the tool estimated (default: ``layers.estimated`` when present), each
        ``{"layer", "column", "how_zh", "how_en"}``.

    Returns
    -------
    dict
        ``synthetic`` (bool), ``synthetic_layers`` (names, in layer order), ``layers``
        ({name: {"rows", "of", "sources"}} for the synthesized ones), ``estimated`` (list),
        ``label_zh``/``label_en`` (the banner text; "" when nothing is synthesized),
        ``short_zh``/``short_en``.
    """
    metadata = getattr(layers, "metadata", None) or {}
    found: dict[str, dict] = {}
    for name in _VECTOR:
        gdf = getattr(layers, name, None)
        st = _layer_status(gdf, metadata.get(name))
        if st is not None:
            found[name] = st
    dem = _dem_status(getattr(layers, "dem_path", None), metadata.get("dem"))
    if dem is not None:
        found["dem"] = dem
    if district is None:
        b = getattr(layers, "boundary", None)
        district = str(b["name"].iloc[0]) if b is not None and len(b) and "name" in b.columns else ""
    est = list(estimated if estimated is not None else getattr(layers, "estimated", None) or [])
    synthetic = bool(found)
    names = list(found)
    zh_layers = "、".join(_LAYER_ZH.get(n, n) for n in names)
    en_layers = ", ".join(names)
    return {
        "synthetic": synthetic,
        "synthetic_layers": names,
        "layers": found,
        "estimated": est,
        "label_zh": LABEL_ZH.format(layers=zh_layers, district=district or "本区") if synthetic else "",
        "label_en": LABEL_EN.format(layers=en_layers, district=district or "the district") if synthetic else "",
        "short_zh": SHORT_ZH if synthetic else "",
        "short_en": SHORT_EN if synthetic else "",
    }


def estimate_lines(status: dict | None) -> list[str]:
    """One bilingual line per column the tool estimated."""
    out = []
    for e in (status or {}).get("estimated", []) or []:
        out.append(f"{e.get('layer')}.{e.get('column')}: {e.get('how_zh', '')} / {e.get('how_en', '')}")
    return out


def banner_lines(status: dict | None) -> list[str]:
    """The banner as lines (Chinese first, then English); [] when nothing is synthesized."""
    if not status or not status.get("synthetic"):
        return []
    return [status["label_zh"], status["label_en"]]


def banner_text(status: dict | None, *, prefix: str = "⚠ ") -> str:
    """Plain text banner (console, Markdown, README.txt); "" when nothing is synthesized."""
    return "\n".join(prefix + line for line in banner_lines(status))


def banner_html(status: dict | None, *, css_class: str = "kz-synthetic") -> str:
    """An HTML banner (escaped text); "" when nothing is synthesized."""
    lines = banner_lines(status)
    if not lines:
        return ""
    body = "<br>".join(html.escape(x) for x in lines)
    return (f'<div class="{css_class}" role="note" style="background:#fff3cd;border:2px solid '
            f'#d9534f;color:#7a1d1d;padding:6px 10px;margin:4px 0;font-weight:600">⚠ {body}</div>')


def about_table(status: dict | None, *, title: str = "", extra: Iterable[tuple[str, str, str]] = ()) -> pd.DataFrame:
    """The 说明/About sheet of an XLSX workbook: item, 中文, English."""
    rows: list[tuple[str, str, str]] = []
    if title:
        rows.append(("title / 标题", title, title))
    if status and status.get("synthetic"):
        rows.append(("data status / 数据状态", status["label_zh"], status["label_en"]))
        for name, st in status["layers"].items():
            what = "; ".join(st.get("sources") or [])
            count = "" if st.get("rows") is None else f"{st['rows']:,}/{st['of']:,} rows; "
            rows.append((f"synthesized layer / 合成图层: {name}",
                         f"{_LAYER_ZH.get(name, name)}：{count}{what}", f"{name}: {count}{what}"))
    else:
        rows.append(("data status / 数据状态", REAL_ZH, REAL_EN))
    for e in (status or {}).get("estimated", []) or []:
        rows.append((f"estimated column / 估算字段: {e.get('layer')}.{e.get('column')}",
                     e.get("how_zh", ""), e.get("how_en", "")))
    rows.extend(extra)
    return pd.DataFrame(rows, columns=["item 项目", "中文", "English"])


def readme_text(status: dict | None, files: Iterable[str] = (), *, title: str = "") -> str:
    """The README.txt written beside CSV files: data status and the files it covers."""
    lines = []
    if title:
        lines += [title, ""]
    if status and status.get("synthetic"):
        lines += [status["label_zh"], status["label_en"], ""]
        for name, st in status["layers"].items():
            lines.append(f"  - {name}: " + "; ".join(st.get("sources") or []))
        lines.append("")
    else:
        lines += [REAL_ZH, REAL_EN, ""]
    est = estimate_lines(status)
    if est:
        lines += ["估算字段 / estimated columns:"] + [f"  - {x}" for x in est] + [""]
    files = list(files)
    if files:
        lines += ["本文件夹的表格 / tables in this folder (UTF-8 with BOM):"]
        lines += [f"  - {f}" for f in files]
    return "\n".join(lines).rstrip() + "\n"
