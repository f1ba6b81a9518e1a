"""The planner: a command becomes a typed plan over the registered agent types."""
