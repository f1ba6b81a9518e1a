"""HTTP surfaces of the appliance (the control API now; the admin panel builds on it)."""
