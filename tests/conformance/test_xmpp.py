#!/usr/bin/python3
"""test_xmpp.py — the conformance scenarios through Prosody's mod_tally on a
real Prosody 0.12 (driver_xmpp.py); run by tests/run.sh (an end-to-end
test: skipped with TALLY_SKIP_E2E=1), or `make conformance`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver_xmpp  # noqa: E402
import runner  # noqa: E402

if __name__ == "__main__":
    runner.main(driver_xmpp.Driver)
