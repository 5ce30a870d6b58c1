"""hf_synth: better instruction-tuning data with multi-agent LLM methods, as `datasets` transforms."""
__version__ = "0.1.0"

from .errors import EndpointError, HFSynthError, InputError  # noqa: E402
from .llm.config import LLM  # noqa: E402
from .transforms import CoEvolTransform, ReviewInstructTransform  # noqa: E402

__all__ = ["LLM", "CoEvolTransform", "ReviewInstructTransform", "HFSynthError", "EndpointError", "InputError", "__version__"]
