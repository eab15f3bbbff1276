"""Providers: catalog (data), Provider (one per catalog provider and per deployment of GATEWAY_CONFIG,
built at start-up), routing (provider/model, deployments, aliases, allow/deny), model lists, quirks."""
