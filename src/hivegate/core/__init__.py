"""Pure core: identities, JSON-RPC helpers and the ports (Protocols) the rest plugs into."""
