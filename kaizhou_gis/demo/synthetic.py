"""Synthetic test districts: layers, a plan file and a README, labelled synthetic everywhere.

``write_synthetic_district`` builds one purely synthetic district (no real parts) into a folder:
``district.gpkg`` (the vector layers, every row ``source = synthetic ...``), ``dem.tif``, ``plan.toml``
(the shipped Kaizhou plan with the district's own name, code, work CRS, county seat, and counts
scaled to its size; no industry projects table) and ``README.md`` whose attribution says the data
is synthesized (the maps carry it). ``write_synthetic_districts`` makes several distinct ones
(different seeds, codes, places and CRS zones) plus a batch manifest listing them.
"""
from __future__ import annotations

import re
from pathlib import Path

from kaizhou_gis.demo.build import SyntheticDistrict
from kaizhou_gis.errors import OptionError

GPKG_NAME = "district.gpkg"
SYN = "synthetic: kaizhou-gis demo-layers test district"

#: Centres of the districts ``write_synthetic_districts`` makes, in turn: different 3-degree
#: Gauss-Kruger zones (EPSG:4543 CM 102E, 4544 CM 105E, 4546 CM 111E, 4545 CM 108E, ...).
CENTRES = [(102.2, 27.9), (105.3, 29.4), (110.9, 30.2), (107.6, 31.9), (104.1, 26.6),
           (101.4, 25.1), (109.2, 28.3), (106.4, 33.0)]


def _set(text: str, section: str, key: str, value: str, source: str) -> str:
    """Replace ``key = { value = ..., source = ... }`` inside ``[section]`` of a plan file text."""
    head = re.search(rf"^\[{re.escape(section)}\]\s*$", text, re.M)
    if head is None:
        raise ValueError(f"plan template has no [{section}]")
    nxt = re.search(r"^\[", text[head.end():], re.M)
    end = head.end() + (nxt.start() if nxt else len(text) - head.end())
    body = text[head.end():end]
    line = re.compile(rf"^{re.escape(key)} = \{{.*\}}[ \t]*$", re.M)
    if not line.search(body):
        raise ValueError(f"plan template has no {section}.{key}")
    src = source.replace("\\", "\\\\").replace('"', '\\"')
    body = line.sub(lambda _: f'{key} = {{ value = {value}, source = "{src}" }}', body, count=1)
    return text[:head.end()] + body + text[end:]


def _set_indicator(text: str, ind_id: int, key: str, value: float) -> str:
    blocks = text.split("[[indicators]]")
    for i, b in enumerate(blocks[1:], 1):
        if re.search(rf"^id = {ind_id}\s*$", b, re.M):
            blocks[i] = re.sub(rf"^{key} = .*$", f"{key} = {value!r}", b, count=1, flags=re.M)
    return "[[indicators]]".join(blocks)


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def plan_text(spec: SyntheticDistrict, layers: dict) -> str:
    """The plan file of a synthetic district (the Kaizhou plan's schema and assumptions)."""
    from kaizhou_gis.plan import default_plan_path

    text = default_plan_path().read_text(encoding="utf-8")
    vil = layers["villages"]
    seats = layers["township_seats"]
    f = len(vil) / 535.0  # size relative to Kaizhou, for the counts the plan gives
    n_pov = int(vil["poverty_village"].sum())
    n_deep = int(vil["deep_poverty"].sum())
    poor = int(round(119207 * f))
    yearly_k = {"2016": 7600, "2017": 7000, "2018": 2300}
    total = int(round(16900 * f))
    yearly = {y: int(round(v * f)) for y, v in yearly_k.items()}
    yearly["2018"] = total - yearly["2016"] - yearly["2017"]
    county_seat = str(seats.loc[seats["is_county_seat"], "township_code"].iloc[0])
    scaled = f"{SYN} (Kaizhou's figure scaled by its {len(vil)} / 535 villages)"
    header = (f"# SYNTHETIC test district {spec.code} ({spec.name}) made by `kaizhou-gis demo-layers`.\n"
              f"# 合成测试数据 / synthesized test data: not a real district or plan. The numbers are the\n"
              f"# Kaizhou plan's, scaled to this district's size; see README.md next to this file.\n")
    text = header + "\n[meta]" + text.split("\n[meta]", 1)[1]
    text = _set(text, "meta", "district_name", _toml_str(spec.name), SYN)
    text = _set(text, "meta", "district_name_en",
                _toml_str(f"Synthetic district {spec.code} (test data)"), SYN)
    text = _set(text, "meta", "district_code", _toml_str(spec.code), SYN)
    text = _set(text, "meta", "plan_title",
                _toml_str(f"{spec.name}“十三五”脱贫攻坚规划（合成测试数据 synthetic）"), SYN)
    text = _set(text, "meta", "producing_unit", _toml_str("合成测试数据，无制图单位 / synthetic test data"),
                SYN)
    fast = f"{SYN}: low print resolution so test runs stay fast (Kaizhou's plan: 300 / 200 dpi)"
    text = _set(text, "maps", "print_hillshade_dpi", "60", fast)
    text = _set(text, "maps", "png_dpi", "60", fast)
    text = _set(text, "crs", "work", _toml_str(spec.work_crs),
                f"derived: CGCS2000 3-degree Gauss-Kruger zone of the district centre "
                f"({spec.lon:g}E)")
    text = _set(text, "baseline", "poor_population", str(poor), scaled)
    text = _set(text, "baseline", "rural_population", str(int(round(1140000 * f))), scaled)
    text = _set(text, "baseline", "poverty_villages", str(n_pov), f"{SYN} (villages flagged)")
    text = _set(text, "baseline", "deep_poverty_villages", str(n_deep), f"{SYN} (villages flagged)")
    text = _set(text, "relocation", "people_target", str(total), scaled)
    text = _set(text, "relocation", "yearly_people",
                "{ " + ", ".join(f"{y} = {v}" for y, v in yearly.items()) + " }", scaled)
    text = _set(text, "access", "county_seat_code", _toml_str(county_seat),
                f"{SYN} (the first township's seat)")
    for key in ("projects_table", "township_aliases", "village_aliases"):
        text = _set(text, "industry", key, '""', f"{SYN}: no industry projects table")
    text = _set_indicator(text, 1, "baseline_2015", float(poor))
    text = _set_indicator(text, 2, "baseline_2015", float(n_pov))
    text = _set_indicator(text, 4, "target_2018", round(total / 10_000, 4))
    return text


README = """# Synthetic district {code} ({name}) — 合成测试数据 / synthesized test data

Made by `kaizhou-gis demo-layers --districts` (seed {seed}). Everything here is synthesized: the
boundary, townships, villages, settlements, roads and the DEM; the plan file is the Kaizhou plan's
schema with this district's name, code ({code}), work CRS ({crs}) and counts scaled to its size,
and no industry projects table. Results on these layers show how the pipeline works; they are not
facts about any place.

## Attribution

合成数据，非真实地区 / SYNTHESIZED test data, not a real district (kaizhou-gis demo-layers, seed {seed}).
"""


def write_synthetic_district(out_dir: str | Path, spec: SyntheticDistrict, *, seed: int) -> list[Path]:
    """Build one synthetic district into ``out_dir``; returns the written paths."""
    from kaizhou_gis import outputs
    from kaizhou_gis.demo import dem as demmod
    from kaizhou_gis.demo import fixed_gdal_date
    from kaizhou_gis.demo.build import build_layers

    spec.check()
    built = build_layers(seed=seed, district=spec)
    lo, hi = int(built.dem.min()), int(built.dem.max())
    if lo < -400 or hi > 8000:  # the relief calibration can overshoot on a small area
        raise OptionError(f"demo-layers: synthetic district {spec.code} (seed {seed}) came out with "
                          f"elevations {lo:,} .. {hi:,} m, outside any real terrain; use another "
                          f"--seed or a larger --area-km2.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    layers = {name: gdf.reset_index(drop=True) for name, gdf in built.layers.items()}
    with fixed_gdal_date():
        gpkg = outputs.write_gpkg(layers, out / GPKG_NAME)
        tif = outputs.write_geotiff(built.dem, out / "dem.tif", transform=built.grid.transform,
                                    crs="EPSG:4326", nodata=demmod.NODATA,
                                    tags={"source": f"synthetic DEM (kaizhou-gis demo-layers, "
                                                    f"district {spec.code}, seed {seed})",
                                          "units": "metre"})
    plan = outputs.write_text(plan_text(spec, built.layers), out / "plan.toml")
    readme = outputs.write_text(README.format(code=spec.code, name=spec.name, seed=seed,
                                              crs=spec.work_crs), out / "README.md")
    return [gpkg, tif, plan, readme]


def district_specs(n: int, *, first_code: int = 900001, townships: int = 3, villages: int = 12,
                   area_km2: float = 150.0) -> list[SyntheticDistrict]:
    """``n`` distinct small synthetic districts (codes 900001, 900002, ...; places in turn from
    :data:`CENTRES`, so neighbouring ones fall in different CRS zones)."""
    out = []
    for i in range(n):
        lon, lat = CENTRES[i % len(CENTRES)]
        lat += 1.1 * (i // len(CENTRES))  # more than 8: further north, same zones
        code = f"{first_code + i:06d}"
        out.append(SyntheticDistrict(code=code, name=f"合成{code[-3:]}区", lon=lon, lat=lat,
                                     area_km2=area_km2, townships=townships, villages=villages))
    return out


def write_synthetic_districts(out_dir: str | Path, n: int, *, seed: int, **kw) -> list[Path]:
    """``n`` synthetic districts in ``out_dir/<code>/`` (seeds ``seed``, ``seed + 1``, ...) and
    ``out_dir/batch.toml``, a batch manifest listing them (``kaizhou-gis batch``)."""
    from kaizhou_gis import outputs

    out = Path(out_dir)
    paths: list[Path] = []
    lines = ["# Batch manifest of synthetic test districts (kaizhou-gis demo-layers --districts).",
             "# 合成测试数据 / synthesized test data. Run: kaizhou-gis batch batch.toml --out DIR", ""]
    for i, spec in enumerate(district_specs(n, **kw)):
        paths += write_synthetic_district(out / spec.code, spec, seed=seed + i)
        lines += ["[[district]]", f"code = {_toml_str(spec.code)}", f"name = {_toml_str(spec.name)}",
                  f"layers = {_toml_str(spec.code)}", f"plan = {_toml_str(spec.code + '/plan.toml')}", ""]
    paths.append(outputs.write_text("\n".join(lines), out / "batch.toml"))
    return paths


__all__ = ["SyntheticDistrict", "write_synthetic_district", "write_synthetic_districts",
           "district_specs", "plan_text"]
