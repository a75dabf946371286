"""EventIndex: an event catalogue for particle-physics experiments (the domain core; it never imports Airflow).

Where things live (the layers: README.md, "Layout"):

- vocabulary: :mod:`.naming` (dataset names), :mod:`.schema` (the index record), :mod:`.trigger` (menus, masks),
  :mod:`.guid`; :mod:`.errors` (every exception); :mod:`.settings` (the one reader of the environment);
- the mini-ATLAS world: :mod:`.sim`; data files: :mod:`.rootfile`;
- producing and announcing: :mod:`.producer`, :mod:`.staging`, :mod:`.messaging`, :mod:`.announcements`;
- the catalogue: :mod:`.catalog` (protocol, embedded and Phoenix backends, loader), :mod:`.metadata`;
- adapters: :mod:`.ddm` (Rucio), :mod:`.panda` (PanDA), :mod:`.upstream` (Tier-0 and production-system tables),
  :mod:`.airflow_api` (Airflow's REST API, over HTTP);
- use cases: :mod:`.ingest`, :mod:`.consistency`, :mod:`.picking`, :mod:`.export`; :mod:`.workarea` (hand-over
  between a run's tasks); :mod:`.demo` (the demo's library path);
- the ``eventindex`` command: :mod:`.cli` (one module per noun).
"""

__version__ = "0.1.0"
