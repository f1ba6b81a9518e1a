"""The on-device router: free-text command → agent type, by sentence embeddings in onnxruntime."""

from appliance.router.placement import Placement, Plugin
from appliance.router.router import Candidate, RouteDecision, Router, RouterSettings

__all__ = ["Candidate", "Placement", "Plugin", "RouteDecision", "Router", "RouterSettings"]
