"""Big picking requests: a file of up to 64 MiB (MAX_REQUEST_BYTES) is checked whole by a submitter, planned locally
by `eventindex pick --dry-run`, and sent by events_uri once over the 1 MiB a run's params carry. Plain pairs are
parsed without a Python step per line; anything else goes line by line and the first bad line is named."""

import json
import re

import numpy as np
import pytest

from eventindex import picking
from eventindex.picking.request import MAX_INLINE_BYTES, MAX_REQUEST_BYTES, _plain_pairs, parse_events
from tests.conftest import dataset, dataset_events

REFERENCE_LINE = re.compile(r"^\s*(\d+)[\s,;:]+(\d+)\s*$")


def _reference(text: str) -> tuple[list[tuple[int, int]], int]:
    """The pairs as a person reads the file: one per line, '#' comments and blank lines skipped (Python ints, a set:
    no numpy, no fast path)."""
    pairs = []
    for line in text.lstrip("\ufeff").splitlines():
        line = line.split("#", 1)[0]
        if line.strip():
            m = REFERENCE_LINE.match(line)
            pairs.append((int(m.group(1)), int(m.group(2))))
    return sorted(set(pairs)), len(pairs) - len(set(pairs))


@pytest.mark.parametrize("seed", range(6))
def test_plain_and_commented_files_parse_to_the_same_pairs_as_read_line_by_line(seed):
    rng = np.random.default_rng(seed)
    n = 3000
    runs = rng.integers(0, 2**32, n, dtype=np.uint64) if seed % 2 else 358031 + rng.integers(0, 3, n)
    events = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    events[: n // 10] = events[n // 10: n // 5]  # duplicates
    runs[: n // 10] = runs[n // 10: n // 5]
    seps = [" ", "\t", ",", ";", ":", " , ", "  \t"]
    lines = [f"{' ' * int(rng.integers(0, 2))}{r}{seps[int(rng.integers(0, len(seps)))]}{e}" for r, e in
             zip(runs.tolist(), events.tolist())]
    lines[5:5] = ["", "   "]  # blank lines
    if seed in (3, 4):
        lines[7] += "  # a comment (the line-by-line parser)"
    text = ("\ufeff" if seed == 4 else "") + ("\r\n" if seed == 5 else "\n").join(lines) + "\n"
    got, dups = parse_events(text)
    want, want_dups = _reference(text)
    assert (_plain_pairs(text.lstrip("\ufeff")) is None) == (seed in (3, 4))  # both parsers are tried
    assert got.dtype == np.uint64 and [tuple(p) for p in got.tolist()] == want and dups == want_dups > 0


@pytest.mark.parametrize("bad, message", [
    ("358031 x", "line 4: not a 'run event' pair"), ("358031 1 2", "line 4: not a 'run event' pair"),
    ("4294967296 1", "line 4: run 4294967296 is out of range (0..4294967295)"),
    ("1 18446744073709551616", "line 4: event 18446744073709551616 is out of range (0..18446744073709551615)"),
    ("358031\x0c5", "line 4: not a 'run event' pair")])
def test_a_bad_line_among_plain_ones_is_named_by_its_number(bad, message):
    text = "\n".join(f"358031 {k}" for k in range(1, 10_000))
    lines = text.splitlines()
    lines[3] = bad
    with pytest.raises(picking.BadRequest) as err:
        parse_events("\n".join(lines))
    assert str(err.value) == f"events, {message}" + ("" if "range" in message else " of two numbers")


def _lines(n: int) -> str:
    return "\n".join(f"{358031 + k % 3} {1_000_000 + k}" for k in range(n)) + "\n"


def test_a_run_takes_1_mib_inline_and_a_submitter_takes_64_mib():
    text = _lines(200_000)
    assert MAX_INLINE_BYTES < len(text) < MAX_REQUEST_BYTES
    with pytest.raises(picking.BadRequest, match=r"^events: .*more than the cap of 1 MiB.*events_uri"):
        picking.PickRequest.from_params({"events": text, "datatype": "AOD"})
    request = picking.PickRequest.from_params({"events": text, "datatype": "AOD"}, inline_cap=MAX_REQUEST_BYTES)
    assert len(request.events) == 200_000
    huge = text * (MAX_REQUEST_BYTES // len(text) + 1)
    with pytest.raises(picking.BadRequest, match=r"^events: [\d,]+ bytes, more than the 64 MiB a request may hold"):
        picking.PickRequest.from_params({"events": huge, "datatype": "AOD"}, inline_cap=MAX_REQUEST_BYTES)


def test_a_request_with_neither_events_nor_events_uri_is_refused_naming_both():
    for events in (None, "", "  \n"):
        with pytest.raises(picking.BadRequest, match="^events: the request holds no events .*events_uri"):
            picking.PickRequest.from_params({"events": events, "events_uri": None, "datatype": "AOD"})


def test_a_200k_line_dry_run_is_planned_here_with_nothing_uploaded(staged_world, metadata_home, capsys):
    """`eventindex pick --dry-run` plans a request of 200,000 lines (12 MiB would not fit a run's params) on this
    machine: found = the dataset's events, read from its ROOT files; the rest missing with their reasons."""
    from eventindex.catalog import open_catalog
    from eventindex.catalog.loader import load_staged
    from eventindex.cli.main import main
    from eventindex.ddm import LocalRucio, register_world
    from eventindex.settings import Settings

    world, out, staging = staged_world
    settings = Settings.from_env()
    load_staged(open_catalog(settings), str(staging))
    register_world(LocalRucio(settings.local_rucio_url), world, out)
    aod = dataset(world, "AOD", tag="f961_m1831")
    pairs = sorted(set(dataset_events(out, aod)))
    run = pairs[0][0]
    absent = [(run, 10**12 + k) for k in range(200_000 - len(pairs) - 5)] + [(4_000_000 + k, 1) for k in range(5)]
    request = metadata_home / "events.txt"
    request.write_text("\n".join(f"{r} {e}" for r, e in pairs + absent) + "\n")
    assert request.stat().st_size > MAX_INLINE_BYTES and len(pairs) + len(absent) == 200_000
    assert main(["pick", "--dry-run", "--events", str(request), "--type", "AOD", "--version", "f961_m1831",
                 "--stream", "physics_Main", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["requested"], summary["found"], summary["missing"]) == (200_000, len(pairs), len(absent))
    assert summary["files"] == len(aod["files"]) and summary["datasets"] == [aod["name"]]
    reasons = {(m["run"], m["event"]): m["reason"] for m in summary["missing_events"]}
    assert reasons[(run, 10**12)] == "event not found"
    assert not (metadata_home / "requests").exists()
