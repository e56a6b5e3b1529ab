"""Small charts that the Dagster UI shows on the asset page without a click.

The UI renders a markdown metadata value inline when it is shorter than 1,000 characters, and behind a
"[Show Markdown]" link otherwise; a matplotlib PNG is tens of kilobytes. These charts are 4-colour
palette PNGs (white, blue, orange, grey) drawn with numpy and encoded here (``zlib``), a few hundred
bytes: small enough to sit inline beside the full-size figure (``plots.py``).
"""

import base64
import struct
import zlib

import numpy as np

PALETTE = bytes([255, 255, 255, 31, 119, 180, 255, 127, 14, 160, 160, 160])  # white, blue, orange, grey
BLUE, ORANGE, GREY = 1, 2, 3
INLINE_LIMIT = 1000  # the UI's limit for markdown shown inline


def encode_png(pixels: np.ndarray) -> bytes:
    """A palette PNG (2 bits per pixel) of ``pixels``, an (height, width) array of palette indices 0-3."""
    height, width = pixels.shape
    padded = np.zeros((height, -(-width // 4) * 4), dtype=np.uint8)
    padded[:, :width] = pixels
    packed = (padded[:, 0::4] << 6) | (padded[:, 1::4] << 4) | (padded[:, 2::4] << 2) | padded[:, 3::4]
    raw = np.hstack([np.zeros((height, 1), dtype=np.uint8), packed]).tobytes()  # filter 0 on each row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 2, 3, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"PLTE", PALETTE)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def _draw_line(pixels: np.ndarray, xs: np.ndarray, ys: np.ndarray, colour: int) -> None:
    for x0, y0, x1, y1 in zip(xs[:-1], ys[:-1], xs[1:], ys[1:]):
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        px, py = np.linspace(x0, x1, n).round().astype(int), np.linspace(y0, y1, n).round().astype(int)
        pixels[py, px] = colour
        pixels[np.minimum(py + 1, pixels.shape[0] - 1), px] = colour  # two pixels thick


def line_chart(series: list[tuple[list[float], int]], *, mark: int | None = None, size=(240, 72)) -> bytes:
    """Curves (values, colour) over a shared x (their index) and y range; ``mark``: a grey vertical line
    at that index (e.g. the best epoch)."""
    width, height = size
    pixels = np.zeros((height, width), dtype=np.uint8)
    values = np.concatenate([np.asarray(v, dtype=float) for v, _ in series])
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    n = max(len(v) for v, _ in series)
    to_x = lambda i: np.asarray(i, dtype=float) * (width - 1) / max(n - 1, 1)  # noqa: E731
    to_y = lambda v: (height - 2) - (np.asarray(v, dtype=float) - lo) * (height - 3) / max(hi - lo, 1e-12)  # noqa: E731
    if mark is not None:
        pixels[:, int(round(float(to_x(mark))))] = GREY
    pixels[height - 1, :] = GREY  # the x axis
    for curve, colour in series:
        _draw_line(pixels, to_x(np.arange(len(curve))), to_y(curve), colour)
    return encode_png(pixels)


def bar_chart(
    values: list[float], colours: list[int], *, width: int = 240, bar: int = 10, top: float | None = None
) -> bytes:
    """Horizontal bars, one per value (top to bottom), scaled to ``top`` (default: the largest value)."""
    pixels = np.zeros((len(values) * (bar + 4), width), dtype=np.uint8)
    top = max(max(values) if top is None else top, 1e-12)
    for i, (value, colour) in enumerate(zip(values, colours)):
        pixels[i * (bar + 4) + 2 : i * (bar + 4) + 2 + bar, : max(1, int(width * max(value, 0) / top))] = colour
    return encode_png(pixels)


def inline_markdown(png: bytes, alt: str, caption: str) -> str:
    """The image and a caption as markdown, checked to stay under the UI's inline limit."""
    text = f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})\n\n{caption}"
    if len(text) >= INLINE_LIMIT:
        raise ValueError(f"inline chart is {len(text)} characters, over the UI's {INLINE_LIMIT}")
    return text


def loss_markdown(history: list[dict], best_epoch: int | None) -> str:
    """Training (blue) and validation (orange) loss per epoch, the best epoch in grey, inline-sized."""
    train = [float(h["train_loss"]) for h in history]
    val = [float(h["val_loss"]) for h in history]
    mark = next((i for i, h in enumerate(history) if h["epoch"] == best_epoch), None)
    caption = f"blue: training loss, orange: validation loss, epochs 1-{len(history)}"
    caption += f"; grey: best epoch {best_epoch} ({val[mark]:.4f})" if mark is not None else ""
    for size in ((240, 72), (160, 48), (96, 32)):
        try:
            return inline_markdown(line_chart([(train, BLUE), (val, ORANGE)], mark=mark, size=size), "loss", caption)
        except ValueError:  # a jagged curve compresses less: draw it smaller
            continue
    return caption


def bars_markdown(names: list[str], values: list[float], what: str) -> str:
    """A labelled bar chart as a markdown table: one row per name with its value and its bar (blue, orange,
    grey, ...), all bars on one scale; the plain table when the bars would not fit the UI's inline limit."""
    colours = [(BLUE, ORANGE, GREY)[i % 3] for i in range(len(names))]
    top = max([v for v in values if np.isfinite(v)] or [1.0])
    for width in (72, 48, 0):
        rows = [f"| ranker | {what} | |", "| --- | ---: | --- |"]
        for name, value, colour in zip(names, values, colours):
            bar = ""
            if width and np.isfinite(value):
                png = bar_chart([value], [colour], width=width, bar=10, top=top)
                bar = f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
            rows.append(f"| {name} | {value:.4f} | {bar} |")
        text = "\n".join(rows)
        if len(text) < INLINE_LIMIT:
            return text
    return text
