"""Stand-in for the get-pip.py bootstrap that ansible-test downloads.

ansible-test creates its sanity venvs without pip and fetches get-pip.py from a
host outside the package registries to fill them. This does the same job: the
interpreter's ensurepip gives a first pip, which installs the pip wheels saved
beside this file (scripts/sanity.sh downloads them from the package index),
and that pip installs whatever else ansible-test asked for.
"""
import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}
WHEELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wheels")

ensurepip.bootstrap(upgrade=True)
arguments = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
pip_pins = [arg for arg in arguments if arg.startswith("pip==")]
others = [arg for arg in arguments if not arg.startswith("pip==")]
pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
status = subprocess.call(pip + ["--no-index", "--find-links", WHEELS] + pip_pins) if pip_pins else 0
if status == 0 and [arg for arg in others if not arg.startswith("-")]:
    status = subprocess.call(pip + others)
sys.exit(status)
