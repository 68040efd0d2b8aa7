"""Stage fetch's sources: a folder, official zips (local server, offline, bad md5, zip-slip)."""

import functools
import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest
from conftest import make_set

from omniglot_mtl import sources
from omniglot_mtl.errors import InputError
from omniglot_mtl.params import Data, Synthetic
from omniglot_mtl.sources import extract_zip, fetch, official_zip


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, p.relative_to(folder.parent).as_posix())
    return archive


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over tmp_path/www, standing in for Omniglot's download host."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_synthetic_source(tmp_path):
    data = Data(synthetic=Synthetic(alphabets=2, characters=3, drawers=4))
    scan = fetch(data, out=tmp_path / "raw")
    assert len(scan.drawings) == 24 and scan.skipped == []
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["synthetic"]


def test_alphabet_level_folder_is_copied_without_litter(tmp_path):
    src = tmp_path / "images_background"
    make_set(src, {"A": 2, "B": 1}, drawers=3)
    (src / ".DS_Store").write_text("x")
    (src / "A" / "character01" / "notes.txt").write_text("x")
    scan = fetch(Data(source=str(src)), out=tmp_path / "raw")
    assert len(scan.drawings) == 9
    assert scan.skipped == [f"{src}/.DS_Store", f"{src}/A/character01/notes.txt"]
    copied = sorted(
        p.relative_to(tmp_path / "raw").as_posix() for p in (tmp_path / "raw").rglob("*") if p.is_file()
    )
    assert len(copied) == 9 and copied[0] == "images_background/A/character01/0001_01.png"


def test_set_level_folder_takes_data_sets(tmp_path):
    src = tmp_path / "omniglot"
    make_set(src / "images_background", {"A": 2}, drawers=3)
    make_set(src / "images_evaluation", {"Z": 1}, drawers=3, first_id=10)
    one = fetch(Data(source=str(src)), out=tmp_path / "one")
    both = fetch(Data(source=str(src), sets=("background", "evaluation")), out=tmp_path / "two")
    assert len(one.drawings) == 6 and {d.set for d in one.drawings} == {"images_background"}
    assert len(both.drawings) == 9 and {d.alphabet for d in both.drawings} == {"A", "Z"}
    (src / "images_evaluation").rename(src / "elsewhere")
    with pytest.raises(InputError, match=r"data.sets: .*images_evaluation not found"):
        fetch(Data(source=str(src), sets=("background", "evaluation")), out=tmp_path / "three")
    assert not (tmp_path / "three").exists()


def test_missing_source_folder_fails_without_output(tmp_path):
    with pytest.raises(
        InputError, match=r"^data.source: .*nowhere is not 'synthetic', 'omniglot' or an existing folder$"
    ):
        fetch(Data(source=str(tmp_path / "nowhere")), out=tmp_path / "raw")
    assert list(tmp_path.iterdir()) == []


def test_failed_fetch_keeps_the_previous_output_whole(tmp_path):
    src = tmp_path / "set"
    make_set(src, {"A": 1}, drawers=3)
    fetch(Data(source=str(src)), out=tmp_path / "raw")
    (src / "A" / "character01" / "bad name.png").write_text("x")
    with pytest.raises(InputError, match="bad name.png: file name is not"):
        fetch(Data(source=str(src)), out=tmp_path / "raw")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "set"]
    assert len(list((tmp_path / "raw").rglob("*.png"))) == 3


def test_download_checks_md5_and_is_reused(tmp_path, server):
    www, url = server
    make_set(tmp_path / "images_background", {"A": 2}, drawers=3)
    archive = zip_folder(tmp_path / "images_background", www / "images_background.zip")
    cache = tmp_path / "zips"
    got = official_zip("images_background", url, cache, md5=md5(archive))
    assert got == cache / "images_background.zip" and md5(got) == md5(archive)
    archive.unlink()  # now offline for this file: the kept copy serves
    assert official_zip("images_background", url, cache, md5=md5(got)) == got
    with pytest.raises(InputError, match=r"images_background.zip: md5 is not 0+; the file is damaged"):
        official_zip("images_background", url, cache, md5="0" * 32)


def test_download_with_wrong_md5_leaves_nothing(tmp_path, server):
    www, url = server
    (www / "images_background.zip").write_bytes(b"not the file you are looking for")
    with pytest.raises(InputError, match=r"images_background.zip: downloaded file's md5 is not"):
        official_zip("images_background", url, tmp_path / "zips")
    assert list((tmp_path / "zips").iterdir()) == []


def test_offline_failure_says_what_to_do(tmp_path, server):
    _, url = server  # the server has no such file: as good as unreachable
    with pytest.raises(InputError) as err:
        official_zip("images_evaluation", url, tmp_path / "zips")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"cannot download {url}/images_evaluation.zip")
    assert "put the official images_evaluation.zip into" in message and "data.source" in message


def test_omniglot_source_from_a_zip_put_by_hand(tmp_path, monkeypatch):
    make_set(tmp_path / "images_background", {"A": 2, "B": 2}, drawers=3)
    archive = zip_folder(tmp_path / "images_background", tmp_path / "images_background.zip")
    monkeypatch.setitem(sources.OMNIGLOT_MD5, "images_background", md5(archive))
    scan = fetch(Data(source="omniglot", mirror="http://127.0.0.1:9"), tmp_path / "raw", zip_folder=tmp_path)
    assert len(scan.drawings) == 12 and {d.set for d in scan.drawings} == {"images_background"}


def test_zip_entry_outside_target_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("images_background/A/character01/0001_01.png", b"x")
        zf.writestr("../../escaped.txt", b"x")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match=r"evil.zip: entry '../../escaped.txt' would extract outside"):
        extract_zip(archive, out)
    assert list(out.iterdir()) == [] and not (tmp_path.parent / "escaped.txt").exists()


def test_not_a_zip(tmp_path):
    (tmp_path / "x.zip").write_text("plain text")
    with pytest.raises(InputError, match="x.zip: not a zip file"):
        extract_zip(tmp_path / "x.zip", tmp_path)
