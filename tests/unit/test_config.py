"""`loopml.config`: how a workspace is found and what it is configured to use."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml import config
from loopml.errors import InvalidInput, WorkspaceNotFound


def make_workspace(root: Path) -> Path:
    """Return `root` after giving it an (empty) `.loopml/` folder."""
    (root / ".loopml").mkdir(parents=True)
    return root


def test_find_root_walks_up_from_a_subfolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = make_workspace(tmp_path / "project")
    deep = root / "src" / "models"
    deep.mkdir(parents=True)

    assert config.find_root(deep) == root.resolve()
    assert config.find_root(root) == root.resolve()
    monkeypatch.chdir(deep)
    assert config.find_root() == root.resolve()
    assert config.require_root() == root.resolve()


def test_find_root_without_a_workspace_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)

    assert config.find_root() is None
    assert config.find_root(tmp_path) is None


def test_loopml_home_names_the_workspace_folder_or_its_dot_loopml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    home = make_workspace(tmp_path / "home")
    elsewhere = make_workspace(tmp_path / "elsewhere")
    monkeypatch.chdir(elsewhere)

    monkeypatch.setenv("LOOPML_HOME", str(home))
    # LOOPML_HOME wins over the workspace around the current folder.
    assert config.find_root() == home.resolve()

    monkeypatch.setenv("LOOPML_HOME", str(home / ".loopml"))
    assert config.find_root() == home.resolve()
    assert config.require_root() == home.resolve()


def test_require_root_says_to_run_loopml_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)

    with pytest.raises(WorkspaceNotFound, match=r"`loopml init`") as raised:
        config.require_root()
    assert str(tmp_path.resolve()) in str(raised.value)
    assert "LOOPML_HOME" in str(raised.value)


def test_loopml_home_without_a_workspace_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    make_workspace(tmp_path / "real")
    monkeypatch.chdir(tmp_path / "real")
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "missing"))

    with pytest.raises(WorkspaceNotFound, match=r"loopml init"):
        config.require_root()


def test_default_settings_keep_everything_inside_dot_loopml(tmp_path: Path):
    root = make_workspace(tmp_path)

    settings = config.load_settings(root)

    assert settings.root == root
    assert settings.dir == root / ".loopml"
    assert settings.journal_dir == root / ".loopml" / "journal"
    assert settings.store_uri == f"sqlite:///{root / '.loopml' / 'loopml.db'}"
    assert settings.blob_uri == str(root / ".loopml" / "blobs")


def test_config_toml_overrides_the_defaults(tmp_path: Path):
    root = make_workspace(tmp_path)
    (root / ".loopml" / "config.toml").write_text(
        '[store]\nuri = "postgresql+psycopg://me@db:5432/loopml"\n'
        '[blobs]\nuri = "s3://bucket/prefix"\n',
        encoding="utf-8",
    )

    settings = config.load_settings(root)

    assert settings.store_uri == "postgresql+psycopg://me@db:5432/loopml"
    assert settings.blob_uri == "s3://bucket/prefix"


def test_config_toml_may_set_only_one_location(tmp_path: Path):
    root = make_workspace(tmp_path)
    (root / ".loopml" / "config.toml").write_text(
        '[blobs]\nuri = "/mnt/shared/blobs"\n', encoding="utf-8"
    )

    settings = config.load_settings(root)

    assert settings.store_uri == f"sqlite:///{root / '.loopml' / 'loopml.db'}"
    assert settings.blob_uri == "/mnt/shared/blobs"


def test_environment_overrides_config_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = make_workspace(tmp_path)
    (root / ".loopml" / "config.toml").write_text(
        '[store]\nuri = "sqlite:///from-file.db"\n[blobs]\nuri = "/from/file"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("LOOPML_STORE_URI", "postgresql+psycopg://env@host/db")
    monkeypatch.setenv("LOOPML_BLOB_URI", "s3://from-env/blobs")

    settings = config.load_settings(root)

    assert settings.store_uri == "postgresql+psycopg://env@host/db"
    assert settings.blob_uri == "s3://from-env/blobs"


def test_empty_environment_variables_do_not_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    root = make_workspace(tmp_path)
    monkeypatch.setenv("LOOPML_STORE_URI", "")
    monkeypatch.setenv("LOOPML_BLOB_URI", "")

    settings = config.load_settings(root)

    assert settings.store_uri == f"sqlite:///{root / '.loopml' / 'loopml.db'}"
    assert settings.blob_uri == str(root / ".loopml" / "blobs")


@pytest.mark.parametrize(
    ("text", "problem"),
    [("[store\nuri = 'x'\n", "not valid TOML"), ("[store]\nuri = 5\n", "uri must be a quoted")],
    ids=["malformed", "non-string-uri"],
)
def test_a_bad_config_toml_is_refused_naming_the_file(tmp_path: Path, text: str, problem: str):
    root = make_workspace(tmp_path)
    path = root / ".loopml" / "config.toml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(InvalidInput, match=problem) as raised:
        config.load_settings(root)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("store_uri", "blob_uri"),
    [
        ("sqlite:///C:\\Users\\me\\loopml.db", "\\\\server\\share\\blobs"),
        ('postgresql+psycopg://u:p"w@host/db', 's3://bucket/"quoted" prefix'),
        ('sqlite:////tmp/a\\"b.db', "/tmp/ends with backslash\\"),
    ],
)
def test_write_config_round_trips_quotes_and_backslashes(
    tmp_path: Path, store_uri: str, blob_uri: str
):
    root = make_workspace(tmp_path)

    path = config.write_config(root, store_uri=store_uri, blob_uri=blob_uri)

    assert path == root / ".loopml" / "config.toml"
    settings = config.load_settings(root)
    assert settings.store_uri == store_uri
    assert settings.blob_uri == blob_uri


def test_write_config_without_locations_keeps_the_defaults(tmp_path: Path):
    root = make_workspace(tmp_path)
    (root / ".loopml" / "config.toml").write_text(
        '[store]\nuri = "sqlite:///old.db"\n', encoding="utf-8"
    )

    path = config.write_config(root, store_uri=None, blob_uri=None)

    assert "[store]" not in path.read_text(encoding="utf-8")
    assert config.load_settings(root) == config.Settings(
        root=root,
        store_uri=f"sqlite:///{root / '.loopml' / 'loopml.db'}",
        blob_uri=str(root / ".loopml" / "blobs"),
    )


def test_an_explicit_path_wins_over_loopml_home(tmp_path, monkeypatch):
    from loopml.config import find_root, require_root

    (tmp_path / "a" / ".loopml").mkdir(parents=True)
    (tmp_path / "b" / ".loopml").mkdir(parents=True)
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "b"))
    assert find_root(tmp_path / "a") == (tmp_path / "a").resolve()
    assert find_root() == (tmp_path / "b").resolve()
    monkeypatch.setenv("LOOPML_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(WorkspaceNotFound, match=r"LOOPML_HOME points at .*nowhere"):
        require_root()
