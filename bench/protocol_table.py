"""The table of a protocol folder (protocol.table), recorded in BENCHMARKS.md with --write.

    python bench/protocol_table.py OUT_DIR [--write TITLE] [--rounds 5]

protocol.py writes OUT_DIR/table.md itself; this remakes it on another machine (the latency column
is measured where the table is made) or for a folder holding several protocols' runs.
"""
import argparse

from common import machine, record

import protocol  # noqa: E402
from data_io import DataError, cli_error  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", metavar="OUT_DIR")
    ap.add_argument("--rounds", type=int, default=5, metavar="N", help="interleaved latency rounds (default: 5)")
    ap.add_argument("--write", metavar="TITLE", help="also record the table in BENCHMARKS.md under this title")
    args = ap.parse_args()
    try:
        text = protocol.table(args.root, args.rounds)
    except DataError as e:
        cli_error(str(e))
    print(text)
    if args.write:
        record(args.write, text, "slimming", where=machine())


if __name__ == "__main__":
    main()
