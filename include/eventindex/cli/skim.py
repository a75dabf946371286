"""`eventindex skim`: the events passing a selection, with the attributes and references asked for, as a ROOT file
(:mod:`eventindex.tag.skim`). The options may come from a TOML file (``--options``) whose keys are the long option
names; an option given on the command line wins over the file's value."""

from __future__ import annotations

import argparse

from ..errors import BadRequest, NotFound
from .args import CommaList, add_command, add_selection_options, selection
from .output import err, out, print_json, progress

NOT_IN_FILE = ("options", "help")


def register(sub) -> None:
    p = add_command(sub, "skim", "write the events passing a selection, their attributes and their references in "
                                 "each format asked for, to a ROOT file (TTree events)",
                    ["eventindex skim --type AOD --stream physics_Main --lumi 10-20 --formats AOD,RAW "
                     "--attributes run_number,event_number,lumi_block --output skim.root",
                     "eventindex skim --options skim.toml --lumi 30-40 --json",
                     "eventindex skim --type AOD --run 358031 --attributes run_number,event_number --dag "
                     "--output run358031.root"])
    add_selection_options(p, json_help="the summary as JSON")
    g = p.add_argument_group("skim")
    g.add_argument("--attributes", action=CommaList, metavar="A,B",
                   help="record attributes to write (default run_number,event_number,lumi_block); comma-separated "
                        "or repeated")
    g.add_argument("--formats", action=CommaList, metavar="F,G",
                   help="formats whose references (<FORMAT>_guid, <FORMAT>_entry) to write (default: the selection's "
                        "type)")
    g.add_argument("--output", metavar="FILE.root", help="the ROOT file (in an existing folder) or an object-store URI")
    g.add_argument("--limit", type=int, help="at most this many events")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    g.add_argument("--dag", action="store_true",
                   help="run it as an eventindex_skim DAG run through Airflow's REST API (for big skims); --output "
                        "is then a file name in the skims area (EVENTINDEX_SKIMS)")
    g.add_argument("--options", action=OptionsFile, metavar="FILE.toml",
                   help="options from a TOML file (keys: the long option names, e.g. type = \"AOD\", "
                        "lumi = [\"10-20\"]); options on the command line win")
    p.set_defaults(func=cmd_skim)


class OptionsFile(argparse.Action):
    """``--options FILE.toml``: the file's values become the defaults of the options it names, so that an option
    given on the command line (before or after it) wins. An unknown key or a value of the wrong kind is refused."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in NOT_IN_FILE}
        for key, value in read_options(values).items():
            dest = key.replace("-", "_")
            action = actions.get(dest)
            if action is None:
                raise BadRequest(f"{values}: unknown option {key!r}; the keys are the long option names: "
                                 f"{', '.join(sorted(a.replace('_', '-') for a in actions))}")
            value = _checked(values, key, action, value)
            given = getattr(namespace, dest, None) is not action.default  # set on the command line before the file
            action.default = value
            if not given:
                setattr(namespace, dest, value)


def read_options(name: str) -> dict:
    import tomllib

    from .args import read_text_file

    try:
        return tomllib.loads(read_text_file(name, "an options file"))
    except FileNotFoundError:
        raise NotFound(f"{name} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadRequest(f"{name} is not a TOML file: {exc}") from None


def _checked(name: str, key: str, action: argparse.Action, value):
    """A file's value in the form the command line would have given it."""
    if isinstance(action, CommaList):
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in items):
            raise BadRequest(f"{name}: {key} must be a list of names or numbers, e.g. {key} = [\"a\", \"b\"]")
        return [s.strip() for v in items for s in str(v).split(",") if s.strip()]
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise BadRequest(f"{name}: {key} must be true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRequest(f"{name}: {key} must be a string or a number")
    if action.type is int and isinstance(value, str):
        raise BadRequest(f"{name}: {key} must be a whole number")
    return value if isinstance(value, int) and action.type is not None else str(value)


def cmd_skim(args) -> int:
    from ..catalog import open_catalog
    from ..tag.skim import check_attributes, check_output, skim

    if not args.output:
        raise BadRequest("give --output FILE.root (or output = \"FILE.root\" in the options file)")
    check_attributes(args.attributes)  # refused before the catalogue is opened
    if args.dag:
        return _submit(args)
    check_output(args.output, args.overwrite)
    sel = selection(args)
    catalog = open_catalog()
    with progress() as bar:
        task = bar.add_task("skimming", total=None)
        result = skim(catalog, sel, args.attributes or None, args.formats or None, args.output, limit=args.limit,
                      overwrite=args.overwrite,
                      progress=lambda done, total: bar.update(task, completed=done, total=total))
    if args.json:
        print_json(result.to_dict())
        return 0
    out.print(f"{result.events:,} events written to {result.output} ({result.bytes:,} bytes, {result.seconds:.1f} s)")
    out.print(f"attributes: {', '.join(result.attributes)}; references: {', '.join(result.formats)}")
    out.print("to make it again:", highlight=False)
    out.print(f"  {result.command}", highlight=False, markup=False, soft_wrap=True)
    return 0


def _submit(args) -> int:
    """The skim as an ``eventindex_skim`` run: submitted, followed with a progress bar, its summary printed."""
    import json

    from ..airflow_api import AirflowAPI
    from ..settings import Settings
    from ..tag.skim import dag_conf

    conf = dag_conf(selection(args), args.attributes or None, args.formats, args.output, args.limit, args.overwrite)
    api = AirflowAPI.from_env(Settings.from_env())
    run_id = api.trigger("eventindex_skim", conf, prefix="skim")
    err.print(f"submitted {run_id} to {api.url}")
    with progress() as bar:
        task = bar.add_task("skimming", total=None)
        state = api.wait("eventindex_skim", run_id, lambda done, total: bar.update(task, completed=done, total=total))
    summary = api.run_xcom("eventindex_skim", run_id, "summary") if state == "success" else None
    if args.json:
        print(json.dumps({"run_id": run_id, "state": state, **(summary or {})}))
    elif summary:
        out.print(f"{state}: {summary['events']:,} events written to {summary['output']} ({summary['bytes']:,} bytes)",
                  highlight=False, markup=False, soft_wrap=True)
        out.print(f"  {summary['command']}", highlight=False, markup=False, soft_wrap=True)
    else:
        failed = api.failed_tasks("eventindex_skim", run_id)
        out.print(f"{state}: {'failed step(s) ' + ', '.join(failed) + '; ' if failed else ''}see the run {run_id} "
                  f"in the Airflow UI ({api.url})")
    return 0 if state == "success" else 1
