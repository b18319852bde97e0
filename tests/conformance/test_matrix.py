#!/usr/bin/python3
"""test_matrix.py — the conformance scenarios through tallyd's Matrix
Application Service, the homeserver double standing in for a homeserver
(driver_matrix.py); run by tests/run.sh (an end-to-end test: skipped with
TALLY_SKIP_E2E=1), or `make conformance`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver_matrix  # noqa: E402
import runner  # noqa: E402

if __name__ == "__main__":
    runner.main(driver_matrix.Driver)
