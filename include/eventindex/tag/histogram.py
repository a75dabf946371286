"""The histogramming service (Athenaeum's, behind ELSSI): the distribution of one or two numeric record columns over
the events passing a selection, optionally weighted by the MC event weight.

Binning is boost-histogram's (through ``hist``), filled a whole Arrow batch at a time from ``catalog.select`` (which
decodes trigger names through the menus, as ``count`` does). Bins are half-open, ``[lo, hi)``: a value equal to the
upper edge of the range is overflow.

Bin ``i`` of ``n`` over ``[lo, hi)`` holds the values ``x`` with ``lo + i (hi - lo) / n <= x < lo + (i + 1) (hi - lo) / n``
in exact arithmetic. A regular axis computes ``(x - lo) / (hi - lo) * n`` in floats instead, which puts lumi block 117
of ``--range 1,201 --bins 50`` into bin [113, 117) (116 / 200 * 50 = 28.999...). So each value's bin is computed here
(``bin_indices``): integers over an integral range in integer arithmetic, anything else by comparison with edges
computed exactly (``exact_edges``: each edge is the smallest double not below the exact rational edge, so comparing a
double with it is comparing with the exact edge); the counts are added to the histogram's storage with ``bincount``.
The axes are variable axes over those edges, so the JSON, the plot and the bins agree.

Without a range, an axis spans the data: a first pass over the same selection (and the same ``limit``) finds the
smallest and largest value, and the axis runs from the smallest to just above the largest, so that every event lands
in a bin (integer columns: ``[min, max + 1)``, so integer values sit inside bins, not on edges; the float weight:
``[min, next float after max)``). The catalogue's metadata is not used for this: it knows runs and lumi blocks per
dataset, not the other columns, nor the range after a trigger or lumi-block cut.

Events whose histogrammed column (or, with ``weight``, whose MC event weight) is null, such as the weight of real
data, are not filled; they are counted as ``missing``.
"""

from __future__ import annotations

import math
import shlex
from fractions import Fraction
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import BadRequest
from ..schema import BASE_FIELDS

WEIGHT_COLUMN = "mc_event_weight"
COLUMNS = tuple(f.name for f in BASE_FIELDS if pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
INTEGER_COLUMNS = frozenset(f.name for f in BASE_FIELDS if pa.types.is_integer(f.type))
MAX_BINS = 10_000  # per axis
MAX_CELLS = 1_000_000  # bins of a 2-D histogram in all

Progress = Callable[[int, int | None], None]


@dataclass
class Histogram:
    """A filled ``hist.Hist`` and what it was made from."""

    hist: object  # hist.Hist
    columns: list[str]
    selection: dict
    command: str
    entries: int
    missing: int
    weighted: bool
    limit: int | None
    limited: bool
    range_from: list[str] = field(default_factory=list)  # per axis: "options" or "data"

    def to_json(self) -> dict:
        """The histogram as JSON-native values (the CLI's ``--json``, the REST answer). ``counts`` is indexed
        ``[x bin]`` or ``[x bin][y bin]``; under/overflow are per axis: events below / above that axis's range,
        whatever the other axis (with weights: their summed weights)."""
        h = self.hist
        flow_values = h.values(flow=True)
        answer = {
            "columns": list(self.columns),
            "edges": [_edges(axis) for axis in h.axes],
            "counts": _native(h.values()),
            "underflow": [_native(_flow(flow_values, i, 0)) for i in range(h.ndim)],
            "overflow": [_native(_flow(flow_values, i, -1)) for i in range(h.ndim)],
            "entries": self.entries,
            "missing": self.missing,
            "weighted": self.weighted,
            "weight_column": WEIGHT_COLUMN if self.weighted else None,
            "range_from": list(self.range_from),
            "limit": self.limit,
            "limited": self.limited,
            "selection": dict(self.selection),
            "command": self.command,
        }
        if self.weighted:
            answer["variances"] = _native(h.variances())
        return answer

    def plot(self, path) -> None:
        """A PNG or SVG (by the file's extension) in the ATLAS style of mplhep; no pyplot, no display needed."""
        _plot(self, str(path))


def histogram(catalog, sel, columns: str | Sequence[str], bins: int | Sequence[int],
              ranges: Sequence[Sequence[float]] | None = None, weight: bool = False, limit: int | None = None,
              progress: Progress | None = None) -> Histogram:
    """The histogram of ``columns`` (one or two) over the events passing ``sel``. ``bins``: one count for every axis
    or one per axis; ``ranges``: none (the data's), or one ``(lo, hi)`` per axis; ``limit``: at most this many events
    filled. Bad values raise BadRequest naming the option."""
    import hist

    columns = check_columns(columns)
    nbins = check_bins(bins, len(columns))
    spans = check_ranges(ranges, len(columns))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise BadRequest(f"limit {limit!r} is not a positive number of events")
    wanted = list(dict.fromkeys([*columns, *([WEIGHT_COLUMN] if weight else [])]))
    range_from = ["options"] * len(columns) if spans else ["data"] * len(columns)
    if not spans:
        spans = _data_ranges(catalog, sel, columns, wanted, limit)
    edges = [exact_edges(lo, hi, n) for n, (lo, hi) in zip(nbins, spans)]
    axes = [hist.axis.Variable(e, name=c, label=c) for c, e in zip(columns, edges)]
    h = hist.Hist(*axes, storage=hist.storage.Weight() if weight else hist.storage.Int64())
    total = None
    if progress:
        total = catalog.count(sel)
        total = min(total, limit) if limit else total
    entries = missing = 0
    limited = False
    chunks = _batches(catalog, sel, columns, wanted, weight)
    for values, w, dropped in chunks:
        missing += dropped
        if limit is not None and entries + len(values[0]) > limit:
            take = limit - entries
            values, w, limited = [v[:take] for v in values], (w[:take] if w is not None else None), True
        if len(values[0]):
            _fill(h, [bin_indices(v, lo, hi, n, e) for v, (lo, hi), n, e in zip(values, spans, nbins, edges)], w)
            entries += len(values[0])
        if progress:
            progress(entries, total)
        if limit is not None and entries >= limit:
            limited = limited or any(len(v[0]) for v, _, _ in chunks)  # events left unfilled
            break
    return Histogram(h, columns, selection_dict(sel), reproduce_command(sel, columns, nbins, spans if
                     range_from[0] == "options" else None, weight, limit), entries, missing, weight, limit,
                     limited, range_from)


# --- checks ------------------------------------------------------------------------------------------------------


def check_columns(columns) -> list[str]:
    columns = [columns] if isinstance(columns, str) else list(columns or [])
    if not 1 <= len(columns) <= 2:
        raise BadRequest(f"column: give one or two columns (1-D or 2-D), not {len(columns)}")
    for c in columns:
        if c not in COLUMNS:
            raise BadRequest(f"column {c!r} cannot be histogrammed; choose from {', '.join(COLUMNS)}")
    if len(set(columns)) != len(columns):
        raise BadRequest(f"column {columns[0]!r} is given twice")
    return columns


def check_bins(bins, naxes: int) -> list[int]:
    values = [bins] if isinstance(bins, (int, str)) else list(bins or [])
    if len(values) not in (1, naxes):
        raise BadRequest(f"bins: give one number for every axis or one per axis ({naxes}), not {len(values)}")
    out = []
    for b in values:
        try:
            n = int(str(b).strip()) if not isinstance(b, bool) else None
        except ValueError:
            n = None
        if n is None or not 1 <= n <= MAX_BINS:
            raise BadRequest(f"bins {b!r} is not a number of bins from 1 to {MAX_BINS:,}")
        out.append(n)
    out = out * naxes if len(out) == 1 else out
    if math.prod(out) > MAX_CELLS:
        raise BadRequest(f"bins {'x'.join(map(str, out))} is more than {MAX_CELLS:,} bins in all")
    return out


def parse_range(text: str) -> tuple[float, float]:
    """``"A,B"`` (the CLI's and the REST API's spelling) -> ``(A, B)``; anything else is refused naming ``range``."""
    parts = str(text).split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise BadRequest(f"range {text!r} is not two numbers like 0,200") from None
    return lo, hi


def check_ranges(ranges, naxes: int) -> list[tuple[float, float]] | None:
    if not ranges:
        return None
    ranges = [parse_range(r) if isinstance(r, str) else r for r in ranges]
    if len(ranges) != naxes:
        raise BadRequest(f"range: give one per axis ({naxes}), not {len(ranges)}")
    out = []
    for r in ranges:
        try:
            lo, hi = (float(v) for v in r)
        except (TypeError, ValueError):
            raise BadRequest(f"range {r!r} is not two numbers like 0,200") from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
            raise BadRequest(f"range {_num(lo)},{_num(hi)} is empty or not finite: the start must be below the end")
        out.append((lo, hi))
    return out


# --- filling -----------------------------------------------------------------------------------------------------


def _batches(catalog, sel, columns, wanted, weight):
    """(axis values as float64 arrays, weights or None, events dropped for a null) per Arrow batch."""
    for batch in catalog.select(sel, columns=wanted):
        if not batch.num_rows:
            continue
        valid = None
        for name in wanted:
            col = batch.column(name)
            if col.null_count:
                ok = pc.is_valid(col)
                valid = ok if valid is None else pc.and_(valid, ok)
        dropped = 0
        if valid is not None:
            kept = batch.filter(valid)
            dropped, batch = batch.num_rows - kept.num_rows, kept
        values = [batch.column(c).to_numpy(zero_copy_only=False) for c in columns]  # integers stay integers
        w = batch.column(WEIGHT_COLUMN).to_numpy(zero_copy_only=False).astype(np.float64) if weight else None
        yield values, w, dropped


def _data_ranges(catalog, sel, columns, wanted, limit) -> list[tuple[float, float]]:
    """The first pass: each axis from the smallest to just above the largest value of the events to be filled."""
    lo = np.full(len(columns), np.inf)
    hi = np.full(len(columns), -np.inf)
    seen = 0
    for values, _, _ in _batches(catalog, sel, columns, wanted, False):
        if limit is not None:
            values = [v[:limit - seen] for v in values]
        if len(values[0]):
            lo = np.minimum(lo, [v.min() for v in values])
            hi = np.maximum(hi, [v.max() for v in values])
            seen += len(values[0])
        if limit is not None and seen >= limit:
            break
    spans = []
    for c, a, b in zip(columns, lo, hi):
        if not seen:
            a, b = 0.0, 1.0
        elif c in INTEGER_COLUMNS:
            b = b + 1
        else:
            b = float(np.nextafter(b, np.inf)) if b > a else a + 1
        spans.append((float(a), float(b)))
    return spans


def exact_edges(lo: float, hi: float, n: int) -> list[float]:
    """The ``n + 1`` edges of ``n`` equal bins over ``[lo, hi)``: edge ``i`` is the smallest double not below
    ``lo + i (hi - lo) / n`` computed in rationals. For a double ``x``, ``x >= edge`` then holds exactly when ``x`` is at
    or above the exact edge, so a bin holds what its exact half-open interval holds. Edges that are representable
    (integers, most decimal ranges) come out as themselves. A range too narrow for ``n`` distinct doubles is refused."""
    start, width = Fraction(lo), Fraction(hi) - Fraction(lo)
    edges = []
    for i in range(n + 1):
        exact = start + width * i / n
        edge = float(exact)
        if Fraction(edge) < exact:
            edge = math.nextafter(edge, math.inf)
        edges.append(edge)
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise BadRequest(f"range {_num(lo)},{_num(hi)} is too narrow for {n} bins")
    return edges


def bin_indices(values: np.ndarray, lo: float, hi: float, n: int, edges: list[float]) -> np.ndarray:
    """Each value's bin over ``n`` bins of ``[lo, hi)``: ``0..n-1``, ``-1`` below the range and ``n`` at or above it
    (NaN too, as boost-histogram does).

    Integers over an integral range: ``floor((x - lo) * n / (hi - lo))`` in doubles is exact while ``|lo|, |hi|`` and
    ``(hi - lo) * n`` stay below 2**53 (the difference and the product are integers a double holds; the division is
    correctly rounded, and a quotient ``k + r / width`` with ``r >= 1`` is at least ``1 / width`` from ``k + 1``, more
    than half an ulp), so lumi blocks, BCIDs and runs are binned at about a regular axis's speed. Anything else by
    binary search among the exact edges (comparisons only)."""
    width = hi - lo
    if values.dtype.kind in "iu" and float(lo).is_integer() and float(hi).is_integer() \
            and max(abs(lo), abs(hi)) < 2**53 and width * n < 2**53:
        t = np.subtract(values, lo, dtype=np.float64)  # in place from here: a regular axis's four passes
        t *= n
        t /= width
        np.floor(t, out=t)
        np.clip(t, -1, n, out=t)
        return t.astype(np.int64)
    return np.searchsorted(np.asarray(edges, np.float64), values.astype(np.float64, copy=False), side="right") - 1


def _fill(h, indices: list[np.ndarray], weights: np.ndarray | None) -> None:
    """Add the events at these bin indices (per axis, ``-1`` and ``n`` the flow bins) to ``h``'s storage."""
    shape = h.view(flow=True).shape
    flat = indices[0]
    flat += 1
    for idx, size in zip(indices[1:], shape[1:]):
        flat *= size
        flat += idx
        flat += 1
    size = int(np.prod(shape))
    view = h.view(flow=True)
    if weights is None:
        view[...] += np.bincount(flat, minlength=size).reshape(shape)
    else:
        view.value += np.bincount(flat, weights=weights, minlength=size).reshape(shape)
        view.variance += np.bincount(flat, weights=weights * weights, minlength=size).reshape(shape)


def _edges(axis) -> list[float]:
    return [float(e) for e in axis.edges]


def _flow(values: np.ndarray, axis: int, index: int):
    return np.take(values, index, axis=axis).sum()


def _native(a):
    a = np.asarray(a)
    if a.dtype.kind in "iu":
        return a.astype(np.int64).tolist()
    return a.astype(np.float64).tolist()


# --- describing it -----------------------------------------------------------------------------------------------


def selection_dict(sel) -> dict:
    """The selection's set criteria, as the CLI's option names would spell them."""
    out = {}
    for key, value in (("project", sel.project), ("stream", sel.stream), ("type", sel.datatype),
                       ("version", sel.version), ("dataset", sel.dataset), ("guid", sel.guid)):
        if value is not None:
            out[key] = value
    if sel.runs:
        out["run"] = [_span(r) for r in sel.runs]
    if sel.periods:
        out["period"] = list(sel.periods)
    if sel.lumi_blocks:
        out["lumi"] = [_span(r) for r in sel.lumi_blocks]
    if sel.bcids:
        out["bcid"] = [_span(r) for r in sel.bcids]
    if sel.triggers:
        out["trigger"] = list(sel.triggers)
    if sel.time_range:
        out["since"], out["until"] = sel.time_range
    if sel.include_obsolete:
        out["include_obsolete"] = True
    return out


def reproduce_command(sel, columns, bins, ranges, weight, limit) -> str:
    words = ["eventindex", "histogram"]
    for c in columns:
        words += ["--column", c]
    for b in (bins[:1] if len(set(bins)) == 1 else bins):
        words += ["--bins", str(b)]
    for lo, hi in ranges or ():
        words += ["--range", f"{_num(lo)},{_num(hi)}"]
    for key, value in selection_dict(sel).items():
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            words.append(flag)
        elif isinstance(value, list):
            for v in value:
                words += [flag, str(v)]
        else:
            words += [flag, str(value)]
    if weight:
        words.append("--weight")
    if limit is not None:
        words += ["--limit", str(limit)]
    return shlex.join([*words, "--json"])


def _span(r) -> str:
    return str(r[0]) if r[0] == r[1] else f"{r[0]}-{r[1]}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _plot(h: Histogram, path: str) -> None:
    if not path.lower().endswith((".png", ".svg")):
        raise BadRequest(f"plot {path!r}: the file name must end in .png or .svg")
    import matplotlib

    matplotlib.use("Agg")  # no display; pyplot is never imported, the figure is drawn on its own canvas
    import mplhep
    from matplotlib.figure import Figure

    import warnings

    with matplotlib.style.context(mplhep.style.ATLAS), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # mplhep's note on Poisson errors of integer counts
        fig = Figure(figsize=(8, 6))
        ax = fig.subplots()
        if h.hist.ndim == 1:
            mplhep.histplot(h.hist, ax=ax, histtype="fill" if not h.weighted else "errorbar", yerr=h.weighted)
            ax.set_ylabel("weighted events" if h.weighted else "events")
        else:
            mplhep.hist2dplot(h.hist, ax=ax)
            ax.set_ylabel(h.columns[1])
        ax.set_xlabel(h.columns[0])
        mplhep.atlas.label(ax=ax, text="Internal", data=not h.weighted, loc=0)
        fig.savefig(path, bbox_inches="tight")
