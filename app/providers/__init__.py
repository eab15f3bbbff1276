"""Providers: catalog (data), Provider (behaviour), routing, transport, quirks."""
