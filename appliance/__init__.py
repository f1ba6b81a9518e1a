"""qEY-0 appliance: a concurrent multi-agent runtime for a network-security device."""

__version__ = "0.1.0"
