"""Provisioning: a folder copied into one partition's data dir, owned by that partition alone."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from runtime_helpers import MODELS, require, running

from septum.model import load
from septum.runtime.plan import SetupError
from septum.runtime.supervisor import Supervisor


def test_provisioned_files_reach_only_their_partition(tmp_path: Path) -> None:
    require("root")
    src = Path(tempfile.mkdtemp(prefix="septum-prov-"))
    (src / "keys").mkdir()
    (src / "keys" / "device.txt").write_text("device-7")
    with running("provisioned.yaml", tmp_path, provision={"holder": src}) as sup:
        ev = sup.events.wait_for(lambda e: e.kind == "provisioned", timeout=10)
        assert ev is not None and ev.fields["content"] == "device-7"
        copied = sup.data_dir("holder") / "keys" / "device.txt"
        st = copied.stat()
        holder_uid = os.stat(sup.data_dir("holder")).st_uid
        assert st.st_uid == holder_uid != 0
        assert st.st_mode & 0o077 == 0  # nobody else can read it
        assert os.stat(sup.data_dir("other")).st_uid != holder_uid


def test_provisioning_an_unknown_partition_is_refused() -> None:
    model, source = load(MODELS / "provisioned.yaml")
    with pytest.raises(SetupError, match="unknown partition"):
        Supervisor(model, source, model_dir=MODELS, provision={"nope": "/tmp"})
