"""Every file kaizhou-gis writes goes through this package, atomically.

A file is first written to a temporary file outside its target folder (this process's scratch
folder in the system temp) and then put over the target atomically (see :func:`atomic_path`), so an
interrupted run never leaves a half-written file: a reader sees the previous complete file or the
new complete one, and a killed run leaves no partial file in the output folder.
:func:`output_folder` checks an output folder before any analysis and locks it for one run.

:func:`write_products` takes ``{relative path: object}`` and picks the writer by the file's
extension: ``.csv`` (UTF-8 with BOM so Excel shows Chinese), ``.xlsx``, ``.gpkg`` (one
GeoDataFrame or ``{layer name: GeoDataFrame}``), ``.json``, ``.html`` (text or a folium map),
``.md``/``.txt``, ``.png`` (bytes).

Same inputs give the same bytes: GeoPackages are stamped with :data:`FIXED_DATE` (GDAL would
write the current time), XLSX files carry :data:`FIXED_DATE` as created/modified time and in their
zip entries, and the random element ids folium puts in a map page are replaced by sequential ones
(:func:`stable_element_ids`). The file system's modification time says when a file was written.

Modules: :mod:`~kaizhou_gis.outputs.files` (atomic writes, scratch folder, the ``--out`` check and
lock), :mod:`~kaizhou_gis.outputs.tables` (CSV/XLSX, formula-safe cells, header styles),
:mod:`~kaizhou_gis.outputs.writers` (the other kinds and :func:`write_products`). Import the names
from here: ``from kaizhou_gis import outputs; outputs.write_products(...)``.
"""
from kaizhou_gis.outputs.files import (
    FIXED_DATE,
    LOCK_NAME,
    MIN_FREE_MB,
    atomic_path,
    check_out_dir,
    clean_stale_temp,
    output_folder,
)
from kaizhou_gis.outputs.tables import (
    CODE_COLUMN,
    FORMULA_ABOUT_ROW,
    FORMULA_NOTE_EN,
    FORMULA_NOTE_ZH,
    FORMULA_TRIGGERS,
    HEADER_STYLES,
    NUMBER_FORMATS,
    cell_safe,
    is_code_column,
    translate_values,
    write_csv,
    write_xlsx,
)
from kaizhou_gis.outputs.writers import (
    ABOUT_SHEET,
    stable_element_ids,
    to_json_text,
    with_status,
    write_bytes,
    write_geotiff,
    write_gpkg,
    write_html,
    write_json,
    write_product,
    write_products,
    write_text,
)

__all__ = [
    "ABOUT_SHEET", "CODE_COLUMN", "FIXED_DATE", "FORMULA_ABOUT_ROW", "FORMULA_NOTE_EN",
    "FORMULA_NOTE_ZH", "FORMULA_TRIGGERS", "HEADER_STYLES", "LOCK_NAME", "MIN_FREE_MB",
    "NUMBER_FORMATS", "atomic_path", "cell_safe", "check_out_dir", "clean_stale_temp",
    "is_code_column", "output_folder", "stable_element_ids", "to_json_text", "translate_values",
    "with_status", "write_bytes", "write_csv", "write_geotiff", "write_gpkg", "write_html",
    "write_json", "write_product", "write_products", "write_text", "write_xlsx",
]
