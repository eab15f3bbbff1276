"""Authentication: OIDC JWTs (oidc.py) and static API keys (api_keys.py), checked app-wide by
guard.py. `create_app` calls `guard.init_app(app)`; see guard.py for the rules."""
