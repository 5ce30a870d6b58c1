"""hf_synth: better instruction-tuning data with multi-agent LLM methods, as `datasets` transforms."""
__version__ = "0.1.0"

from .errors import EndpointError, HFSynthError, InputError  # noqa: E402
from .llm.config import LLM  # noqa: E402
from .transforms import CoEvolTransform, R2STransform, ReviewInstructTransform  # noqa: E402

__all__ = ["LLM", "CoEvolTransform", "ReviewInstructTransform", "R2STransform", "HFSynthError", "EndpointError", "InputError", "__version__"]
