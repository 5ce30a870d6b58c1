"""hf_synth: better instruction-tuning data with multi-agent LLM methods, as `datasets` transforms."""
__version__ = "0.1.0"

from .errors import CacheError, ConfigError, EndpointError, HFSynthError, InputError  # noqa: E402
from .llm.config import LLM  # noqa: E402
from .runs.estimation import estimate  # noqa: E402
from .retry import retry_failed  # noqa: E402
from .transforms import CoEvolTransform, R2STransform, ReviewInstructTransform  # noqa: E402

__all__ = ["LLM", "CoEvolTransform", "ReviewInstructTransform", "R2STransform", "retry_failed", "estimate", "HFSynthError",
           "ConfigError", "EndpointError", "InputError", "CacheError", "__version__"]
