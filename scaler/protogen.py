"""Generate the Python gRPC stubs from protos/externalscaler.proto.

Used by `make proto` and by the test that fails when the committed stubs drift
from the proto. The proto is mapped into the `scaler/_proto` import path so the
generated `_pb2_grpc` module imports its sibling as `scaler._proto...`.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = REPO_ROOT / "protos"
PROTO_FILE = "externalscaler.proto"
STUB_PACKAGE = "scaler/_proto"


def generate(out_root: Path) -> list[Path]:
    """Write the stubs under out_root/scaler/_proto and return their paths."""
    from grpc_tools import protoc  # build-time dependency only

    (out_root / STUB_PACKAGE).mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{STUB_PACKAGE}={PROTO_DIR}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"{PROTO_DIR / PROTO_FILE}",
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on " + str(PROTO_DIR / PROTO_FILE))
    stem = PROTO_FILE.removesuffix(".proto")
    base = out_root / STUB_PACKAGE
    return [base / f"{stem}_pb2.py", base / f"{stem}_pb2.pyi", base / f"{stem}_pb2_grpc.py"]


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT
    for path in generate(out):
        print(path)
