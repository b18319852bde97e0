#!/usr/bin/python3
"""test_frame.py — the conformance scenarios through the engine itself
(driver_frame.py); run by tests/run.sh, or `make conformance`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver_frame  # noqa: E402
import runner  # noqa: E402

if __name__ == "__main__":
    runner.main(driver_frame.Driver)
