"""zoo.download: https (plain http only to loopback), short reads, the digest computed on the way in."""
from __future__ import annotations

import hashlib

import pytest

from tests.zoo.test_cache import part_files, safetensors_bytes, sha, store_files
from zoo import cache, download
from zoo.errors import DownloadError, InputError
from zoo.registry import WeightFile


@pytest.mark.parametrize("host, loopback", [("localhost", True), ("127.0.0.1", True), ("127.8.0.1", True),
                                            ("::1", True), ("example.com", False), ("10.0.0.1", False),
                                            ("", False), (None, False)])
def test_is_loopback(host, loopback):
    assert download.is_loopback(host) is loopback


@pytest.mark.parametrize("url", ["https://example.com/w.safetensors", "http://127.0.0.1:8000/w", "http://localhost/w",
                                 "http://[::1]:9/w"])
def test_https_anywhere_and_plain_http_to_loopback_are_accepted(url):
    download.check_url(url)


@pytest.mark.parametrize("url", ["http://example.com/w", "http://10.0.0.1/w", "ftp://example.com/w", "file:///etc/hostname",
                                 "w.safetensors", "HTTP//example.com"])
def test_other_urls_are_refused_before_connecting(url, tmp_path):
    with pytest.raises(InputError, match="must be https"):
        download.download(url, tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_download_returns_the_sha256_of_the_bytes_written(server, tmp_path):
    data = b"pinned bytes" * 1000
    server.routes["/w"] = data
    digest = download.download(server.url("/w"), tmp_path / "w", progress=True)
    assert digest == hashlib.sha256(data).hexdigest() and (tmp_path / "w").read_bytes() == data


def test_dest_is_created_fresh_never_overwritten(server, tmp_path):
    server.routes["/w"] = b"x"
    (tmp_path / "w").write_bytes(b"already here")
    with pytest.raises(FileExistsError):
        download.download(server.url("/w"), tmp_path / "w")
    assert (tmp_path / "w").read_bytes() == b"already here"


def test_a_short_read_against_content_length_is_a_download_error(server, tmp_path):
    server.routes["/w"] = b"0123456789"
    server.mode = "short"
    with pytest.raises(DownloadError, match="cut short: expected 10 bytes, got 5"):
        download.download(server.url("/w"), tmp_path / "w")


def test_without_content_length_the_expected_size_counts(server, tmp_path):
    server.routes["/w"] = b"0123456789"
    server.mode = "short-no-length"
    with pytest.raises(DownloadError, match="cut short: expected 10 bytes, got 5"):
        download.download(server.url("/w"), tmp_path / "w", expected_size=10)
    assert download.download(server.url("/w"), tmp_path / "v") == hashlib.sha256(b"01234").hexdigest()


def test_download_verified_short_read_then_retry(tmp_path, isolated_zoo_home, server):
    data = safetensors_bytes(tmp_path)
    server.routes["/w.safetensors"] = data
    wf = WeightFile("w.safetensors", sha(data), server.url("/w.safetensors"))

    server.mode = "short"
    with pytest.raises(DownloadError) as err:
        cache.fetch(wf)
    assert f"expected {len(data)} bytes, got {len(data) // 2}" in str(err.value)
    assert store_files(isolated_zoo_home) == [] and part_files(isolated_zoo_home) == []

    # A download killed half-way leaves a .part behind: the next try must not use it.
    stale = isolated_zoo_home / "tmp" / f"{sha(data)}.99999.dead.part"
    stale.write_bytes(data[:10])
    server.mode = "good"
    path = cache.fetch(wf, progress=True)
    assert path.read_bytes() == data and cache.sha256_file(path) == sha(data)
    assert part_files(isolated_zoo_home) == []


def test_http_error_and_plain_http_to_remote_host(server):
    wf = WeightFile("missing.safetensors", "b" * 64, server.url("/missing.safetensors"))
    with pytest.raises(DownloadError, match="404"):
        cache.fetch(wf)
    with pytest.raises(InputError, match="https"):
        cache.fetch(WeightFile("x.safetensors", "b" * 64, "http://example.com/x.safetensors"))
    with pytest.raises(InputError, match="scheme"):
        cache.fetch(WeightFile("x.safetensors", "b" * 64, "s3://bucket/x.safetensors"))


def test_a_download_without_dns_says_the_network_is_unreachable(tmp_path, monkeypatch):
    import socket

    def no_dns(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(DownloadError, match=r"the network is unreachable \(weights.example.org cannot be resolved"
                                            r".*zoo fetch ID.*ZOO_OFFLINE=1"):
        download.download("https://weights.example.org/w.safetensors", tmp_path / "w")
