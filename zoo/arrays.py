"""Reading ``.npy`` files a user hands the zoo: the header is checked against the data before anything is read."""
from __future__ import annotations

import os
from pathlib import Path
from tokenize import TokenError

import numpy as np

from zoo.errors import InputError

NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """The numeric array in the ``.npy`` file ``path``, C-ordered and in native byte order.

    Refused with an :class:`InputError` naming the file: anything but a ``.npy``
    file of version 1 or 2, non-numeric dtypes (objects, strings, records), a
    header whose shape and dtype do not match the data that follows (a truncated
    file, a lying header, trailing bytes), 0-d arrays, NaN or infinite values.
    """
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            shape, fortran_order, dtype = _read_header(stream, path)
            data_bytes = os.fstat(stream.fileno()).st_size - stream.tell()
            expected_bytes = dtype.itemsize * _count(shape)
            if data_bytes != expected_bytes:
                raise InputError(
                    f"{path}: its header says {'×'.join(map(str, shape)) or 'a scalar'} {dtype} "
                    f"({expected_bytes:,} bytes of data), but the file holds {data_bytes:,} bytes after the "
                    "header (truncated or altered?); save the array again with numpy.save"
                )
            array = np.fromfile(stream, dtype=dtype, count=_count(shape))
    except OSError as exc:
        raise InputError(f"could not read {path}: {exc.strerror or exc}") from None
    if not shape:
        raise InputError(f"{path}: expected an array of at least one dimension, got a 0-d array (one number)")
    array = array.reshape(shape, order="F" if fortran_order else "C")
    array = np.ascontiguousarray(array, dtype=dtype.newbyteorder("="))
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError(f"{path}: expected finite values, got NaN or infinite values")
    return array


def _read_header(stream, path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from a ``.npy`` header; the stream is left at the data."""
    from numpy.lib import format as npy

    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    try:
        version = npy.read_magic(stream)
        read_header = readers.get(version)
        if read_header is not None:
            shape, fortran_order, dtype = read_header(stream)
    except (ValueError, TypeError, SyntaxError, EOFError, TokenError) as exc:  # numpy's, for a malformed header
        raise InputError(f"{path}: expected a .npy file (numpy.save), could not read its header: {exc}") from None
    if read_header is None:
        raise InputError(f"{path}: expected a .npy file of format version 1.0 or 2.0, got version {version}")
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise InputError(f"{path}: expected an array of numbers (bool, int or float), got dtype {dtype}")
    return shape, fortran_order, dtype


def _count(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count
