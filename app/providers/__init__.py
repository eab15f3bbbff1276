"""Providers: catalog (data), Provider (one per configured provider, built at start-up), routing, model lists, quirks."""
