"""The Anthropic Messages upstream (``upstream.kind: anthropic``), one idea per module::

    dialect      the Dialect: parse, breakpoints on the way up, store and replay (JSON and SSE)
    transport    the upstream client's transport: API key, and accounting of every billed call
    accounting   the hermes_prompt_cache_* metrics, fed by the transport and by cache hits
    breakpoints  where cache_control breakpoints go (pure)
    pricing      the price table (pure)
    usage        a call's token usage and its bill (pure)

Lower modules never import higher ones: pricing <- usage <- accounting <- transport <- dialect.
"""

from hermes_sidecar.dialects.anthropic.accounting import PromptCacheAccounting, price_table_from_config
from hermes_sidecar.dialects.anthropic.dialect import AnthropicDialect, build_dialect, replay_events
from hermes_sidecar.dialects.anthropic.transport import MESSAGES, AnthropicTransport, read_api_key

__all__ = [
    "MESSAGES",
    "AnthropicDialect",
    "AnthropicTransport",
    "PromptCacheAccounting",
    "build_dialect",
    "price_table_from_config",
    "read_api_key",
    "replay_events",
]
