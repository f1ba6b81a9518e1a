"""The on-device router: free-text command → agent type, by sentence embeddings in onnxruntime."""

from appliance.router.router import Candidate, RouteDecision, Router, RouterSettings

__all__ = ["Candidate", "RouteDecision", "Router", "RouterSettings"]
