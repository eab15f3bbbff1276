"""Thin blueprints, one per endpoint group."""
