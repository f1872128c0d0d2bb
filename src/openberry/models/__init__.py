"""Language-model backends behind one `Policy` interface.

Only the light pieces are re-exported here (the interface and the pure-Python fake); import the
Hugging Face backend from `openberry.models.hf` (it loads torch and transformers when used), and
`ModelSpec`, which builds a backend from the ``berry`` model options, from `openberry.models.spec`.
"""

from openberry.models.base import ModelError, Policy, RewardModel, SamplingParams
from openberry.models.fake import FakePolicy

__all__ = ["FakePolicy", "ModelError", "Policy", "RewardModel", "SamplingParams"]
