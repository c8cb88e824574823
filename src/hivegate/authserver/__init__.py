"""The embedded OAuth 2.1 authorization server: clients log in here, users at their identity provider upstream."""
