r"""The prompts the 5 Hz LM is trained on, rendered through the checkpoint's own chat template.

Every mode is a system message ``# Instruction\n{X}\n\n`` plus a user message (and, for the
audio-code phase, an assistant message holding the CoT). The strings follow the official
``acestep/llm_inference.py`` and ``acestep/constants.py``; the goldens in the conformance kit
pin them byte for byte.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.acestep.lm.plan import codes_to_string

LM_INSTRUCTION = "Generate audio semantic tokens based on the given conditions:"
UNDERSTAND_INSTRUCTION = "Understand the given musical conditions and describe the audio semantics accordingly:"
INSPIRED_INSTRUCTION = "Expand the user's input into a more detailed and specific musical description:"
REWRITE_INSTRUCTION = "Format the user's input into a more detailed and specific musical description:"
DEFAULT_NEGATIVE = "NO USER INPUT"
INSTRUMENTAL_LYRICS = "[Instrumental]"


def _raise(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


@dataclass(frozen=True)
class ChatTemplate:
    """A checkpoint's Jinja chat template, rendered the way ``apply_chat_template`` does."""

    source: str

    @classmethod
    def from_dir(cls, model_dir: Path) -> ChatTemplate:
        """Load ``chat_template.jinja``, or the ``chat_template`` of ``tokenizer_config.json``."""
        path = model_dir / "chat_template.jinja"
        if path.is_file():
            return cls(path.read_text(encoding="utf-8"))
        config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
        return cls(config["chat_template"])

    def render(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool) -> str:
        """Render chat messages to the prompt text."""
        return _compile(self.source).render(
            messages=list(messages), add_generation_prompt=add_generation_prompt, tools=None
        )


@functools.lru_cache(maxsize=8)
def _compile(source: str) -> jinja2.Template:
    """Compile a template once (as ``apply_chat_template`` does: trim and lstrip blocks)."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    env.filters["tojson"] = lambda value, **kw: json.dumps(value, ensure_ascii=False, **kw)
    return env.from_string(source)


def _system(instruction: str) -> dict[str, str]:
    return {"role": "system", "content": f"# Instruction\n{instruction}\n\n"}


def _user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


@dataclass(frozen=True)
class Prompts:
    """Builds every LM prompt for one checkpoint.

    Args:
        template: The checkpoint's chat template.
    """

    template: ChatTemplate

    def _gen(self, instruction: str, user: str) -> str:
        return self.template.render([_system(instruction), _user(user)], add_generation_prompt=True)

    def cot(self, caption: str, lyrics: str, negative: str | None = None) -> str:
        """Phase 1 (chain of thought): metadata for a given caption and lyrics.

        Args:
            caption: The caption.
            lyrics: The lyrics.
            negative: None for the conditional prompt; the negative prompt for the
                unconditional (CFG) one. The default negative drops the caption.
        """
        if negative is None:
            user = f"# Caption\n{caption}\n\n# Lyric\n{lyrics}\n"
        elif negative == DEFAULT_NEGATIVE:
            user = f"# Lyric\n{lyrics}\n"
        else:
            user = f"# Caption\n{negative}\n\n# Lyric\n{lyrics}\n"
        return self._gen(LM_INSTRUCTION, user)

    def codes(self, caption: str, lyrics: str, cot: str, negative: str | None = None) -> str:
        """Phase 2 (audio codes): the CoT is an assistant turn the model continues after.

        Args:
            caption: The caption.
            lyrics: The lyrics.
            cot: The CoT text from ``plan.format_cot`` (``<think>...</think>``).
            negative: None for the conditional prompt; the negative prompt for the
                unconditional one, which keeps the lyrics, empties the CoT and keeps the
                caption only for the default negative.
        """
        if negative is not None:
            cot = "<think>\n</think>"
            if negative != DEFAULT_NEGATIVE:
                caption = negative
        user = f"# Caption\n{caption}\n\n# Lyric\n{lyrics}\n"
        messages = [_system(LM_INSTRUCTION), _user(user), {"role": "assistant", "content": cot}]
        return self.template.render(messages, add_generation_prompt=False)

    def sample(self, query: str, instrumental: bool, negative: str | None = None) -> str:
        """Create-sample: expand one sentence into caption, metadata and lyrics."""
        if negative is not None:
            return self._gen(INSPIRED_INSTRUCTION, negative)
        query = query.strip() or DEFAULT_NEGATIVE
        return self._gen(INSPIRED_INSTRUCTION, f"{query}\n\ninstrumental: {'true' if instrumental else 'false'}")

    def format(self, caption: str, lyrics: str) -> str:
        """Format: rewrite a caption and lyrics into the detailed form (no trailing newline)."""
        return self._gen(REWRITE_INSTRUCTION, f"# Caption\n{caption}\n\n# Lyric\n{lyrics or INSTRUMENTAL_LYRICS}")

    def understand(self, codes: Sequence[int] | str) -> str:
        """Understand: describe audio given as codes (used to caption covers and uploads)."""
        text = codes if isinstance(codes, str) else codes_to_string(list(codes))
        return self._gen(UNDERSTAND_INSTRUCTION, text)
