"""The mini-ATLAS world: runs, datasets at every processing stage, real ROOT files, and the upstream tables.

Tier-0 writes RAW per stream and reconstructs it into AOD (f-tag); each AOD event points at its RAW entry.
A reprocessing campaign (r-tags) writes a second AOD version of physics_Main, same events in other files and
another order (optionally losing a few lumi blocks of the first run: ``WorldConfig.lost_lumi_blocks``);
derivations (p-tag) write DAOD_PHYS with a subset of the events. Simulation samples carry mc_channel_number and
weights. ``world.json`` lists every dataset and file; ``menus.json`` the trigger menus; ``upstream.sqlite`` the
Tier-0 READY flags, the production-system tasks and the conditions source (COMA's trigger menus and run periods).
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import upstream
from ..guid import guid_bytes, new_guids
from ..naming import DatasetName
from ..rootfile import write_events_file
from ..trigger import save_menus
from .events import Events, mc_events, run_events
from .triggers import build_menu, prescale_sets

STREAMS = ("physics_Main", "physics_MinBias", "express_express")
T0_TAG, REPRO_TAG, DERIV_TAG = "f961_m1831", "r11969_r11784_p4072", "r11969_r11784_p4072_p4309"
MC_SAMPLES = (
    (410470, "PhPy8EG_A14_ttbar_hdamp258p75_nonallhad", "ttbar"),
    (361107, "PowhegPythia8EvtGen_AZNLOCTEQ6L1_Zmumu", "z_mumu"),
)
MC_TAG = "e6337_s3126_r10201"
MC_DERIV_TAG = "e6337_s3126_r10201_p4172"


@dataclass
class WorldConfig:
    seed: int = 2018
    runs: int = 3
    events_per_run: int = 70_000
    lumi_blocks: int = 200
    first_run: int = 358031
    project: str = "data18_13TeV"
    raw_file_events: int = 5_000
    aod_merge: int = 2  # RAW files merged into one AOD file
    reproc_file_events: int = 7_000
    mc_events: int = 10_000
    mc_file_events: int = 2_000
    mc_project: str = "mc16_13TeV"
    mc_run: int = 284500
    # lumi blocks whose events the reprocessing (REPRO_TAG AOD) of the first run's physics_Main loses, as a failed
    # job would: the AMI "lost lumi blocks" of that dataset. Empty (the default): a complete reprocessing.
    lost_lumi_blocks: tuple[int, ...] = ()
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))


@dataclass
class FileJob:
    """One data file to write: which events, in which order, with which upstream references."""

    dataset: str
    path: str
    lfn: str
    guid: str
    index: np.ndarray
    prov: dict[str, tuple[np.ndarray, np.ndarray]]  # stage -> (guid index into guids list, oid)


class _Builder:
    def __init__(self, out: Path, config: WorldConfig):
        self.out, self.config = out, config
        self.rng = np.random.default_rng(config.seed)
        self.datasets: list[dict] = []
        self.next_task = 21_562_000 + int(self.rng.integers(0, 1000))
        self.tier0: list[dict] = []
        self.tasks: list[dict] = []

    def task_id(self) -> int:
        self.next_task += int(self.rng.integers(1, 50))
        return self.next_task

    def dataset(self, name: DatasetName, events: Events, files: list[np.ndarray], prov_of, task_id: int,
                source: str, created: int) -> list[tuple[str, np.ndarray]]:
        """Lay out one dataset's files. ``prov_of(index) -> {stage: (guids, oids)}``; returns (guid, index) per file."""
        guids = new_guids(self.rng, len(files))
        entry = {"name": name.name, "did": name.did, "scope": name.scope or name.project, "datatype": name.datatype,
                 "amitag": name.amitag, "source": source, "task_id": task_id, "created": created,
                 "nevents": int(sum(len(f) for f in files)), "files": []}
        if name.is_mc:
            entry.update(dsid=name.dsid)
        else:
            entry.update(run_number=name.run_number, stream=name.stream)
        jobs = []
        for n, (guid, index) in enumerate(zip(guids, files), start=1):
            lfn = f"{name.datatype}.{task_id:08d}._{n:06d}.{guid}.pool.root"
            rel = Path("rse") / entry["scope"] / name.name / lfn
            entry["files"].append({"lfn": lfn, "guid": guid, "path": str(rel), "nevents": int(len(index))})
            jobs.append(FileJob(name.name, str(self.out / rel), lfn, guid, index, prov_of(index)))
        self.datasets.append(entry)
        self._jobs.setdefault(id(events), (events, []))[1].extend(jobs)
        return list(zip(guids, files))

    _jobs: dict


def _ref_lookup(layout: list[tuple[str, np.ndarray]], n_events: int):
    """Per event of the run: the GUID bytes and entry (oid) of the file that holds it in ``layout``."""
    guid = np.zeros((n_events, 16), np.uint8)
    oid = np.zeros(n_events, np.uint64)
    for g, index in layout:
        guid[index] = np.frombuffer(guid_bytes(g), np.uint8)
        oid[index] = np.arange(len(index), dtype=np.uint64)
    return guid, oid


def _chunks(index: np.ndarray, size: int) -> list[np.ndarray]:
    return [index[i:i + size] for i in range(0, len(index), size)] if len(index) else []


def _split_at_lumi_blocks(index: np.ndarray, lumi_block: np.ndarray, size: int) -> list[np.ndarray]:
    """Consecutive events, cut only where the lumi block changes, about ``size`` events per file."""
    if not len(index):
        return []
    lb = lumi_block[index]
    boundaries = np.nonzero(np.diff(lb))[0] + 1
    cuts, last = [], 0
    for b in boundaries:
        if b - last >= size:
            cuts.append(b)
            last = b
    return np.split(index, cuts)


def _write_file(args) -> tuple[str, int, str]:
    job, events = args
    sub = events.take(job.index)
    columns = dict(sub.columns)
    for stage, (guids, oids) in job.prov.items():
        columns[f"prov_{stage}_guid"] = guids
        columns[f"prov_{stage}_oid"] = oids
    Path(job.path).parent.mkdir(parents=True, exist_ok=True)
    write_events_file(job.path, job.guid, columns, sub.payload())
    with open(job.path, "rb") as fh:
        data = fh.read()
    return job.path, len(data), f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def simulate(out: str | Path, config: WorldConfig | None = None, progress=None) -> dict:
    """Build the world under ``out``; returns the content of ``world.json``.

    ``progress(stage, done, total)`` is called as files are written, for a progress bar.
    """
    config = config or WorldConfig()
    out = Path(out).resolve()
    if (out / "world.json").exists():  # replacing an earlier world: drop its files, keep nothing stale
        (out / "world.json").unlink()
        shutil.rmtree(out / "rse", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    b = _Builder(out, config)
    b._jobs = {}
    rng = b.rng
    menus = [build_menu(2757, 0), build_menu(2781, 1)]  # the menu changes between runs
    ps_sets = []
    runs_meta = []
    run_numbers = config.first_run + np.concatenate([[0], np.cumsum(rng.integers(40, 200, config.runs - 1))])
    start = 1534000000
    for i, run in enumerate(int(r) for r in run_numbers):
        menu, rules = menus[0] if i < max(1, config.runs - 1) else menus[1]
        early = prescale_sets(rules, 300 + 2 * i, 400 + 2 * i, 1.0)
        late = prescale_sets(rules, 301 + 2 * i, 401 + 2 * i, 0.5)
        ps_sets += [*early, *late]
        if progress:
            progress("events", i, config.runs)
        ev = run_events(rng, run, config.events_per_run, rules, menu.smk, [early[0], late[0]],
                        [early[1], late[1]], config.lumi_blocks, start)
        runs_meta.append({"run_number": run, "smk": menu.smk, "lumi_blocks": config.lumi_blocks,
                          "start": start, "end": start + config.lumi_blocks * 60, "events": len(ev),
                          "prescale_keys": {"L1": [early[0].key, late[0].key], "HLT": [early[1].key, late[1].key]},
                          "streams": {s: int(ev.streams[s].sum()) for s in STREAMS}})
        t0_done = start + config.lumi_blocks * 60 + 3600
        for stream in STREAMS:
            idx = np.nonzero(ev.streams[stream])[0]
            raw = DatasetName(config.project, "daq", "RAW", run_number=run, stream=stream)
            raw_files = _split_at_lumi_blocks(idx, ev.columns["lumi_block"], config.raw_file_events)
            raw_layout = b.dataset(raw, ev, raw_files, lambda ix: {}, b.task_id(), "tier0", t0_done)
            raw_ref = _ref_lookup(raw_layout, len(ev))
            with_raw = lambda ix, r=raw_ref: {"RAW": (r[0][ix], r[1][ix])}  # noqa: E731
            aod_files = [np.concatenate(raw_files[j:j + config.aod_merge])
                         for j in range(0, len(raw_files), config.aod_merge)]
            aod = raw.with_tag(T0_TAG, "AOD", "merge")
            b.dataset(aod, ev, aod_files, with_raw, b.task_id(), "tier0", t0_done + 7200)
            for name in (raw, aod):
                b.tier0.append({"name": name.name, "run_number": run, "stream": stream, "datatype": name.datatype,
                                "status": "READY", "created": upstream.utc(t0_done), "updated": upstream.utc(t0_done)})
            if stream != "physics_Main":
                continue
            # reprocessing: same events, other files, other order
            order = idx[np.argsort(rng.random(len(idx)))]
            if i == 0 and config.lost_lumi_blocks:
                order = order[~np.isin(ev.columns["lumi_block"][order], np.asarray(config.lost_lumi_blocks))]
            repro_files = [np.sort(f)[rng.permutation(len(f))] for f in _chunks(order, config.reproc_file_events)]
            repro = raw.with_tag(REPRO_TAG, "AOD", "merge")
            repro_task = b.task_id()
            repro_layout = b.dataset(repro, ev, repro_files, with_raw, repro_task, "prodsys", start + 30 * 86400)
            repro_ref = _ref_lookup(repro_layout, len(ev))
            deriv_files = [f[ev.skim[f]] for f in repro_files]
            deriv = raw.with_tag(DERIV_TAG, "DAOD_PHYS", "deriv")
            deriv_task = b.task_id()
            b.dataset(deriv, ev, deriv_files,
                      lambda ix, r=raw_ref, a=repro_ref: {"RAW": (r[0][ix], r[1][ix]), "AOD": (a[0][ix], a[1][ix])},
                      deriv_task, "prodsys", start + 35 * 86400)
            b.tasks.append(_task(repro_task, repro, start + 30 * 86400 + i * 3000))
            b.tasks.append(_task(deriv_task, deriv, start + 35 * 86400 + i * 3000))
        start += config.lumi_blocks * 60 + int(rng.integers(3, 12)) * 3600
    menu, rules = menus[0]
    l1_mc, hlt_mc = prescale_sets(rules, 299, 399, 1.0)
    ps_sets += [l1_mc, hlt_mc]
    for k, (dsid, short, process) in enumerate(MC_SAMPLES):
        ev = mc_events(rng, process, dsid, config.mc_events, config.mc_run, rules, menu.smk, [l1_mc], [hlt_mc],
                       1451606400)
        aod = DatasetName(config.mc_project, "recon", "AOD", dsid=dsid, physics_short=short, amitag=MC_TAG)
        task = b.task_id()
        layout = b.dataset(aod, ev, _chunks(np.arange(len(ev)), config.mc_file_events), lambda ix: {}, task,
                           "prodsys", start + 40 * 86400)
        ref = _ref_lookup(layout, len(ev))
        deriv = aod.with_tag(MC_DERIV_TAG, "DAOD_PHYS", "deriv")
        deriv_task = b.task_id()
        b.dataset(deriv, ev, [f[ev.skim[f]] for f in _chunks(np.arange(len(ev)), config.mc_file_events)],
                  lambda ix, r=ref: {"AOD": (r[0][ix], r[1][ix])}, deriv_task, "prodsys", start + 41 * 86400)
        b.tasks.append(_task(task, aod, start + 40 * 86400 + k * 1800))
        b.tasks.append(_task(deriv_task, deriv, start + 41 * 86400 + k * 1800))

    work = [(job, events) for events, jobs in b._jobs.values() for job in jobs]
    total = len(work)
    by_path = {}
    if progress:
        progress("files", 0, total)
    with ProcessPoolExecutor(max_workers=config.workers) as pool:
        for done, (path, size, adler) in enumerate(pool.map(_write_file, work, chunksize=4), start=1):
            by_path[path] = (size, adler)
            if progress:
                progress("files", done, total)
    for ds in b.datasets:
        for f in ds["files"]:
            f["bytes"], f["adler32"] = by_path[str(out / f["path"])]
    save_menus(out / "menus.json", [m for m, _ in menus], ps_sets)
    upstream.create(f"sqlite:///{out / 'upstream.sqlite'}", b.tier0, b.tasks)
    upstream.write_conditions(f"sqlite:///{out / 'upstream.sqlite'}", [m for m, _ in menus],
                              run_periods(config.project, runs_meta))
    world = {
        "format": 1, "seed": config.seed, "config": {k: v for k, v in asdict(config).items() if k != "workers"},
        "runs": runs_meta, "menus": "menus.json", "upstream": "upstream.sqlite",
        "datasets": b.datasets,
        "nevents": int(sum(d["nevents"] for d in b.datasets)),
        "nfiles": int(sum(len(d["files"]) for d in b.datasets)),
    }
    tmp = out / "world.json.tmp"
    tmp.write_text(json.dumps(world, indent=1))
    tmp.replace(out / "world.json")
    return world


def run_periods(project: str, runs: list[dict]) -> list[dict]:
    """The runs grouped into lettered periods, as ATLAS does: a new period where the trigger menu changes (the
    conditions do), lettered from B (period A is commissioning)."""
    periods: list[dict] = []
    for run in sorted(runs, key=lambda r: r["run_number"]):
        if periods and periods[-1]["_smk"] == run["smk"]:
            periods[-1]["last_run"] = run["run_number"]
            continue
        letter = chr(ord("B") + len(periods)) if len(periods) < 25 else f"Z{len(periods) - 24}"
        periods.append({"project": project, "period": letter, "first_run": run["run_number"],
                        "last_run": run["run_number"], "_smk": run["smk"]})
    for p in periods:
        p["description"] = f"{project} period {p['period']}: runs {p['first_run']}-{p['last_run']}, SMK {p.pop('_smk')}"
    return periods


def _task(task_id: int, name: DatasetName, when: int) -> dict:
    return {"task_id": task_id, "taskname": f"{name.name}_tid{task_id:08d}", "status": "done",
            "output_datasets": [name.name], "last_update": upstream.utc(when)}


def load_world(world_dir: str | Path) -> dict:
    path = Path(world_dir) / "world.json"
    if not path.exists():
        raise FileNotFoundError(f"no world at {world_dir} (run `eventindex simulate` first)")
    return json.loads(path.read_text())
