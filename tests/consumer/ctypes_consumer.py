"""Loads the shared libsimdnorm with ctypes, as a Python program without bindings would, and normalises a tiny tensor.

Usage: ctypes_consumer.py <path to libsimdnorm.so.N> <expected version>
"""
import ctypes
import math
import sys


class Shape(ctypes.Structure):
    # simdnorm_shape; the layout enum is an int in the C ABI.
    _fields_ = [("n", ctypes.c_size_t), ("c", ctypes.c_size_t), ("spatial", ctypes.c_size_t), ("layout", ctypes.c_int)]


def main(path, expected_version):
    lib = ctypes.CDLL(path)
    floats = ctypes.POINTER(ctypes.c_float)
    lib.simdnorm_version.restype = ctypes.c_char_p
    lib.simdnorm_last_error.restype = ctypes.c_char_p
    lib.simdnorm_forward_training.restype = ctypes.c_int
    lib.simdnorm_forward_training.argtypes = [ctypes.POINTER(Shape), floats, floats, floats, floats, ctypes.c_float,
                                              floats, floats, floats, floats, ctypes.c_float, ctypes.c_uint]

    version = lib.simdnorm_version().decode()
    if version != expected_version:
        sys.exit(f"simdnorm_version() is {version!r}, expected {expected_version!r}")

    # NCHW, n=2, c=2, spatial=2: channel 0 holds +-1 (mean 0, variance 1), channel 1 holds 3 and 5 (mean 4,
    # variance 1), so the statistics are exact and y = (x - mean) / sqrt(1 + eps).
    shape = Shape(2, 2, 2, 0)
    values = [1.0, -1.0, 3.0, 5.0, -1.0, 1.0, 5.0, 3.0]
    x = (ctypes.c_float * 8)(*values)
    y = (ctypes.c_float * 8)()
    mean = (ctypes.c_float * 2)()
    invstd = (ctypes.c_float * 2)()
    eps = 1e-5
    status = lib.simdnorm_forward_training(ctypes.byref(shape), x, y, None, None, eps, mean, invstd, None, None, 0.1, 0)
    if status != 0:
        sys.exit(f"simdnorm_forward_training returned {status}: {lib.simdnorm_last_error().decode()}")
    if list(mean) != [0.0, 4.0]:
        sys.exit(f"batch_mean is {list(mean)}, expected [0.0, 4.0]")
    for i, (xi, yi) in enumerate(zip(values, y)):
        want = (xi - mean[(i // 2) % 2]) / math.sqrt(1.0 + eps)
        if abs(yi - want) > 1e-6:
            sys.exit(f"y[{i}] is {yi}, expected {want}")
    print(f"simdnorm {version} through ctypes ({path}): ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
