"""Short texts in the six languages for stream tests (written for the tests)."""

from __future__ import annotations

import random

TEXTS = {
    "en": [
        "I feel empty and nothing I do matters anymore.",
        "Had a great walk with my dog today!",
        "Work was stressful but dinner with friends helped.",
        "I can't sleep and I feel like a burden to everyone.",
    ],
    "de": [
        "Ich fühle mich leer und allein.",
        "Heute war ein schöner Tag im Park.",
        "Die Prüfung war schwer, aber ich bin stolz auf mich.",
        "Nichts hat mehr einen Sinn für mich.",
    ],
    "fr": [
        "Je me sens vide et inutile.",
        "On a fait un super pique-nique ce week-end.",
        "Le travail m'énerve mais ça va passer.",
        "Je n'ai plus envie de rien, même pas de sortir.",
    ],
    "it": [
        "Mi sento vuoto e senza speranza.",
        "Oggi ho cucinato la pasta con mia nonna.",
        "Sono arrabbiato per la partita ma domani è un altro giorno.",
        "Non riesco più ad alzarmi dal letto.",
    ],
    "pt": [
        "Sinto-me vazio e sozinho.",
        "Fomos à praia e foi maravilhoso.",
        "Estou cansado do trabalho, mas feliz com a família.",
        "Nada faz sentido, sou um peso para todos.",
    ],
    "es": [
        "Me siento vacío y sin ganas de nada.",
        "¡Qué buen concierto anoche con mis amigos!",
        "Estoy estresado con los exámenes pero lo llevo bien.",
        "Ya no le encuentro sentido a levantarme.",
    ],
}


def stream(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """n (language, text) pairs, each text made unique by a counter."""
    rng = random.Random(seed)
    langs = list(TEXTS)
    out = []
    for i in range(n):
        lang = langs[i % len(langs)]
        out.append((lang, f"{rng.choice(TEXTS[lang])} ({i})"))
    return out
