"""Root of the reference deployment: one call, with the deployment's config and automation."""

from __future__ import annotations

from kappa_orch import build_kappa_definitions
from resources import CONFIG
from sensors import AUTOMATION

defs = build_kappa_definitions(CONFIG.specs, config=CONFIG, automation=AUTOMATION)
