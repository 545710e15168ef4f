"""How the roles run: the relay, the reconciler, role supervision, `up`, the embedded servers, the broker."""
