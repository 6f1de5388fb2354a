"""Dataset versions on every store: versions, refs, tags, lineage, checkout, remotes, GC."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import loopml
from loopml.core.blobs import ContentStore, LocalStorage
from loopml.core.blobs.digest import digest_file
from loopml.core.gc import collect
from loopml.core.workspace import Workspace
from loopml.data import links, remotes, versions
from loopml.data.registration import add
from loopml.errors import InvalidInput, NotFound


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    """Write `files` (relative path -> bytes) under `folder`; return the folder."""
    for relpath, data in files.items():
        path = folder / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def configure_links(ws: Workspace, value: str) -> None:
    with (ws.settings.dir / "config.toml").open("a") as config:
        config.write(f'[data]\nlink = "{value}"\n')


def blob_count(ws: Workspace) -> int:
    return sum(1 for _ in ws.blobs.list())


@pytest.fixture
def folder(ws: Workspace) -> Path:
    return write_files(
        ws.root / "data" / "images",
        {f"class{c}/img{i}.bin": os.urandom(500) for c in range(3) for i in range(10)},
    )


def test_a_folder_becomes_v1_and_unchanged_content_makes_no_new_version(
    ws: Workspace, folder: Path
):
    v1, created = add(ws, folder, name="scans")
    again, created_again = add(ws, folder, name="scans")

    assert (created, created_again) == (True, False)
    assert v1.ref == again.ref == "scans@v1"
    assert (v1.kind, v1.num_files, v1.source) == ("folder", 30, "data/images")
    assert sorted(e.path for e in v1.manifest().files)[0] == "class0/img0.bin"


def test_changing_one_file_stores_only_that_file_anew(ws: Workspace, folder: Path):
    add(ws, folder, name="scans")
    before = blob_count(ws)
    (folder / "class1" / "img3.bin").write_bytes(b"edited")

    v2, created = add(ws, folder, name="scans")

    assert created and v2.ref == "scans@v2"
    assert blob_count(ws) == before + 2  # the edited file and the new manifest
    assert loopml.data.diff("scans@v1", "scans@v2")["files"] == {
        "added": [],
        "removed": [],
        "changed": ["class1/img3.bin"],
    }


def test_refs_resolve_by_number_latest_and_tag(ws: Workspace, folder: Path):
    add(ws, folder, name="scans")
    (folder / "new.bin").write_bytes(b"new")
    add(ws, folder, name="scans")
    loopml.data.tag("scans@v1", "prod")

    assert loopml.data.get("scans").version == 2
    assert loopml.data.get("scans@latest").version == 2
    assert loopml.data.get("scans@v1").version == 1
    prod = loopml.data.get("scans@prod")
    assert (prod.version, prod.tags) == (1, ("prod",))
    loopml.data.tag("scans@v2", "prod")  # a tag moves
    assert loopml.data.get("scans@prod").version == 2
    assert [v.ref for v in loopml.data.log("scans")] == ["scans@v2", "scans@v1"]
    summary = loopml.data.list_datasets()
    assert [(s.name, s.versions, s.latest.version) for s in summary] == [("scans", 2, 2)]


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nope", "no dataset 'nope'; datasets: scans"),
        ("scans@v9", "dataset 'scans' has no version 'v9'; versions are v1"),
        ("scans@prod", "dataset 'scans' has no tag 'prod' (tags: none)"),
    ],
)
def test_unknown_refs_say_what_exists(ws: Workspace, folder: Path, ref: str, message: str):
    add(ws, folder, name="scans")
    with pytest.raises(NotFound, match=message.replace("(", r"\(").replace(")", r"\)")):
        loopml.data.get(ref)


@pytest.mark.parametrize("bad", ["", "bad name", "a/b", "x@", "scans@", "@v1", "-x"])
def test_malformed_names_and_refs_are_refused(ws: Workspace, bad: str):
    with pytest.raises(InvalidInput):
        loopml.data.get(bad)


@pytest.mark.parametrize("tag", ["latest", "v3", "bad tag"])
def test_reserved_or_malformed_tags_are_refused(ws: Workspace, folder: Path, tag: str):
    add(ws, folder, name="scans")
    with pytest.raises(InvalidInput):
        loopml.data.tag("scans@v1", tag)


def test_concurrent_adds_number_versions_without_gaps_or_duplicates(ws: Workspace, tmp_path: Path):
    folders = [write_files(tmp_path / f"src{i}", {"f.bin": os.urandom(64)}) for i in range(6)]
    errors: list[BaseException] = []

    def one(path: Path) -> None:
        try:
            add(ws, path, name="shared")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(path,)) for path in folders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(v.version for v in loopml.data.log("shared")) == [1, 2, 3, 4, 5, 6]


def test_a_run_records_the_versions_it_read(ws: Workspace, folder: Path):
    add(ws, folder, name="scans")
    with loopml.start_run() as run:
        pinned = run.log_input("scans@latest", context="training")
        loopml.log_input(pinned)  # idempotent

    assert pinned.ref == "scans@v1"
    assert loopml.data.used_by("scans@v1") == [(run.id, run.info().name, "FINISHED", "training")]
    assert [v.ref for v in versions.inputs_of(ws, run.id)] == ["scans@v1"]


def test_log_input_refuses_what_is_not_a_dataset(ws: Workspace):
    with loopml.start_run() as run, pytest.raises(InvalidInput, match="dataset version"):
        run.log_input(42)  # type: ignore[arg-type]


def test_checkout_restores_a_deleted_folder_byte_for_byte(ws: Workspace, folder: Path):
    original = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    add(ws, folder, name="scans")
    for path in folder.rglob("*"):
        if path.is_file():
            path.unlink()

    result = loopml.data.checkout("scans")

    assert result.path == folder and result.written == 30
    restored = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert restored == original
    assert all(s.changes.clean for s in loopml.data.status())


def test_checkout_refuses_to_lose_local_edits_unless_forced(ws: Workspace, folder: Path):
    add(ws, folder, name="scans")
    edited = folder / "class0" / "img1.bin"
    edited.write_bytes(b"my unsaved work")
    (folder / "extra.txt").write_text("mine")

    with pytest.raises(InvalidInput, match="--force"):
        loopml.data.checkout("scans@v1")
    assert edited.read_bytes() == b"my unsaved work"

    result = loopml.data.checkout("scans@v1", force=True)
    assert (result.written, result.removed) == (1, 1)
    assert not (folder / "extra.txt").exists()


def test_checkout_of_an_older_version_to_another_folder(ws: Workspace, folder: Path, tmp_path):
    add(ws, folder, name="scans")
    (folder / "class2" / "img0.bin").unlink()
    add(ws, folder, name="scans")

    result = loopml.data.checkout("scans@v1", to=tmp_path / "old")

    assert (tmp_path / "old" / "class2" / "img0.bin").is_file()
    assert result.written == 30


@pytest.mark.parametrize("link", ["hardlink", "symlink"])
def test_linked_checkouts_are_read_only_so_edits_cannot_corrupt_the_store(
    ws: Workspace, folder: Path, link: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(links, "_writes_read_only_files", lambda: False)  # a non-root user
    configure_links(ws, f"{link},copy")
    version, _ = add(ws, folder, name="scans")
    target = folder / "class0" / "img0.bin"
    target.unlink()
    loopml.data.checkout("scans")

    if link == "hardlink":
        assert target.stat().st_nlink == 2
    else:
        assert target.is_symlink()
    assert target.stat().st_mode & 0o222 == 0  # nobody but root may write through it
    for digest in version.manifest().digests():
        ws.blobs.verify(digest)


def test_root_gets_copies_instead_of_links_it_could_write_through(
    ws: Workspace, folder: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setattr(links, "_writes_read_only_files", lambda: True)
    configure_links(ws, "hardlink,symlink")
    add(ws, folder, name="scans")
    target = folder / "class0" / "img0.bin"
    target.unlink()

    loopml.data.checkout("scans")

    assert target.stat().st_nlink == 1 and not target.is_symlink()
    assert "running as root" in caplog.text


def test_copies_are_writable_and_independent_of_the_store(ws: Workspace, folder: Path):
    version, _ = add(ws, folder, name="scans")
    target = folder / "class0" / "img0.bin"
    target.unlink()
    loopml.data.checkout("scans")

    target.write_bytes(b"edited in place")  # a copy: the stored blob is untouched

    for digest in version.manifest().digests():
        ws.blobs.verify(digest)


def test_an_unknown_link_type_in_config_is_a_clear_error(ws: Workspace, folder: Path):
    add(ws, folder, name="scans")
    configure_links(ws, "teleport")
    with pytest.raises(InvalidInput, match="teleport"):
        loopml.data.checkout("scans", to=ws.root / "elsewhere")


def test_a_table_version_reads_into_pandas_and_has_a_profile(ws: Workspace):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.integers(18, 90, 500), "plan": rng.choice(["a", "b"], 500)})
    path = ws.root / "churn.csv"
    frame.to_csv(path, index=False)

    version = loopml.data.add(path)

    assert version.ref == "churn@v1"
    assert version.path.read_bytes() == path.read_bytes()
    assert not os.access(version.path, os.W_OK) or os.geteuid() == 0
    pd.testing.assert_frame_equal(version.to_pandas(), pd.read_csv(path))
    profile = version.profile()["churn.csv"]
    assert profile["rows"] == 500
    assert profile["columns"]["plan"]["categories"].keys() == {"a", "b"}


def test_validate_flags_a_dropped_column_against_the_reference(ws: Workspace):
    from loopml.data.compare import check

    path = ws.root / "churn.csv"
    pd.DataFrame({"a": range(100), "b": range(100)}).to_csv(path, index=False)
    loopml.data.add(path)
    pd.DataFrame({"a": range(100)}).to_csv(path, index=False)
    loopml.data.add(path)

    (result,) = check(ws, "churn@v2", against="churn@v1")

    assert not result.report.ok
    assert [(i.column, i.check) for i in result.report.errors] == [("b", "missing_column")]


def test_gc_removes_only_what_nothing_references(ws: Workspace, folder: Path):
    add(ws, folder, name="scans")
    (folder / "class0" / "img0.bin").write_bytes(b"v2 content")
    add(ws, folder, name="scans")
    with loopml.start_run() as run:
        run.log_dict({"a": 1}, "config.json")
    orphan = ws.blobs.put_bytes(b"nobody points at me")

    dry = collect(ws)
    assert [d for d, _ in dry.unreferenced] == [orphan.digest]
    assert ws.blobs.exists(orphan.digest)  # a dry run removes nothing

    done = collect(ws, force=True)
    assert done.removed and not ws.blobs.exists(orphan.digest)
    assert collect(ws).unreferenced == []
    for ref in ("scans@v1", "scans@v2"):
        loopml.data.checkout(ref, to=ws.root / "check" / ref, force=True)
    assert loopml.download_artifacts(run.id, "config.json", ws.root / "dl").exists()


def test_gc_refuses_when_a_manifest_is_missing(ws: Workspace, folder: Path):
    version, _ = add(ws, folder, name="scans")
    orphan = ws.blobs.put_bytes(b"orphan")
    storage = ws.blobs.storage
    assert isinstance(storage, LocalStorage)
    storage.path_of(version.manifest_digest).unlink()

    with pytest.raises(NotFound, match="loopml data pull"):
        collect(ws, force=True)
    assert ws.blobs.exists(orphan.digest)


def test_push_and_pull_move_only_missing_blobs_through_a_file_remote(
    ws: Workspace, folder: Path, tmp_path: Path
):
    version, _ = add(ws, folder, name="scans")
    remotes.add_remote(ws, "origin", (tmp_path / "remote").as_uri())

    first = remotes.push(ws)
    assert first.copied == 31 and remotes.push(ws).copied == 0  # 30 files + manifest

    blobs = ws.blobs.storage
    assert isinstance(blobs, LocalStorage)
    for digest in list(ws.blobs.list()):
        blobs.path_of(digest).unlink()
    pulled = remotes.pull(ws, refs=["scans@v1"])
    assert pulled.copied == 31
    remote = ContentStore(LocalStorage(tmp_path / "remote"))
    for digest in version.manifest().digests():
        remote.verify(digest)
        ws.blobs.verify(digest)


def test_remote_names_and_defaults(ws: Workspace, tmp_path: Path):
    with pytest.raises(NotFound, match="remote add"):
        remotes.push(ws)
    remotes.add_remote(ws, "a", str(tmp_path / "a"))
    remotes.add_remote(ws, "b", str(tmp_path / "b"), default=True)
    assert [(r.name, r.default) for r in remotes.list_remotes(ws)] == [("a", False), ("b", True)]
    with pytest.raises(NotFound, match="remotes: a, b"):
        remotes.get_remote(ws, "c")
    remotes.remove_remote(ws, "b")
    with pytest.raises(InvalidInput, match="no default remote"):
        remotes.get_remote(ws, None)
    assert remotes.get_remote(ws, "a").url == str(tmp_path / "a")


def test_a_file_changed_while_it_is_added_registers_nothing(
    ws: Workspace, folder: Path, monkeypatch: pytest.MonkeyPatch
):
    victim = folder / "class0" / "img0.bin"
    real = ContentStore.ingest_file

    def ingest_then_write(self: ContentStore, path: Path, *, durable: bool = True):  # type: ignore[no-untyped-def]
        blob = real(self, path, durable=durable)
        if Path(path) == victim:
            with victim.open("ab") as f:  # the writer appends after the bytes were read
                f.write(b"more")
        return blob

    monkeypatch.setattr(ContentStore, "ingest_file", ingest_then_write)
    with pytest.raises(InvalidInput, match="changed while it was being added"):
        add(ws, folder, name="scans")
    with pytest.raises(NotFound):
        loopml.data.get("scans")
    for digest in ws.blobs.list():  # nothing is stored under a wrong digest
        ws.blobs.verify(digest)


def test_the_stat_cache_spares_unchanged_files_from_rehashing(
    ws: Workspace, folder: Path, monkeypatch: pytest.MonkeyPatch
):
    time.sleep(0.05)  # the files' last change is past the racy window when they are hashed
    add(ws, folder, name="scans")
    (folder / "class2" / "img9.bin").write_bytes(b"changed")
    read: list[Path] = []
    real = ContentStore.ingest_file

    def counting(self: ContentStore, path: Path, *, durable: bool = True):  # type: ignore[no-untyped-def]
        read.append(Path(path))
        return real(self, path, durable=durable)

    monkeypatch.setattr(ContentStore, "ingest_file", counting)
    add(ws, folder, name="scans")

    assert read == [folder / "class2" / "img9.bin"]


def test_adding_the_workspace_itself_or_its_store_is_refused(ws: Workspace):
    with pytest.raises(InvalidInput, match="workspace"):
        add(ws, ws.root, name="everything")
    with pytest.raises(InvalidInput, match="inside"):
        add(ws, ws.settings.dir / "blobs", name="blobs")


def test_digests_in_the_manifest_match_the_files(ws: Workspace, folder: Path):
    version, _ = add(ws, folder, name="scans")
    for entry in version.manifest().files:
        assert digest_file(folder / entry.path) == entry.digest
        assert entry.mode == 0o644


def test_push_and_pull_through_an_s3_remote(
    sqlite_ws: Workspace, tmp_path: Path, s3_options: dict[str, object]
):
    ws = sqlite_ws
    folder = write_files(ws.root / "data", {f"f{i}.bin": os.urandom(300) for i in range(12)})
    version, _ = add(ws, folder, name="scans")
    remotes.add_remote(ws, "s3", "s3://loopml-test/datasets")
    from loopml import config

    config.set_table(
        ws.root,
        "remotes.s3",
        {"url": "s3://loopml-test/datasets", "default": True, "options": dict(s3_options)},
    )

    assert remotes.push(ws).copied == 13
    assert remotes.push(ws).copied == 0
    storage = ws.blobs.storage
    assert isinstance(storage, LocalStorage)
    for digest in list(ws.blobs.list()):
        storage.path_of(digest).unlink()
    assert remotes.pull(ws).copied == 13
    loopml.data.checkout("scans", to=tmp_path / "back")
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == sorted(
        p.name for p in folder.iterdir()
    )
    for digest in version.manifest().digests():
        ws.blobs.verify(digest)


def test_checkout_with_missing_blobs_touches_nothing_and_says_to_pull(ws: Workspace, folder: Path):
    version, _ = add(ws, folder, name="scans")
    storage = ws.blobs.storage
    assert isinstance(storage, LocalStorage)
    storage.path_of(version.manifest().files[0].digest).unlink()
    (folder / "mine.txt").write_text("keep")
    (folder / "class0" / "img0.bin").unlink()

    with pytest.raises(NotFound, match="loopml data pull scans@v1"):
        loopml.data.checkout("scans@v1", force=True)
    assert (folder / "mine.txt").read_text() == "keep"


def test_forced_checkout_removes_a_users_symlink_not_the_file_it_points_at(
    ws: Workspace, tmp_path: Path
):
    folder = write_files(ws.root / "d", {"train.csv": b"train rows\n"})
    add(ws, folder, name="ds")
    (folder / "latest.csv").symlink_to("train.csv")

    result = loopml.data.checkout("ds@v1", force=True)

    assert result.removed == 1 and not (folder / "latest.csv").is_symlink()
    assert (folder / "train.csv").read_bytes() == b"train rows\n"
    (folder / "gone.csv").symlink_to(tmp_path / "nowhere")  # a broken link is a change
    (status,) = [s for s in loopml.data.status() if s.tracked.dataset == "ds"]
    assert status.changes.added == ["gone.csv"]


def test_symlinked_checkouts_switch_between_versions(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(links, "_writes_read_only_files", lambda: False)
    configure_links(ws, "symlink,copy")
    folder = write_files(ws.root / "d", {"a.txt": b"cat", "b.txt": b"same"})
    add(ws, folder, name="ds")
    (folder / "a.txt").write_bytes(b"dog")
    add(ws, folder, name="ds")

    loopml.data.checkout("ds@v1")
    assert (folder / "a.txt").is_symlink() and (folder / "a.txt").read_bytes() == b"cat"
    loopml.data.checkout("ds@v2")
    assert (folder / "a.txt").read_bytes() == b"dog"


def test_unsaved_edits_to_a_file_version_under_a_new_name_are_never_overwritten(ws: Workspace):
    (ws.root / "jan.csv").write_text("jan data\n")
    (ws.root / "feb.csv").write_text("feb data\n")
    loopml.data.add(ws.root / "jan.csv", "sales")
    loopml.data.add(ws.root / "feb.csv", "sales")
    (ws.root / "feb.csv").write_text("feb data\nprecious unsaved edit\n")

    with pytest.raises(InvalidInput, match="--force"):
        loopml.data.checkout("sales@v1", to=ws.root / "feb.csv")
    assert "precious" in (ws.root / "feb.csv").read_text()


@pytest.mark.parametrize("where", [".loopml/blobs", ".loopml", ".."])
def test_checkout_never_targets_the_workspaces_own_store(ws: Workspace, folder: Path, where: str):
    add(ws, folder, name="scans")
    with pytest.raises(InvalidInput, match="workspace's own"):
        loopml.data.checkout("scans", to=ws.root / where, force=True)
    assert loopml.data.get("scans").manifest().files  # every blob still there


def test_validate_pairs_a_table_that_only_changed_its_name(ws: Workspace):
    from loopml.data.compare import check

    frame = pd.DataFrame({"a": range(50), "b": ["x", "y"] * 25})
    frame.to_csv(ws.root / "jan.csv", index=False)
    frame.to_csv(ws.root / "feb.csv", index=False)
    loopml.data.add(ws.root / "jan.csv", "sales")
    loopml.data.add(ws.root / "feb.csv", "sales")

    (result,) = check(ws, "sales@v2", against="sales@v1")
    assert result.path == "feb.csv" and result.report.ok


def test_remote_commands_keep_what_the_user_wrote_in_config_toml(ws: Workspace, tmp_path: Path):
    config_file = ws.settings.dir / "config.toml"
    config_file.write_text(
        config_file.read_text()
        + '# our team settings\nowner = "ml-infra"\n[data]\nlink = "reflink,copy"  # INC-1234\n'
        '[[alerts]]\nchannel = "#ml"\n'
    )
    before = config_file.read_text()
    remotes.add_remote(ws, "origin", str(tmp_path / "r1"))
    remotes.add_remote(ws, "backup", str(tmp_path / "r2"), default=True)
    remotes.remove_remote(ws, "origin")

    text = config_file.read_text()
    assert text.startswith(before.rstrip())
    assert [(r.name, r.default) for r in remotes.list_remotes(ws)] == [("backup", True)]
    assert "origin" not in text
