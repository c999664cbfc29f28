"""Xero OAuth 2.0 for XPM: the connection settings, the code flow with PKCE, and the token store."""
