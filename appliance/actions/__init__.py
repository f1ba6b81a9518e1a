"""What the executor does to the world beyond the report: typed actions, the appliance's own
firewall, approvals before anything destructive, and undo."""
