"""The Deepgram Aura voices an agent may speak with (../shared/reference/PROTOCOLS.md)."""

from __future__ import annotations

_AURA2 = {
    "en": "amalthea andromeda apollo arcas aries asteria athena atlas aurora callista cora cordelia delia "
    "draco electra harmonia helena hera hermes hyperion iris janus juno jupiter luna mars minerva "
    "neptune odysseus ophelia orion orpheus pandora phoebe pluto saturn selene thalia theia vesta zeus",
    "es": "agustina alvaro antonia aquila carina celeste diana estrella gloria javier luciano nestor olivia "
    "selena silvia sirio valerio",
    "de": "aurelia elara fabian julius kara lara viktoria",
    "nl": "beatrix cornelia daphne hestia lars leda rhea roman sander",
    "fr": "agathe hector",
    "it": "cesare cinzia demetra dionisio elio flavio livia maia melia perseo",
    "ja": "ama ebisu fujin izanami uzume",
}
_AURA1_EN = "angus arcas asteria athena helios hera luna orion orpheus perseus stella zeus"

DEFAULT_VOICE_ID = "aura-2-thalia-en"


def _build() -> dict[str, dict[str, str]]:
    voices: dict[str, dict[str, str]] = {}
    for language, names in _AURA2.items():
        for name in names.split():
            voice_id = f"aura-2-{name}-{language}"
            voices[voice_id] = {"id": voice_id, "name": name.title(), "language": language, "model": "aura-2"}
    for name in _AURA1_EN.split():
        voice_id = f"aura-{name}-en"
        voices[voice_id] = {"id": voice_id, "name": name.title(), "language": "en", "model": "aura-1"}
    return voices


VOICES: dict[str, dict[str, str]] = _build()


def is_known_voice(voice_id: str) -> bool:
    return voice_id in VOICES
