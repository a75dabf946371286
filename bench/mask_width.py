"""What a wider HLT mask costs per event: the same simulated records loaded with HLT masks of 1,024 bits (our
menus), 4,096 and 8,192 bits (a real Run-2 menu needs 4,288; the file's words hold 8,192), zero-padded.

    python -m bench.mask_width [--events N]

Measures for each width: bytes/event on disk (Parquet + key file + trigger index), load events/s, and a count by
trigger name (answered from the trigger index: one gather per event, no mask decoded). Peer: the width of 1,024
bits in the same run. Prints a markdown table and writes bench/results/mask-width.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from eventindex.catalog import make_selection
from eventindex.catalog.embedded import EmbeddedCatalog
from eventindex.metadata import upgrade
from eventindex.schema import HLT_BITS, widen_hlt

from .catalog import TRIGGER, du, make_dataset, timed, trigger_pool

WIDTHS = (HLT_BITS, 4096, 8192)
RESULT = Path(__file__).with_name("results") / "mask-width.md"


def measure(events: int, bits: int, pool, menu, root: Path) -> dict:
    rng = np.random.default_rng(7)  # the same records for every width
    home = root / f"w{bits}"
    home.mkdir()
    url = f"sqlite:///{home / 'metadata.sqlite'}"
    upgrade(url)  # opening never migrates
    catalog = EmbeddedCatalog(home / "catalog", url)
    catalog.save_menus([menu])
    per, loaded, seconds, names = 200_000, 0, 0.0, []
    for k in range((events + per - 1) // per):
        name, table, _ = make_dataset(rng, k, 358031 + k, min(per, events - loaded), pool)
        table = widen_hlt(table, bits // 8)
        started = time.perf_counter()
        catalog.load(name, table)
        seconds += time.perf_counter() - started
        loaded += table.num_rows
        names.append(name)
    sel = make_selection(triggers=[TRIGGER])
    count = catalog.count(sel)
    return {"bits": bits, "bytes_per_event": du(home / "catalog") / loaded, "load_per_s": loaded / seconds,
            "count_s": timed(lambda: catalog.count(sel)), "count": count}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    args = ap.parse_args()
    menu, pool = trigger_pool()
    with tempfile.TemporaryDirectory(prefix="ei-bench-width-") as tmp:
        rows = [measure(args.events, bits, pool, menu, Path(tmp)) for bits in WIDTHS]
    assert len({r["count"] for r in rows}) == 1, "the count by trigger must not depend on the mask width"
    base = rows[0]
    lines = [f"{args.events:,} simulated AOD records, the HLT masks zero-padded to each width "
             f"(`python -m bench.mask_width --events {args.events}`)", "",
             "| HLT mask width | bytes/event on disk | vs 1,024 bits | load, events/s | count by trigger, s |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['bits']:,} bits | {r['bytes_per_event']:.1f} | "
                     f"{r['bytes_per_event'] - base['bytes_per_event']:+.1f} | {r['load_per_s']:,.0f} | "
                     f"{r['count_s']:.4f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    RESULT.write_text(text)


if __name__ == "__main__":
    main()
