"""The reference payments platform: one YAML spec per pipeline with its SQL beside it."""

from __future__ import annotations

from pathlib import Path

SPECS_DIR = Path(__file__).resolve().parent
