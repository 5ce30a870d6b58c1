"""Publishing hf_synth outputs to the Hugging Face Hub with a generated dataset card."""
from .card import build_card
from .publish import publish, write_repo

__all__ = ["build_card", "publish", "write_repo"]
