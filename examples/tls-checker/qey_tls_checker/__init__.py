"""An example qEY-0 extension: the ``tls_checker`` agent type (see docs/agents.md)."""
