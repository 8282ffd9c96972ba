"""Who writes a text: a persona drawn per request from a seeded generator.

Each request seeds its own generator from (run seed, request id), so a persona does not
change when the plan grows, shrinks or is reordered.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from training.generate.seeds import Testimonial

AGE_GROUPS: dict[str, str] = {
    "teenager": "13-19",
    "young adult": "20-29",
    "adult": "30-45",
    "middle-aged": "46-60",
    "elderly": "60+",
}
EDUCATION: tuple[str, ...] = (
    "primary",
    "high school",
    "university student",
    "professional",
    "postgraduate",
)
WRITING_STYLES: tuple[str, ...] = (
    "very informal with slang",
    "casual",
    "neutral",
    "formal",
    "highly formal academic",
)
CONTEXTS: tuple[str, ...] = (
    "social media post",
    "diary entry",
    "text message to a friend",
    "forum post",
    "therapy session",
    "email to a family member",
    "anonymous blog post",
)
#: Parts of the normal emotional range; each Healthy request leans on one of them so that
#: healthy texts span ordinary negative feelings too, not only resilience.
HEALTHY_FOCUS: tuple[str, ...] = (
    "everyday life and routines",
    "ordinary sadness or disappointment",
    "stress and pressure",
    "anger or frustration",
    "grief or loss",
    "a setback or failure",
    "contentment, joy or gratitude",
    "resilience after a difficulty",
)


@dataclass(frozen=True)
class Persona:
    age_group: str
    education: str
    writing_style: str
    context: str
    #: Only for Healthy requests; None for Unhealthy ones.
    healthy_focus: str | None
    anchors: tuple[str, ...]

    @property
    def age_range(self) -> str:
        return AGE_GROUPS[self.age_group]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def draw_persona(
    seed: int,
    request_id: str,
    *,
    state: str,
    category: str,
    testimonials: tuple[Testimonial, ...],
    n_anchors: int,
) -> Persona:
    rng = random.Random(f"{seed}|{request_id}")
    age_group = rng.choice(list(AGE_GROUPS))
    education = rng.choice(EDUCATION)
    # A teenager with a postgraduate degree makes an incoherent prompt; keep it plausible.
    if age_group == "teenager" and education in {"professional", "postgraduate"}:
        education = rng.choice(EDUCATION[:3])
    style = rng.choice(WRITING_STYLES)
    context = rng.choice(CONTEXTS)
    healthy = state == "Healthy"
    focus = rng.choice(HEALTHY_FOCUS) if healthy else None
    anchors = _anchors(rng, testimonials, category=category, healthy=healthy, n=n_anchors)
    return Persona(age_group, education, style, context, focus, anchors)


def _anchors(
    rng: random.Random,
    testimonials: tuple[Testimonial, ...],
    *,
    category: str,
    healthy: bool,
    n: int,
) -> tuple[str, ...]:
    """Testimonials of the request's category first, topped up from the others."""
    same = [t for t in testimonials if t.category == category]
    other = [t for t in testimonials if t.category != category]
    rng.shuffle(same)
    rng.shuffle(other)
    chosen = (same + other)[:n]
    return tuple(t.positive if healthy else t.negative for t in chosen)
