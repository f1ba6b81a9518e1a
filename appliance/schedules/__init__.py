"""Persistent schedules: when a command runs again (cadence), where schedules are kept (store),
and the service that fires them (scheduler)."""
