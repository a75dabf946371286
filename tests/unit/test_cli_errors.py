"""The command's rough edges: each gets a one-line answer (or the expected behaviour), never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from eventindex import metadata as md
from eventindex.cli.args import read_text_file
from eventindex.cli.main import build_parser, main
from eventindex.errors import BadInput, NotFound


def ei(*args, check=False, **kwargs):
    return subprocess.run([sys.executable, "-m", "eventindex.cli", *map(str, args)], capture_output=True, text=True,
                          check=check, **kwargs)


def one_line_error(done) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode not in (0, None), done.stdout
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def loaded(staged_world, metadata_home):
    world, out, staging = staged_world
    assert main(["load", str(staging), "--menus", str(out / "menus.json"), "--json"]) == 0
    return world, out


# --- pipes --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["datasets"], ["datasets", "--json"], ["name", "parse", "data18_13TeV.00358031"
                                                                                 ".physics_Main.daq.RAW"]])
def test_output_into_a_closed_pipe_ends_quietly(loaded, command):
    proc = subprocess.Popen([sys.executable, "-m", "eventindex.cli", *command], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # what `| head -1` does once it has its line: the command then writes into a closed pipe
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1  # as Python's docs advise for EPIPE; rich's consoles do the same
    assert stderr == ""


# --- user text files ----------------------------------------------------------------------------------------------


def test_a_utf8_bom_is_dropped_so_the_first_line_parses(tmp_path):
    f = tmp_path / "events.txt"
    f.write_bytes("358031 1\n358031 2\n".encode("utf-8-sig"))
    assert read_text_file(str(f)).splitlines()[0] == "358031 1"


def test_unreadable_events_files_are_refused_in_one_line(tmp_path):
    binary = tmp_path / "events.bin"
    binary.write_bytes(bytes(range(256)))
    folder = tmp_path / "folder"
    folder.mkdir()
    missing = tmp_path / "nothing.txt"
    for path, expect in ((folder, f"{folder} is a folder, not a file of 'run event' lines"),
                         (binary, f"{binary} is not a text file"), (missing, f"{missing} does not exist")):
        done = ei("pick", "--dry-run", "--events", path, "--type", "AOD")
        assert one_line_error(done).endswith(expect)
    with pytest.raises(BadInput, match="not a text file"):
        read_text_file(str(binary))
    with pytest.raises(NotFound):
        read_text_file(str(missing))


def test_events_are_read_from_stdin_with_a_dash(tmp_path, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("\ufeff358031 7\n".encode())))
    assert read_text_file("-") == "358031 7\n"


# --- count -------------------------------------------------------------------------------------------------------


def test_count_over_several_formats_says_so_on_stderr(loaded):
    world, _ = loaded
    every = ei("count", "--stream", "physics_Main", "--json", check=True)
    types = {d["datatype"] for d in world["datasets"] if d.get("stream") == "physics_Main"}
    assert len(types) > 1
    assert json.loads(every.stdout)["count"] == sum(d["nevents"] for d in world["datasets"]
                                                    if d.get("stream") == "physics_Main")
    assert f"counted records of {len(types)} formats" in every.stderr and "add --type" in every.stderr
    for t in types:
        assert t in every.stderr
    one = ei("count", "--stream", "physics_Main", "--type", "RAW", check=True)
    assert one.stderr.strip() == ""


# --- picks -------------------------------------------------------------------------------------------------------


def test_picks_json_holds_objects_and_names_the_error_of_failed_requests(eventindex_home):
    eventindex_home.mkdir(parents=True)
    engine = md.make_engine(f"sqlite:///{eventindex_home / 'metadata.sqlite'}")
    md.upgrade(engine)
    params = {"datatype": "AOD", "output": "user.jdoe.x.AOD"}
    with engine.begin() as conn:
        conn.execute(md.pick_requests.insert().values(
            request_id="pick__ok", created=md.now(), state="done", params=json.dumps(params), requested=3, found=2,
            missing=1, output_dataset="user.jdoe:user.jdoe.x.AOD", summary=json.dumps({"found": 2, "missing": 1})))
        conn.execute(md.pick_requests.insert().values(
            request_id="pick__bad", created=md.now(), state="failed", params=json.dumps(params), requested=3,
            summary=json.dumps({"error": "extract_1 failed: no replica"})))
    rows = {r["request_id"]: r for r in json.loads(ei("picks", "--json", check=True).stdout)}
    assert rows["pick__ok"]["params"] == params and rows["pick__ok"]["summary"] == {"found": 2, "missing": 1}
    assert rows["pick__ok"]["error"] is None
    assert rows["pick__bad"]["error"] == "extract_1 failed: no replica"
    table = ei("picks", check=True).stdout
    assert "error" in table and "extract_1 failed" in table


# --- help --------------------------------------------------------------------------------------------------------


def _subcommands(parser, prefix=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*prefix, name), helps.get(name), sub
                yield from _subcommands(sub, (*prefix, name))


def test_every_subcommand_has_a_help_text_and_examples():
    found = list(_subcommands(build_parser()))
    assert len(found) >= 20
    for path, help_text, sub in found:
        assert help_text, path
        assert sub.epilog and "examples:" in sub.epilog and f"eventindex {path[0]}" in sub.epilog, path


def test_extract_job_hands_every_argument_to_the_transformation():
    args = build_parser().parse_args(["extract-job", "--out-dir", "o", "--job", "3", "--lfn", "x.root",
                                      "--input", "file:///f.root", "G", "0,1"])
    assert args.job_args == ["--out-dir", "o", "--job", "3", "--lfn", "x.root", "--input", "file:///f.root", "G",
                             "0,1"]


# --- selection values: refused as typed, never clipped nor dropped ---------------------------------------------------


@pytest.mark.parametrize("option, named", [
    ("--trigger=", "trigger is empty"), ("--trigger=  ", "trigger is empty"),
    ("--bcid=1-999999999999", "BCID 999999999999 is out of range (0..3563)"),
    ("--bcid=3564", "BCID 3564 is out of range (0..3563)"),
    ("--run=12345678901234567890123", "run 12345678901234567890123 is out of range (0..4294967295)"),
    ("--run=4294967296", "run 4294967296 is out of range (0..4294967295)"),
    ("--run=1-4294967296", "run 4294967296 is out of range"),
    ("--lumi=", "lumi block '' is not a number"), ("--run=", "run '' is not a number"),
    ("--trigger=" + "not " * 200 + "HLT_x", "deeper than 32 levels"),
    ("--trigger=" + "(" * 900 + "HLT_x" + ")" * 900, "deeper than 32 levels")])
def test_a_selection_value_out_of_range_or_blank_is_refused_as_typed(option, named, eventindex_home):
    line = one_line_error(ei("count", option))
    assert named in line


def test_the_largest_run_number_is_a_valid_cut(loaded):
    done = ei("count", "--run=4294967295", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["count"] == 0, done.stderr


# --- a fresh EVENTINDEX_HOME -------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["lookup", "358031", "1"], ["count"], ["datasets"], ["show", "data18_13TeV.00358031.physics_Main.daq.RAW"],
    ["picks"], ["world"], ["ddm", "register"], ["db", "upgrade"], ["load", "nowhere/staging"],
])
def test_every_command_on_a_fresh_home_answers_in_one_line(command, eventindex_home):
    done = ei(*command)
    assert "Traceback" not in done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip() and "━" not in line]
    assert len(lines) <= 2, done.stdout + done.stderr
    if done.returncode not in (0,):
        assert done.returncode in (1, 3)
        assert any(("error:" in line or "run `eventindex" in line or "not in the catalogue" in line) for line in lines)


def test_ddm_register_on_a_fresh_home_creates_the_folder(small_world, eventindex_home):
    world, out = small_world
    done = ei("ddm", "register", "--world", out)
    assert done.returncode == 0, done.stderr
    assert f"{len(world['datasets'])} datasets of {out} registered" in done.stdout
    assert (eventindex_home / "rucio.sqlite").exists()


# --- a bug ---------------------------------------------------------------------------------------------------------


def test_an_unexpected_error_is_one_line_with_exit_70_and_the_traceback_only_on_request(monkeypatch, capsys):
    import argparse

    from eventindex.cli import main as cli_main

    def broken(args):
        raise ZeroDivisionError("division by zero")

    class Parser:
        def parse_args(self, argv):
            return argparse.Namespace(func=broken)

    monkeypatch.setattr(cli_main, "build_parser", Parser)
    monkeypatch.delenv("EVENTINDEX_DEBUG", raising=False)
    assert cli_main.main(["anything"]) == 70
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "unexpected ZeroDivisionError: division by zero" in lines[0]
    monkeypatch.setenv("EVENTINDEX_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli_main.main(["anything"])
