import json
import subprocess
import sys

import pytest

from eventindex import naming
from eventindex.errors import MalformedDatasetName

REAL_NAMES = [
    ("data18_13TeV.00358031.physics_Main.merge.AOD.f961_m1831",
     dict(project="data18_13TeV", run_number=358031, stream="physics_Main", prodstep="merge", datatype="AOD",
          amitag="f961_m1831", tags=("f961", "m1831"))),
    ("data18_13TeV.00358031.physics_Main.daq.RAW",
     dict(run_number=358031, datatype="RAW", amitag=None, tags=())),
    ("mc16_13TeV.410470.PhPy8EG_A14_ttbar_hdamp258p75_nonallhad.deriv.DAOD_PHYS.e6337_s3126_r10201_p4172",
     dict(project="mc16_13TeV", dsid=410470, physics_short="PhPy8EG_A14_ttbar_hdamp258p75_nonallhad",
          prodstep="deriv", datatype="DAOD_PHYS", tags=("e6337", "s3126", "r10201", "p4172"), run_number=None)),
    ("data22_13p6TeV.00431906.physics_Main.deriv.DAOD_PHYSLITE.r13928_p5279_p5855",
     dict(project="data22_13p6TeV", run_number=431906, datatype="DAOD_PHYSLITE")),
    ("data17_13TeV.00325713.express_express.recon.ESD.f867",
     dict(stream="express_express", prodstep="recon", datatype="ESD", amitag="f867")),
    ("mc20_13TeV.700320.Sh_2211_Zee_maxHTpTV2_BFilter.recon.AOD.e8351_s3681_r13144_tid27106063_00",
     dict(dsid=700320, amitag="e8351_s3681_r13144", suffix="_tid27106063_00")),
    ("data18_13TeV.00358031.physics_Main.merge.AOD.f961_m1831_sub0123456",
     dict(suffix="_sub0123456")),
]


@pytest.mark.parametrize("name,fields", REAL_NAMES, ids=[n for n, _ in REAL_NAMES])
def test_real_names_parse_into_their_fields(name, fields):
    parsed = naming.parse(name)
    for key, value in fields.items():
        assert getattr(parsed, key) == value, key


@pytest.mark.parametrize("name", [n for n, _ in REAL_NAMES])
def test_format_gives_the_parsed_name_back(name):
    assert naming.parse(name).name == name


def test_rucio_did_keeps_the_scope_and_the_name():
    d = naming.parse("data18_13TeV:data18_13TeV.00358031.physics_Main.daq.RAW")
    assert d.scope == "data18_13TeV"
    assert d.name == "data18_13TeV.00358031.physics_Main.daq.RAW"
    assert d.did == "data18_13TeV:data18_13TeV.00358031.physics_Main.daq.RAW"
    user = naming.parse("user.jdoe:data18_13TeV.00358031.physics_Main.merge.AOD.f961_m1831")
    assert user.scope == "user.jdoe" and user.did.startswith("user.jdoe:")


def test_transient_helper_datasets_are_recognised():
    assert naming.parse("data18_13TeV.00358031.physics_Main.merge.AOD.f961_m1831_sub0123456").is_transient
    assert not naming.parse("mc20_13TeV.700320.Sh_Zee.recon.AOD.e8351_s3681_r13144_tid27106063_00").is_transient


MALFORMED = [
    ("", "empty"),
    ("data18_13TeV.00358031.physics_Main.merge", "at least 5"),
    ("data18_13TeV.358031.physics_Main.merge.AOD.f961", "run number '358031' must be 8 digits"),
    ("data18.00358031.physics_Main.merge.AOD.f961", "project 'data18'"),
    ("data18_13TeV.00358031.Main.merge.AOD.f961", "stream 'Main'"),
    ("data18_13TeV.00358031.physics_Main.merged.AOD.f961", "production step 'merged'"),
    ("data18_13TeV.00358031.physics_Main.merge.XAOD.f961", "data type 'XAOD'"),
    ("data18_13TeV.00358031.physics_Main.merge.AOD", "needs an AMI tag"),
    ("data18_13TeV.00358031.physics_Main.merge.AOD.f961_mm1831", "AMI tag 'mm1831'"),
    ("data18_13TeV.00358031.physics_Main.merge.AOD.f961__m1831", "AMI tag ''"),
    ("mc16_13TeV.41047.ttbar.recon.AOD.e6337", "dataset number '41047'"),
    ("mc16_13TeV:data18_13TeV.00358031.physics_Main.daq.RAW", "differs from the project"),
    ("data18_13TeV.00358031.physics_Main.daq.RAW.f1.x2.y3", "at most 6"),
    ("data18_13TeV.00358031.physics_Main.daq.RAW; DROP TABLE", "ASCII letters"),
]


@pytest.mark.parametrize("name,why", MALFORMED, ids=[m[1] for m in MALFORMED])
def test_malformed_names_are_refused_with_the_reason(name, why):
    with pytest.raises(MalformedDatasetName) as exc:
        naming.parse(name)
    assert why in str(exc.value)


def test_cli_name_parse_prints_the_fields_as_json():
    name = "mc16_13TeV.410470.PhPy8EG_A14_ttbar_hdamp258p75_nonallhad.deriv.DAOD_PHYS.e6337_s3126_r10201_p4172"
    done = subprocess.run([sys.executable, "-m", "eventindex.cli", "name", "parse", name],
                          capture_output=True, text=True, check=True)
    fields = json.loads(done.stdout)
    assert fields["dsid"] == 410470
    assert fields["physics_short"] == "PhPy8EG_A14_ttbar_hdamp258p75_nonallhad"
    assert fields["tags"] == ["e6337", "s3126", "r10201", "p4172"]
    assert fields["amitag"] == "e6337_s3126_r10201_p4172"
    assert "run_number" not in fields


def test_cli_name_parse_exits_non_zero_saying_what_is_wrong():
    done = subprocess.run([sys.executable, "-m", "eventindex.cli", "name", "parse",
                           "data18_13TeV.00358031.physics_Main.merge.AOD.f961_X"], capture_output=True, text=True)
    assert done.returncode != 0
    assert "AMI tag 'X'" in done.stderr
    assert done.stdout == ""
