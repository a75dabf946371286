"""Queries work on a read-only home and on a full disk: `eventindex count` and `eventindex lookup` open the catalogue
and its metadata DB (SQLite in WAL mode, which needs a -shm file even to read) without writing anything.

The read-only home is a real read-only bind mount (root ignores permission bits, so `chmod a-w` would prove
nothing when the tests run as root; as another user the copy is made read-only with chmod); the full disk is a
tmpfs filled to its last byte. Both need mount(2): where it is not permitted the test is skipped, saying why.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eventindex.catalog.embedded import EmbeddedCatalog
from eventindex.catalog.loader import load_staged
from eventindex.trigger import load_menus
from tests.conftest import dataset, dataset_events, upgraded


def _run(*cmd) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True)


def ei(home: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eventindex.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "EVENTINDEX_HOME": str(home)})


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def home(staged_world, tmp_path_factory):
    """A home holding an AOD dataset of the small world (catalogue + metadata DB), closed cleanly: (world, world
    folder, home)."""
    world, out, staging = staged_world
    home = tmp_path_factory.mktemp("ro-home") / "home"
    catalog = EmbeddedCatalog(home / "catalog", upgraded(f"sqlite:///{home / 'metadata.sqlite'}"))
    catalog.save_menus(load_menus(out / "menus.json")[0].values())
    load_staged(catalog, str(staging / dataset(world, "AOD", tag="f961_m1831")["name"]))
    catalog.engine.dispose()
    return world, out, home


def _mount(*args) -> None:
    done = _run("mount", *args)
    if done.returncode != 0:
        pytest.skip(f"not run: mount {' '.join(args)} is not permitted here ({done.stderr.strip()})")


def _check_queries(home: Path, world, out) -> None:
    """count and lookup answer what the ROOT files hold, exit 0, and the home is left as it was."""
    before = _snapshot(home)
    aod = dataset(world, "AOD", tag="f961_m1831")
    done = ei(home, "count", "--dataset", aod["name"])
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip().replace(",", "")) == len(dataset_events(out, aod))
    run, event = dataset_events(out, aod)[7]
    done = ei(home, "lookup", run, event, "--json")
    assert done.returncode == 0, done.stderr
    assert aod["name"] in {m["dataset"] for m in json.loads(done.stdout)}
    done = ei(home, "obsolete", aod["name"])  # a write: refused in one line, nothing changed
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "cannot be written here" in done.stderr, done.stderr
    assert _snapshot(home) == before


def test_count_and_lookup_work_on_a_read_only_home(home, tmp_path):
    world, out, src = home
    target = tmp_path / "ro"
    if os.geteuid() != 0:
        shutil.copytree(src, target)
        _run("chmod", "-R", "a-w", target)
        try:
            _check_queries(target, world, out)
        finally:
            _run("chmod", "-R", "u+w", target)
        return
    target.mkdir()
    _mount("--bind", src, target)
    try:
        _mount("-o", "remount,bind,ro", target)
        assert _run("touch", target / "probe").returncode != 0, "the mount must refuse writes"
        _check_queries(target, world, out)
    finally:
        _run("umount", target)


def test_count_and_lookup_work_on_a_full_disk(home, tmp_path):
    world, out, src = home
    target = tmp_path / "full"
    target.mkdir()
    size = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    _mount("-t", "tmpfs", "-o", f"size={size + (4 << 20)}", "tmpfs", target)
    try:
        shutil.copytree(src, target / "home")
        with open(target / "filler", "wb", buffering=0) as f:  # to the last byte
            for chunk in (1 << 16, 1):
                try:
                    while True:
                        f.write(b"\0" * chunk)
                except OSError:
                    pass
        assert shutil.disk_usage(target).free == 0
        _check_queries(target / "home", world, out)
    finally:
        _run("umount", target)
