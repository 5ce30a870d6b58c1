"""The one place that talks to the Hugging Face Hub: `HfApi` with the user's endpoint (``HF_ENDPOINT``)
and token (``HF_TOKEN`` or the saved login), and every Hub failure turned into one sentence."""
from __future__ import annotations

import os
from contextlib import contextmanager

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from ..errors import HFSynthError
from ..llm.config import without_credentials


def hub_api(token: str | None = None) -> HfApi:
    # HF_ENDPOINT is read now, not when huggingface_hub was imported, so it can point at a mirror
    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)


def _is_network_error(exc: BaseException) -> bool:
    # huggingface_hub's HTTP stack changes between releases (requests, httpx, httpx2); their
    # transport errors share these class names
    return any(cls.__name__ in ("TransportError", "ConnectionError", "RequestError", "LocalEntryNotFoundError")
               for cls in type(exc).__mro__)


@contextmanager
def plain_errors(doing: str, later: str = ""):
    """Re-raise a Hub failure while `doing` something as an `HFSynthError` of one sentence (plus
    `later`, what the user can do instead). Tokens never appear: only status codes and class names."""
    endpoint = without_credentials(hub_api().endpoint)  # an HF_ENDPOINT may carry user:password@
    try:
        yield
    except OfflineModeIsEnabled:
        raise HFSynthError(f"Could not {doing}: HF_HUB_OFFLINE is set. {later}".strip()) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        reason = {401: "the Hub rejected the token (401): set HF_TOKEN or run `hf auth login`",
                  403: "the token may not write there (403): use a token with write access",
                  404: "the Hub has no such repository (404)"}.get(status, f"the Hub answered HTTP {status}")
        raise HFSynthError(f"Could not {doing}: {reason}. {later}".strip()) from None
    except Exception as exc:
        if not _is_network_error(exc):
            raise
        raise HFSynthError(f"Could not {doing}: the Hugging Face Hub at {endpoint} cannot be reached "
                           f"({type(exc).__name__}). {later}".strip()) from None
