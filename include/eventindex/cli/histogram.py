"""``eventindex histogram``: the distribution of one or two numeric columns over a selection (the TAG histogramming
service), as a text histogram, JSON (the web app's answer) or an ATLAS-style PNG / SVG."""

from __future__ import annotations

import json

from .args import add_command, add_selection_options, selection
from .output import err, out, progress, table

BAR_WIDTH = 40


def register(sub) -> None:
    from ..tag.histogram import COLUMNS, WEIGHT_COLUMN

    p = add_command(sub, "histogram", "histogram one or two numeric columns over the events passing a selection",
                    ["eventindex histogram --column lumi_block --bins 30 --type RAW --stream physics_Main",
                     "eventindex histogram --column bcid --bins 50 --range 0,3564 --trigger HLT_mu26_ivarmedium_L1MU14FCH"
                     " --type AOD --json",
                     "eventindex histogram --column lumi_block --column bcid --bins 30 --bins 20 --range 0,30 "
                     "--range 0,3564 --type RAW --png lb_bcid.png",
                     "eventindex histogram --column mc_channel_number --bins 10 --project mc16_13TeV --weight "
                     "--svg dsid.svg"])
    add_selection_options(p, json_help="the histogram as JSON: edges, counts, under/overflow, entries, selection, "
                                       "command")
    g = p.add_argument_group("histogram")
    g.add_argument("--column", action="append", required=True, metavar="NAME",
                   help=f"a column to histogram; twice for 2-D (x then y). One of: {', '.join(COLUMNS)}")
    g.add_argument("--bins", action="append", required=True, metavar="N",
                   help="number of bins: once for every axis, or once per axis")
    g.add_argument("--range", action="append", metavar="A,B",
                   help="the axis range [A, B) (B is overflow), once per axis (--range=-1,1 when A is negative); "
                        "default: the data's min to max, found in a first pass over the same selection")
    g.add_argument("--weight", action="store_true", help=f"weight events by the MC event weight ({WEIGHT_COLUMN})")
    g.add_argument("--limit", type=int, metavar="N", help="fill at most N events (stated in the answer)")
    o = g.add_mutually_exclusive_group()
    o.add_argument("--png", metavar="FILE", help="write the plot as PNG (mplhep, ATLAS style)")
    o.add_argument("--svg", metavar="FILE", help="write the plot as SVG")
    p.set_defaults(func=cmd_histogram)


def cmd_histogram(args) -> int:
    from ..catalog import open_catalog
    from ..errors import BadRequest
    from ..tag.histogram import histogram

    if args.json and (args.png or args.svg):
        raise BadRequest("--json and --png/--svg: choose one output")
    plot = args.png or args.svg
    if plot and not plot.lower().endswith(".png" if args.png else ".svg"):
        raise BadRequest(f"{'--png' if args.png else '--svg'} {plot!r}: the file name must end in "
                         f"{'.png' if args.png else '.svg'}")
    sel = selection(args)
    catalog = open_catalog()
    with progress() as bar:
        task = bar.add_task("filling", total=None)
        h = histogram(catalog, sel, args.column, args.bins, args.range, weight=args.weight, limit=args.limit,
                      progress=lambda done, total: bar.update(task, completed=done, total=total))
    if args.json:
        print(json.dumps(h.to_json()))
        return 0
    if plot:
        h.plot(plot)
        out.print(f"{h.entries:,} events histogrammed, plot written to {plot}", highlight=False)
        return 0
    _print_text(h.to_json())
    return 0


def _print_text(j: dict) -> None:
    fmt = (lambda v: f"{v:,.4g}") if j["weighted"] else (lambda v: f"{v:,}")
    if len(j["columns"]) == 1:
        edges, counts = j["edges"][0], j["counts"]
        top = max(counts, default=0) or 1
        t = table(f"{j['columns'][0]}: {j['entries']:,} events", ["from", "to", "events", ""], right=("from", "to",
                                                                                                       "events"))
        for lo, hi, c in zip(edges, edges[1:], counts):
            t.add_row(_edge(lo), _edge(hi), fmt(c), "█" * round(BAR_WIDTH * max(c, 0) / top))
    else:
        (xe, ye), counts = j["edges"], j["counts"]
        t = table(f"{j['columns'][0]} (rows) x {j['columns'][1]} (columns): {j['entries']:,} events",
                  ["", *[_edge(lo) for lo in ye[:-1]]], right=tuple(_edge(lo) for lo in ye[:-1]))
        for lo, row in zip(xe, counts):
            t.add_row(_edge(lo), *[fmt(c) for c in row])
    out.print(t)
    flows = ", ".join(f"{c}: underflow {fmt(u)}, overflow {fmt(o)}"
                      for c, u, o in zip(j["columns"], j["underflow"], j["overflow"]))
    out.print(f"entries {j['entries']:,}; {flows}", highlight=False, soft_wrap=True)
    if j["missing"]:
        err.print(f"note: {j['missing']:,} events have no value (null) and are not filled", highlight=False)
    if j["limited"]:
        err.print(f"note: stopped at --limit {j['limit']:,}: more events pass the selection", highlight=False)


def _edge(x: float) -> str:
    return f"{int(x)}" if float(x).is_integer() else f"{x:.6g}"
