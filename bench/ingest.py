"""Ingestion throughput: datasets per hour through the whole eventindex_ingest DAG, and announcements per second
the STOMP path drains (recorded in the metadata DB in batches, each acked after its record), each beside a peer measured in the same run.

    python -m bench.ingest [--announcements 5000] [--runs 2 --events-per-run 20000]

Peers: for the DAG, the same datasets loaded by the library alone (`load_staged`, no Airflow); for the drain, a
bare stomp.py consumer that only acks (no parsing, no recording): the broker's own ceiling here. Both drain 500
messages first, untimed, so that neither pays for a cold start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import stomp

ROOT = Path(__file__).resolve().parents[1]


def bare_consumer(host: str, port: int, queue: str, n: int) -> float:
    import threading

    got, done = [0], threading.Event()
    conn = stomp.Connection12([(host, port)])

    class L(stomp.ConnectionListener):
        def on_message(self, frame):
            conn.ack(frame.headers["ack"])
            got[0] += 1
            if got[0] >= n:
                done.set()

    conn.set_listener("l", L())
    conn.connect(wait=True)
    t = time.perf_counter()
    conn.subscribe(queue, id="b", ack="client-individual", headers={"activemq.prefetchSize": "500"})
    done.wait(300)
    elapsed = time.perf_counter() - t
    conn.disconnect()
    return elapsed


def send(host: str, port: int, queue: str, bodies: list[str]) -> None:
    conn = stomp.Connection12([(host, port)])
    conn.connect(wait=True)
    for body in bodies:
        conn.send(queue, body, headers={"persistent": "true"})
    conn.disconnect()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--announcements", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--events-per-run", type=int, default=20000)
    ap.add_argument("--only", choices=["dag", "stomp"], help="measure one path only")
    ap.add_argument("--out", default="bench/results/ingest.json")
    args = ap.parse_args()
    from eventindex import announcements
    from eventindex.catalog.embedded import EmbeddedCatalog
    from eventindex.catalog.loader import load_staged
    from eventindex.messaging import drain_batches
    from eventindex.metadata import make_engine, upgrade
    from eventindex.producer import announcement
    from eventindex.settings import parse_stomp_url
    from eventindex.sim.world import WorldConfig
    from eventindex_harness.activemq import ActiveMQ

    from .worlds import produced_world

    work = Path(tempfile.mkdtemp(prefix="ei-bench-ingest-"))
    result = {}
    try:
        home = work / "home"
        world, staging, _, produced = produced_world(
            home, WorldConfig(runs=args.runs, events_per_run=args.events_per_run, mc_events=5000))
        if args.only != "stomp":
            env = {**os.environ, "EVENTINDEX_HOME": str(home), "AIRFLOW_HOME": str(work / "airflow")}
            t = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "eventindex_airflow.demo", "--staging", str(staging)],
                                  env=env, capture_output=True, text=True)
            dag_s = time.perf_counter() - t
            if done.returncode != 0:
                raise SystemExit(done.stdout[-3000:] + done.stderr[-3000:])
            from eventindex.metadata import upgrade as db_upgrade

            db_upgrade(f"sqlite:///{work / 'peer.sqlite'}")  # opening never migrates
            peer_cat = EmbeddedCatalog(work / "peer-catalog", f"sqlite:///{work / 'peer.sqlite'}")
            t = time.perf_counter()
            load_staged(peer_cat, str(staging))
            peer_s = time.perf_counter() - t
            n = len(world["datasets"])
            result["dag"] = {"datasets": n, "events": world["nevents"],
                             "seconds_incl_airflow_startup": round(dag_s, 1),
                             "datasets_per_hour": round(n / dag_s * 3600)}
            result["dag_peer_library_load"] = {"seconds": round(peer_s, 2),
                                               "datasets_per_hour": round(n / peer_s * 3600)}

        if args.only != "dag":
            broker = ActiveMQ(work / "activemq")
            broker.start()
            try:
                msg = announcement(produced[0])
                engine = make_engine(f"sqlite:///{work / 'meta.sqlite'}")
                upgrade(engine)
                for phase, n in (("warmup", 500), ("bench", args.announcements)):  # both warmed up alike
                    bodies = [json.dumps({**msg, "task_id": len(phase), "job_id": i}) for i in range(n)]
                    target = parse_stomp_url(broker.url(f"eventindex.{phase}"))
                    send(broker.host, broker.port, target.destination, bodies)
                    t = time.perf_counter()
                    counts = drain_batches(target, lambda msgs: announcements.record_many(engine, msgs),
                                           announcements.parse_announcement, max_messages=n, idle_s=5)
                    ours = time.perf_counter() - t
                    send(broker.host, broker.port, f"/queue/eventindex.{phase}.peer", bodies)
                    peer = bare_consumer(broker.host, broker.port, f"/queue/eventindex.{phase}.peer", n)
            finally:
                broker.stop()
            result["stomp"] = {"announcements": counts["handled"], "seconds": round(ours, 2),
                               "per_s": round(counts["handled"] / ours)}
            result["stomp_peer_bare_ack"] = {"seconds": round(peer, 2), "per_s": round(args.announcements / peer)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    rows = ["| path | ours | peer |", "|---|---:|---:|"]
    if "dag" in result:
        rows.append(f"| datasets/hour, full ingestion DAG (dag.test, {result['dag']['datasets']} datasets, "
                    f"{result['dag']['events']:,} events) | {result['dag']['datasets_per_hour']:,} | "
                    f"{result['dag_peer_library_load']['datasets_per_hour']:,} (library load, no Airflow) |")
    if "stomp" in result:
        rows.append(f"| announcements/s drained (parse + batched record + ack) | {result['stomp']['per_s']:,} | "
                    f"{result['stomp_peer_bare_ack']['per_s']:,} (bare ack, no recording) |")
    md = "\n".join(rows)
    Path(args.out).with_suffix(".md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
