"""Prompts and request parameters for one planned request.

The original project's Healthy prompts also asked for thoughts "about depression and
suicidal behavior", so healthy texts became recovery stories and the classifier learned
tone instead of indicators. Healthy prompts here ask for the whole normal range of a
person who is not depressed (everyday life, ordinary sadness, stress, anger, grief,
setbacks, resilience) and forbid the depression/recovery frame outright.
"""

from __future__ import annotations

from typing import Any

from training.generate.config import SUPPORTED_LANGUAGES, Bucket, GenerationConfig
from training.generate.personas import Persona
from training.generate.seeds import Category

SYSTEM_PROMPT = (
    "You write realistic, varied first-person texts for training a multilingual classifier "
    "that screens messages for indicators of depression. The classifier is a support tool: "
    "every flag is reviewed by a person and it never diagnoses anyone. Write exactly as the "
    "described person would write in the described setting, in the requested language only. "
    'Answer with JSON only, of the form {"texts": ["...", "..."]}, and nothing else.'
)

#: JSON schema for structured outputs; parsing does not rely on it being honoured.
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"texts": {"type": "array", "items": {"type": "string"}}},
    "required": ["texts"],
    "additionalProperties": False,
}

_UNHEALTHY_STATE = """\
Mental-health state: the person shows indicators of clinical depression.
Area: {category}: {negative}.
Every text must show clinical depression indicators in this area, in the person's own \
words: for example persistent hopelessness, worthlessness, loss of interest or pleasure, \
exhaustion, excessive guilt, withdrawal, feeling like a burden, or thoughts of death. \
Show them through lived experience rather than by naming a diagnosis, and vary the \
intensity, the situations and the wording from text to text."""

_HEALTHY_STATE = """\
Mental-health state: healthy, with no indicators of depression.
Write texts from the whole normal range of a mentally healthy person's life: everyday \
life, ordinary sadness, stress, anger or frustration, grief, setbacks, as well as \
contentment and resilience. Negative feelings are welcome, but they are proportionate, \
tied to a situation and passing; the person keeps functioning, still enjoys things and \
sees a future.
Most texts lean on: {focus}. The others may come from any other part of the normal range.
Area: {category}. Its healthy side looks like: {positive}. Texts may touch this area \
from any point of the normal range, not only the positive one.
Do not write about depression, suicide, self-harm, mental illness, or recovering from \
them: this person is not depressed and is not recovering from depression."""

_TEMPLATE = """\
Write {n} different texts in {language}.

Writer: {age_group} ({age_range} years old), education: {education}.
Writing style: {style}.
Setting: {context}.

{state_block}

Length: every text has between {min_words} and {max_words} words.
{anchor_block}
Rules:
- Write only in {language}.
- The texts differ from each other in content, situation and wording.
- No titles, numbering, hashtags, quotation marks around the text, or explanations.

Answer with JSON only: {{"texts": [...]}} holding exactly {n} strings."""

_ANCHORS = """
Style anchors: real testimonials, in Spanish. Match how candid and personal they are; \
never copy or translate them.
{lines}
"""


def user_prompt(
    *,
    language: str,
    state: str,
    category: Category,
    bucket: Bucket,
    persona: Persona,
    n_texts: int,
) -> str:
    if state == "Healthy":
        state_block = _HEALTHY_STATE.format(
            focus=persona.healthy_focus or "everyday life and routines",
            category=category.name,
            positive=category.positive,
        )
    else:
        state_block = _UNHEALTHY_STATE.format(category=category.name, negative=category.negative)
    anchor_block = (
        _ANCHORS.format(lines="\n".join(f'- "{anchor}"' for anchor in persona.anchors))
        if persona.anchors
        else ""
    )
    return _TEMPLATE.format(
        n=n_texts,
        language=SUPPORTED_LANGUAGES[language],
        age_group=persona.age_group,
        age_range=persona.age_range,
        education=persona.education,
        style=persona.writing_style,
        context=persona.context,
        state_block=state_block,
        min_words=bucket.min_words,
        max_words=bucket.max_words,
        anchor_block=anchor_block,
    )


def message_params(config: GenerationConfig, prompt: str) -> dict[str, Any]:
    """Messages API parameters for one request (stored as sent, for resumption)."""
    params: dict[str, Any] = {
        "model": config.model,
        "max_tokens": config.max_tokens,
        "temperature": config.temperature,
        "system": SYSTEM_PROMPT,
        "messages": [{"role": "user", "content": prompt}],
    }
    if config.structured_output:
        params["output_config"] = {"format": {"type": "json_schema", "schema": OUTPUT_SCHEMA}}
    return params
