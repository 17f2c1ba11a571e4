"""Test set-up shared by every test: Keras 2 for TFRS and the repo on sys.path."""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
