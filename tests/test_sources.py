"""The index stage's sources: a folder read in place, official zips (local server, offline, bad
md5, zip-slip), the synthetic set."""

import functools
import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, make_set

from omniglot_mtl.core.errors import InputError, ParamError
from omniglot_mtl.core.params import Data, Synthetic, from_dict
from omniglot_mtl.data import download as download_stage
from omniglot_mtl.data.download import download, download_zip
from omniglot_mtl.data.folder_source import folder_sets
from omniglot_mtl.data.layout import Scan, scan_sets
from omniglot_mtl.data.sources import extract_zip, source_sets


def fetch(data: Data, scratch: Path, **kwargs) -> Scan:
    """What the index stage reads of ``data``'s source: its set folders, scanned."""
    scratch.mkdir(exist_ok=True)
    return scan_sets(source_sets(data, scratch, **kwargs))


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
    scan = fetch(data, tmp_path / "scratch")
    assert len(scan.drawings) == 24 and scan.skipped == []
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == ["synthetic"]
    assert scan.drawings[0].path == "synthetic/Synthetic_01/character01/0001_01.png"
    assert scan.drawings[0].file == str(tmp_path / "scratch" / scan.drawings[0].path)


def folder(path: Path, sets: tuple[str, ...] = ("background",)) -> Data:
    return Data(source="folder", folder=str(path), sets=sets)


def test_alphabet_level_folder_is_read_in_place_without_litter(tmp_path):
    src = tmp_path / "images_background"
    make_set(src, {"A": 2, "B": 1}, drawers=3)
    (src / ".DS_Store").write_text("x")
    (src / "A" / "character01" / "notes.txt").write_text("x")
    scan = fetch(folder(src), tmp_path / "scratch")
    assert len(scan.drawings) == 9
    assert scan.skipped == [f"{src}/.DS_Store", f"{src}/A/character01/notes.txt"]
    first = scan.drawings[0]
    assert first.path == "images_background/A/character01/0001_01.png"
    assert first.file == f"{src}/A/character01/0001_01.png"
    assert list((tmp_path / "scratch").iterdir()) == []  # nothing copied


def test_folders_posing_as_drawings_and_symlinks_are_named(tmp_path):
    """A symlink to a file is read as that file (DVC hashes it so too); a symlink to a folder is
    not followed, so a loop cannot hang the scan; a folder named like a drawing is named."""
    src = tmp_path / "images_background"
    make_set(src, {"A": 2}, drawers=3)
    char = src / "A" / "character01"
    (char / "0001_03.png").unlink()
    (char / "0001_03.png").mkdir()  # a folder where drawing 3 should be
    elsewhere = tmp_path / "elsewhere" / "0001_04.png"
    make_set(tmp_path / "other", {"X": 1}, drawers=1)
    elsewhere.parent.mkdir()
    (tmp_path / "other" / "X" / "character01" / "0001_01.png").rename(elsewhere)
    (char / "0001_04.png").symlink_to(elsewhere)  # a drawing kept elsewhere
    (char / "loop").symlink_to("..", target_is_directory=True)  # A/character01/loop -> A
    (char / "0001_05.png").symlink_to(tmp_path / "gone.png")  # broken
    (src / "A" / "character02" / "again").symlink_to("../character02")
    scan = fetch(folder(src), tmp_path / "scratch")
    assert sorted(d.path for d in scan.drawings if d.character == "A/character01") == [
        "images_background/A/character01/0001_01.png",
        "images_background/A/character01/0001_02.png",
        "images_background/A/character01/0001_04.png",
    ]
    linked = next(d for d in scan.drawings if d.path.endswith("0001_04.png"))
    assert linked.file == str(char / "0001_04.png")  # read through the link, as DVC hashes it
    assert scan.why == {
        f"{src}/A/character01/0001_03.png": "a folder named like a drawing",
        f"{src}/A/character01/0001_05.png": "a broken symlink",
        f"{src}/A/character01/loop": "a symlink to a folder, not followed",
        f"{src}/A/character02/again": "a symlink to a folder, not followed",
    }
    assert scan.skipped_summary() == (
        f"skipped 4 entries that are not drawings: {src}/A/character01/0001_03.png (a folder named like a "
        f"drawing), {src}/A/character01/0001_05.png (a broken symlink), {src}/A/character01/loop (a "
        "symlink to a folder, not followed), ..."
    )


def test_the_params_check_reads_the_drawers_of_a_folder_or_its_zips_from_names(tmp_path):
    from omniglot_mtl.core.params import Split
    from omniglot_mtl.data.folder_source import check_against_data, source_drawers

    one_set = tmp_path / "images_background"
    make_set(one_set, {"A": 1, "B": 1}, drawers=4)
    assert source_drawers(folder(one_set)) == {1, 2, 3, 4}
    sets = tmp_path / "sets"
    sets.mkdir()
    zip_folder(one_set, sets / "images_background.zip")
    assert source_drawers(folder(sets)) == {1, 2, 3, 4}
    data = folder(one_set)
    with pytest.raises(
        ParamError, match=r"^params.yaml: data.split.val_drawers: no drawings by drawer\(s\) \[15, 16"
    ):
        check_against_data(data)  # the default split: drawers 15-20
    check_against_data(Data(source="folder", folder=str(one_set), split=Split((3,), (4,))))
    # A broken symlink or a folder named like a drawing of drawer 9 is no drawing by drawer 9.
    (one_set / "A" / "character01" / "0001_09.png").symlink_to(tmp_path / "gone.png")
    (one_set / "B" / "character01" / "0002_09.png").mkdir()
    assert source_drawers(folder(one_set)) == {1, 2, 3, 4}
    # The index stage's own rules, applied before DVC deletes anything: an upper-case suffix is a
    # drawing, a character folder with none and an image named otherwise are refused.
    (one_set / "B" / "character01" / "0002_05.PNG").write_bytes(b"")
    assert source_drawers(folder(one_set)) == {1, 2, 3, 4, 5}
    empty = tmp_path / "empty" / "A" / "character01"
    empty.mkdir(parents=True)
    (empty / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=f"^{empty}: character folder holds no drawings$"):
        check_against_data(folder(tmp_path / "empty"))
    (empty / "drawing.png").write_bytes(b"")
    with pytest.raises(InputError, match=f"^{empty}/drawing.png: file name is not <id>_<drawer>"):
        check_against_data(folder(tmp_path / "empty"))


def test_set_level_folder_takes_data_sets(tmp_path):
    src = tmp_path / "omniglot"
    make_set(src / "images_background", {"A": 2}, drawers=3)
    make_set(src / "images_evaluation", {"Z": 1}, drawers=3, first_id=10)
    one = fetch(folder(src), tmp_path / "one")
    both = fetch(folder(src, ("background", "evaluation")), tmp_path / "two")
    assert len(one.drawings) == 6 and {d.set for d in one.drawings} == {"images_background"}
    assert len(both.drawings) == 9 and {d.alphabet for d in both.drawings} == {"A", "Z"}
    (src / "images_evaluation").rename(src / "elsewhere")
    with pytest.raises(
        ParamError,
        match=r"^params.yaml: data.sets: evaluation: .*omniglot holds neither images_evaluation/ nor",
    ):
        fetch(folder(src, ("background", "evaluation")), tmp_path / "three")
    assert list((tmp_path / "three").iterdir()) == []


def test_data_sets_is_refused_where_a_single_set_makes_it_meaningless(tmp_path):
    src = tmp_path / "my_alphabets"
    make_set(src, {"A": 1}, drawers=3)
    for sets in (("evaluation",), ("background", "evaluation")):
        with pytest.raises(
            ParamError,
            match=r"^params.yaml: data.sets: \[.*\] does not apply to data.folder .*my_alphabets: it is one",
        ):
            folder_sets(folder(src, sets))
    assert folder_sets(folder(src)) == [("my_alphabets", src)]
    # A set folder named as Omniglot names it takes its own name too.
    evaluation = tmp_path / "images_evaluation"
    make_set(evaluation, {"Z": 1}, drawers=3)
    assert folder_sets(folder(evaluation, ("evaluation",))) == [("images_evaluation", evaluation)]
    with pytest.raises(ParamError, match="data.sets: .* does not apply"):
        folder_sets(folder(evaluation, ("background", "evaluation")))
    with pytest.raises(ParamError, match=r"data.sets: \['evaluation'\] does not apply to source synthetic"):
        from_dict({"data": {"sets": ["evaluation"]}})


def test_the_default_folder_as_committed_is_refused_before_anything_runs():
    # data/external holds only its README until a user puts a set there.
    with pytest.raises(ParamError, match=r"^params.yaml: data.folder: .*external holds no alphabet folders"):
        folder_sets(folder(ROOT / "data" / "external"))


def test_missing_source_folder_fails_in_one_line(tmp_path):
    with pytest.raises(InputError, match=r"^params.yaml: data.folder: .*nowhere is not a folder$"):
        fetch(folder(tmp_path / "nowhere"), tmp_path / "scratch")
    assert list(tmp_path.iterdir()) == [tmp_path / "scratch"]


def test_a_badly_named_drawing_in_the_source_is_named_where_it_lies(tmp_path):
    src = tmp_path / "set"
    make_set(src, {"A": 1}, drawers=3)
    (src / "A" / "character01" / "bad name.png").write_text("x")
    with pytest.raises(InputError, match=f"^{src}/A/character01/bad name.png: file name is not"):
        fetch(folder(src), tmp_path / "scratch")


def test_download_stage_fetches_checked_zips_and_index_extracts_them(tmp_path, server, monkeypatch):
    www, url = server
    make_set(tmp_path / "images_background", {"A": 2}, drawers=3)
    archive = zip_folder(tmp_path / "images_background", www / "images_background.zip")
    monkeypatch.setitem(download_stage.OMNIGLOT_MD5, "images_background", md5(archive))
    data = Data(source="omniglot", mirror=url)
    got = download(data, tmp_path / "downloads")
    assert got == [tmp_path / "downloads" / "images_background.zip"] and md5(got[0]) == md5(archive)
    scan = fetch(data, tmp_path / "scratch", downloads=tmp_path / "downloads")
    assert len(scan.drawings) == 6 and {d.set for d in scan.drawings} == {"images_background"}
    # Any other source leaves the folder empty (DVC's run cache keeps the zips).
    assert download(Data(), tmp_path / "downloads") == []
    with pytest.raises(InputError, match=r"downloads/images_background.zip: not found; the download stage"):
        fetch(data, tmp_path / "scratch2", downloads=tmp_path / "downloads")


def test_download_with_wrong_md5_leaves_nothing(tmp_path, server):
    www, url = server
    (www / "images_background.zip").write_bytes(b"not the file you are looking for")
    with pytest.raises(
        InputError, match=r"^data.mirror: .*images_background.zip: the downloaded file's md5 is not"
    ):
        download(Data(source="omniglot", mirror=url), tmp_path / "downloads")
    assert list(tmp_path.iterdir()) == [tmp_path / "www"]


def test_offline_failure_says_what_to_do(tmp_path, server):
    _, url = server  # the server has no such file: as good as unreachable
    with pytest.raises(InputError) as err:
        download_zip("images_evaluation", url, tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"data.mirror: cannot download {url}/images_evaluation.zip")
    assert message.endswith("set data.source: folder, data.folder: that folder")
    assert list(tmp_path.iterdir()) == [tmp_path / "www"]


def test_folder_of_official_zips_put_by_hand(tmp_path, monkeypatch):
    make_set(tmp_path / "images_background", {"A": 2, "B": 2}, drawers=3)
    zips = tmp_path / "zips"
    zips.mkdir()
    archive = zip_folder(tmp_path / "images_background", zips / "images_background.zip")
    monkeypatch.setitem(download_stage.OMNIGLOT_MD5, "images_background", md5(archive))
    scan = fetch(folder(zips), tmp_path / "scratch")
    assert len(scan.drawings) == 12 and {d.set for d in scan.drawings} == {"images_background"}
    monkeypatch.setitem(download_stage.OMNIGLOT_MD5, "images_background", "0" * 32)
    with pytest.raises(InputError, match=r"images_background.zip: md5 is not 0+; the file is damaged"):
        fetch(folder(zips), tmp_path / "scratch2")


def test_an_official_zip_without_its_set_folder_is_named(tmp_path, monkeypatch):
    make_set(tmp_path / "elsewhere", {"A": 1}, drawers=3)
    zips = tmp_path / "zips"
    zips.mkdir()
    archive = zip_folder(tmp_path / "elsewhere", zips / "images_background.zip")
    monkeypatch.setitem(download_stage.OMNIGLOT_MD5, "images_background", md5(archive))
    with pytest.raises(
        InputError, match=r"^.*zips/images_background.zip: holds no images_background/ folder$"
    ):
        fetch(folder(zips), tmp_path / "scratch")


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
