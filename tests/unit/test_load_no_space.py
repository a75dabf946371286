"""A disk that fills up during a load: one line naming the dataset, nothing half-visible, no partial file left, the
previous version still served; the same load works once space is freed (a transient fault: the CLI exits 75 and
Airflow retries). Injected ENOSPC in each writer, and a real full tmpfs where this process may mount one."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from eventindex.catalog import make_selection
from eventindex.catalog.embedded import EmbeddedCatalog
from eventindex.catalog.embedded import store
from eventindex.catalog.loader import load_staged
from eventindex.cli.main import main
from eventindex.errors import NoSpace, TransientError
from eventindex.metadata import upgrade
from tests.conftest import dataset


def _catalog(root: Path, url: str) -> EmbeddedCatalog:
    upgrade(url)
    return EmbeddedCatalog(root, url)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _enospc(path):
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _fills_up():
    """A writer that writes part of its output, then finds the disk full."""
    def write(*args, **kwargs):
        path = next(a for a in args if isinstance(a, str) and a.endswith(".part"))  # write_atomic's temporary file
        with open(path, "wb") as fh:
            fh.write(b"\0" * 4096)
        raise _enospc(path)
    return write


@pytest.fixture
def loaded_once(staged_world, tmp_path):
    """A dataset loaded once (the version that must stay visible): (catalogue, dataset, its staging folder)."""
    world, _, staging = staged_world
    d = dataset(world, "RAW", stream="express_express")
    catalog = _catalog(tmp_path / "cat", f"sqlite:///{tmp_path / 'm.sqlite'}")
    load_staged(catalog, str(staging / d["name"]))
    return catalog, d, staging / d["name"]


def _unchanged(catalog: EmbeddedCatalog, d: dict, before: list[str]) -> None:
    assert _files(catalog.root) == before  # nothing of the failed load left behind, .part files included
    assert not [f for f in before if f.endswith(".part")]
    for reader in (catalog, EmbeddedCatalog(catalog.root, str(catalog.engine.url))):  # and a fresh reader
        assert reader.count(make_selection(dataset=d["name"])) == d["nevents"]
        assert [h["action"] for h in reader.show(d["name"])["history"]] == ["load"]


@pytest.mark.parametrize("writer", ["parquet", "keys", "triggers"])
def test_enospc_while_writing_names_the_dataset_and_leaves_the_previous_version(loaded_once, monkeypatch, writer):
    catalog, d, folder = loaded_once
    before = _files(catalog.root)
    target = {"parquet": (pq, "write_table"), "keys": (store, "write_keys"),
              "triggers": (store, "write_patterns")}[writer]
    monkeypatch.setattr(*target, _fills_up())
    with pytest.raises(NoSpace) as exc:
        load_staged(catalog, str(folder))
    message = str(exc.value)
    assert message.startswith(f"{d['name']}: no space left on the disk of {catalog.root}") and "\n" not in message
    assert "nothing changed" in message and isinstance(exc.value, TransientError)
    _unchanged(catalog, d, before)
    monkeypatch.undo()  # space freed: the same load goes through
    assert load_staged(catalog, str(folder))[0].replaced


def test_the_cli_exits_75_with_one_line_naming_the_dataset(staged_world, eventindex_home, monkeypatch, capsys):
    world, _, staging = staged_world
    d = dataset(world, "RAW", stream="express_express")
    eventindex_home.mkdir(parents=True, exist_ok=True)
    assert main(["db", "upgrade"]) == 0
    monkeypatch.setattr(store, "write_keys", _fills_up())
    capsys.readouterr()
    assert main(["load", str(staging / d["name"])]) == 75
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err and len(errors) == 1 and d["name"] in errors[0], err
    assert not [p for p in eventindex_home.rglob("*.part")]


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 6 MiB tmpfs (root only; skipped where mounting is not permitted)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_real_full_disk_fails_the_reload_cleanly_and_freeing_space_heals_it(staged_world, small_tmpfs, tmp_path):
    world, _, staging = staged_world
    d = dataset(world, "RAW", stream="express_express")
    catalog = _catalog(small_tmpfs / "cat", f"sqlite:///{tmp_path / 'm.sqlite'}")  # the metadata DB elsewhere
    load_staged(catalog, str(staging / d["name"]))
    before = _files(catalog.root)
    version = sum((catalog.root / f).stat().st_size for f in before if "dataset=" in f)
    st = os.statvfs(small_tmpfs)
    free = st.f_bavail * st.f_frsize
    assert free > version  # the disk had room for the first load
    filler = small_tmpfs / "filler"
    with open(filler, "wb") as fh:  # leave a third of a version free: the reload starts writing, then fills it up
        fh.write(b"\1" * (free - version // 3))
    with pytest.raises(NoSpace, match=f"^{d['name']}: no space left"):
        load_staged(catalog, str(staging / d["name"]))
    _unchanged(catalog, d, before)
    filler.unlink()
    assert load_staged(catalog, str(staging / d["name"]))[0].replaced  # space freed: the same load goes through
    assert catalog.count(make_selection(dataset=d["name"])) == d["nevents"]
