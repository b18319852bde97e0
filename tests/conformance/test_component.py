#!/usr/bin/python3
"""test_component.py — the conformance scenarios through tallyd's XEP-0114
component on a real ejabberd 23.01 (driver_component.py); run by
tests/run.sh (an end-to-end test: skipped with TALLY_SKIP_E2E=1), or
`make conformance`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver_component  # noqa: E402
import runner  # noqa: E402

if __name__ == "__main__":
    runner.main(driver_component.Driver)
