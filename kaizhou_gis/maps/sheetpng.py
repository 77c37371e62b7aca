"""The PNG of a print sheet: its PDF rasterized by PDFium (:func:`sheet_png`) and written as an
RGB PNG whose rows carry the PNG "Up" filter (:func:`up_filtered`, also the predictor of the
relief image in the PDF, :mod:`kaizhou_gis.maps.sheetrelief`). The same writer makes the HTML
maps' indexed-colour hillshade overlays (:func:`encode_indexed_png`)."""
from __future__ import annotations

import math
import struct
import threading
import zlib

import numpy as np
from zlib_ng import zlib_ng

#: zlib level of the sheet's PNG and of the relief image in its PDF: with the Up filter on every
#: row and zlib's run-length strategy (:func:`deflate`), a township sheet (A3 at 200 dpi, 23 MB of
#: RGB) is written in 60 % of the time level 3 with the default strategy took (itself half of
#: Pillow's adaptive filters), for a file 4 % larger; the relief (10 M grey pixels) in 80 % of
#: the time of level 1, 30 % smaller.
PNG_ZLIB_LEVEL = 1


def deflate(data, level: int = PNG_ZLIB_LEVEL) -> bytes:
    """``data`` (bytes or a contiguous array) as a zlib stream with the run-length strategy
    (``Z_RLE``): matches only with the byte before, which is what the Up filter leaves of an
    image's flat areas and smooth ramps; several times faster than searching for matches.

    Compressed by zlib-ng (:mod:`zlib_ng`, the maintained zlib fork with vectorised match and
    checksum code): the same stream as zlib's ``Z_RLE`` (byte for byte on the township sheets)
    in about half the CPU time (a township PNG's 23 MB of filtered rows 0.085 -> 0.045 CPU-s)."""
    c = zlib_ng.compressobj(level, zlib_ng.DEFLATED, 15, 9, zlib_ng.Z_RLE)
    return c.compress(data) + c.flush()


#: PDFium may not be called from two threads at once (a web workbench draws sheets in threads).
_PDFIUM_LOCK = threading.Lock()


def sheet_png(pdf: bytes, size_px: tuple[int, int], dpi: int, info: dict[str, str], *,
              smooth_images: bool = True) -> bytes:
    """Page 1 of ``pdf`` rasterized at ``dpi`` (:func:`rasterize_pdf`) as an RGB PNG with the
    text chunks ``info`` and the resolution ``dpi``.

    The PNG is the PDF's picture, drawn by a PDF renderer: what is printed and what is looked
    at on screen are one drawing, and rasterizing the PDF costs a quarter of what drawing the
    figure again with matplotlib's Agg did (its text laid out anew at the PNG's dpi). The rows
    are filtered straight from PDFium's bitmap (no copy of the 23 MB picture).

    ``smooth_images=False`` draws the page's images without PDFium's smoothing: for a sheet
    whose one image, its relief, is at least the PNG's resolution and already smooth
    (:func:`kaizhou_gis.maps.sheetrelief.sheet_relief`), the smoothing cost 30 % of the drawing;
    over the 40 shipped township sheets the largest pixel difference is 7 grey levels in the
    median sheet (22 at most, at the fade's edge), with at most 1.2 % of a sheet's pixels beyond
    2 levels. A relief coarser than the PNG is smoothed as it is enlarged."""
    w, h = size_px
    rows = _render(pdf, size_px, dpi, lambda rgb: up_filtered(rgb.reshape(h, w * 3)),
                   smooth_images=smooth_images)
    return _png(rows, w, h, dpi=dpi, info=info)


def rasterize_pdf(pdf: bytes, size_px: tuple[int, int], dpi: int, *,
                  smooth_images: bool = True) -> np.ndarray:
    """Page 1 of ``pdf`` drawn by PDFium (:mod:`pypdfium2`) at ``dpi`` on a white page, as RGB
    (``size_px[1]`` rows × ``size_px[0]`` columns × 3, uint8): the whole pixels from the page's
    top left, as matplotlib's Agg canvas has them (the fractional pixel at the right and bottom
    is left out); ``smooth_images`` as :func:`sheet_png`."""
    return _render(pdf, size_px, dpi, np.array, smooth_images=smooth_images)  # a copy: the bitmap is freed after


def _render(pdf: bytes, size_px: tuple[int, int], dpi: int, use, *, smooth_images: bool = True):
    """``use`` applied to PDFium's RGB bitmap of page 1 (:func:`rasterize_pdf`), a view valid
    during the call."""
    import pypdfium2
    import pypdfium2.raw as pdfium_c

    w, h = size_px
    scale = dpi / 72.0
    with _PDFIUM_LOCK:
        doc = pypdfium2.PdfDocument(pdf)
        try:
            page = doc[0]
            full_w, full_h = (math.ceil(v * scale) for v in page.get_size())
            if full_w < w or full_h < h:
                raise ValueError(f"the page is {full_w} x {full_h} px at {dpi} dpi, less than {w} x {h}")
            # crop (left, bottom, right, top) in points; pypdfium2 rounds each up to whole pixels
            crop = (0, (full_h - h - 0.5) / scale if full_h > h else 0,
                    (full_w - w - 0.5) / scale if full_w > w else 0, 0)
            # 3 bytes a pixel, in RGB order (BGR reversed): the same pixels as drawing RGBx
            bitmap = page.render(scale=scale, crop=crop, rev_byteorder=True, draw_annots=False,
                                 may_draw_forms=False, no_smoothimage=not smooth_images,
                                 force_bitmap_format=pdfium_c.FPDFBitmap_BGR)
            try:
                rgb = bitmap.to_numpy()
                if rgb.shape != (h, w, 3):
                    raise RuntimeError(f"PDFium drew the page at {rgb.shape[1]} x {rgb.shape[0]} px, "
                                       f"not {w} x {h}")
                return use(rgb)
            finally:
                bitmap.close()
                page.close()
        finally:
            doc.close()


def up_filtered(a: np.ndarray) -> np.ndarray:
    """The rows of ``a`` (uint8, rows × bytes per row) each led by PNG filter type 2, "Up" (the
    difference to the row above, mod 256): the filtered data of a PNG image, or of a PDF image
    with ``/Predictor`` >= 10."""
    rows = np.empty((a.shape[0], a.shape[1] + 1), dtype=np.uint8)
    rows[:, 0] = 2
    rows[0, 1:] = a[0]
    np.subtract(a[1:], a[:-1], out=rows[1:, 1:])
    return rows


def encode_png(rgb: np.ndarray, *, dpi: int, info: dict[str, str]) -> bytes:
    """``rgb`` (rows × columns × 3, uint8) as a PNG: 8-bit RGB, the Up filter on every row, zlib
    (:func:`deflate`), the resolution (``pHYs``) and ``info`` as text chunks (``tEXt``,
    or ``iTXt`` for text beyond Latin-1, as Pillow writes them)."""
    h, w, _ = rgb.shape
    return _png(up_filtered(np.ascontiguousarray(rgb).reshape(h, w * 3)), w, h, dpi=dpi, info=info)


def encode_indexed_png(index: np.ndarray, palette: list[tuple[int, int, int, int]]) -> bytes:
    """``index`` (rows × columns, uint8) as an 8-bit indexed-colour PNG with the RGBA colours
    ``palette`` (at most 256; their alpha in a ``tRNS`` chunk up to the last colour not fully
    opaque): the Up filter on every row and zlib (:func:`deflate`), as the RGB PNGs."""
    if not 0 < len(palette) <= 256:
        raise ValueError(f"a PNG palette has 1-256 colours, not {len(palette)}")
    h, w = index.shape
    alpha = bytes(c[3] for c in palette)
    chunks = [(b"PLTE", b"".join(bytes(c[:3]) for c in palette))]
    if alpha.rstrip(b"\xff"):
        chunks.append((b"tRNS", alpha.rstrip(b"\xff")))
    return _png(up_filtered(np.ascontiguousarray(index, dtype=np.uint8)), w, h, color_type=3,
                chunks=chunks)


def _png(rows: np.ndarray, w: int, h: int, *, dpi: int | None = None, info: dict[str, str] | None = None,
         color_type: int = 2, chunks: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """The PNG of ``w`` × ``h`` pixels (8 bits a sample; ``color_type`` 2: RGB, 3: indexed, with
    its ``PLTE`` and ``tRNS`` among ``chunks``) whose filtered rows are ``rows``; the resolution
    ``dpi`` and the text chunks ``info`` where given."""
    head = [(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)), *(chunks or [])]
    if dpi is not None:
        ppm = int(dpi / 0.0254 + 0.5)  # pixels per metre
        head.append((b"pHYs", struct.pack(">IIB", ppm, ppm, 1)))
    for key, value in (info or {}).items():
        try:
            head.append((b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")))
        except UnicodeEncodeError:
            head.append((b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8")))
    head += [(b"IDAT", deflate(rows)), (b"IEND", b"")]
    out = [b"\x89PNG\r\n\x1a\n"]
    for tag, data in head:
        out += [struct.pack(">I", len(data)), tag, data,
                struct.pack(">I", zlib.crc32(data, zlib.crc32(tag)) & 0xFFFFFFFF)]
    return b"".join(out)
