"""A fixed evaluation set of spoken sentences with their text, for WER / chrF figures.

English is spoken by the packaged Piper voice (a real neural voice), the other languages by
espeak-ng; audio is 16 kHz mono and cached under `<cache_dir>/bench-speech`, so every
backend and precision is scored on exactly the same samples.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "Hello, my name is Anna and I live in London with my family.",
        "The meeting will start at ten o'clock tomorrow morning.",
        "Could you please send me the report before Friday?",
        "We have to finish the project by the end of the month.",
        "The weather is very nice today, so let us go for a walk.",
        "I think the new design looks much better than the old one.",
        "Our team grew from five people to twenty in one year.",
        "Thank you very much for your help with the presentation.",
    ),
    "es": (
        "Buenos días, me llamo Juan y vivo en Madrid con mi familia.",
        "La reunión empieza mañana a las diez de la mañana.",
        "Por favor, envíame el informe antes del viernes.",
        "Muchas gracias por tu ayuda con la presentación.",
    ),
    "fr": (
        "Bonjour, je m'appelle Marie et j'habite à Paris avec ma famille.",
        "La réunion commence demain à dix heures du matin.",
        "Merci beaucoup pour votre aide avec la présentation.",
        "Nous devons finir le projet avant la fin du mois.",
    ),
    "de": (
        "Guten Morgen, ich heiße Peter und wohne in Berlin.",
        "Das Treffen beginnt morgen um zehn Uhr.",
        "Vielen Dank für deine Hilfe bei der Präsentation.",
        "Wir müssen das Projekt bis Ende des Monats fertig machen.",
    ),
}


# Parallel sentences (human translations) for MT and speech-translation figures (chrF). Portuguese is
# European (equipa, enviar-me), as Apertium's plain es-pt mode writes it; tu-forms where Spanish has them.
PARALLEL: tuple[dict[str, str], ...] = (
    {"en": "The meeting starts tomorrow at ten in the morning.",
     "es": "La reunión empieza mañana a las diez de la mañana.",
     "fr": "La réunion commence demain à dix heures du matin.",
     "de": "Das Treffen beginnt morgen um zehn Uhr morgens.",
     "pt": "A reunião começa amanhã às dez da manhã.",
     "ca": "La reunió comença demà a les deu del matí.",
     "gl": "A reunión comeza mañá ás dez da mañá.",
     "it": "La riunione inizia domani alle dieci di mattina."},
    {"en": "Thank you very much for your help with the presentation.",
     "es": "Muchas gracias por tu ayuda con la presentación.",
     "fr": "Merci beaucoup pour ton aide avec la présentation.",
     "de": "Vielen Dank für deine Hilfe bei der Präsentation.",
     "pt": "Muito obrigado pela tua ajuda com a apresentação.",
     "ca": "Moltes gràcies per la teva ajuda amb la presentació.",
     "gl": "Moitas grazas pola túa axuda coa presentación.",
     "it": "Grazie mille per il tuo aiuto con la presentazione."},
    {"en": "We have to finish the project before the end of the month.",
     "es": "Tenemos que terminar el proyecto antes de final de mes.",
     "fr": "Nous devons terminer le projet avant la fin du mois.",
     "de": "Wir müssen das Projekt vor Ende des Monats fertigstellen.",
     "pt": "Temos de terminar o projeto antes do fim do mês.",
     "ca": "Hem d'acabar el projecte abans de final de mes.",
     "gl": "Temos que rematar o proxecto antes da fin do mes.",
     "it": "Dobbiamo finire il progetto prima della fine del mese."},
    {"en": "Could you please send me the report before Friday?",
     "es": "¿Podrías enviarme el informe antes del viernes, por favor?",
     "fr": "Pourrais-tu m'envoyer le rapport avant vendredi, s'il te plaît?",
     "de": "Könntest du mir bitte den Bericht vor Freitag schicken?",
     "pt": "Podes enviar-me o relatório antes de sexta-feira, por favor?",
     "ca": "Em podries enviar l'informe abans de divendres, si us plau?",
     "gl": "Poderías enviarme o informe antes do venres, por favor?",
     "it": "Potresti mandarmi il rapporto prima di venerdì, per favore?"},
    {"en": "The weather is very nice today, so let us go for a walk.",
     "es": "Hoy hace muy buen tiempo, así que vamos a dar un paseo.",
     "fr": "Il fait très beau aujourd'hui, alors allons nous promener.",
     "de": "Das Wetter ist heute sehr schön, also lass uns spazieren gehen.",
     "pt": "Hoje está muito bom tempo, por isso vamos dar um passeio.",
     "ca": "Avui fa molt bon temps, així que anem a fer una passejada.",
     "gl": "Hoxe fai moi bo tempo, así que imos dar un paseo.",
     "it": "Oggi il tempo è molto bello, quindi andiamo a fare una passeggiata."},
    {"en": "Our team grew from five people to twenty in one year.",
     "es": "Nuestro equipo pasó de cinco personas a veinte en un año.",
     "fr": "Notre équipe est passée de cinq à vingt personnes en un an.",
     "de": "Unser Team ist in einem Jahr von fünf auf zwanzig Leute gewachsen.",
     "pt": "A nossa equipa passou de cinco para vinte pessoas num ano.",
     "ca": "El nostre equip va passar de cinc a vint persones en un any.",
     "gl": "O noso equipo pasou de cinco a vinte persoas nun ano.",
     "it": "Il nostro team è passato da cinque a venti persone in un anno."},
)


@dataclass(frozen=True)
class Sample:
    lang: str
    text: str
    audio: np.ndarray  # float32, 16 kHz


def _speak(text: str, lang: str, settings) -> np.ndarray:
    import soxr

    if lang == "en":
        from workers.tts.piper import Piper

        tts = Piper(settings)
    else:
        from workers.tts.espeak import Espeak

        tts = Espeak(settings)
    tts.load()
    try:
        s = tts.synthesize(text, lang)
    finally:
        tts.close()
    audio = s.audio if s.sample_rate == 16000 else soxr.resample(s.audio, s.sample_rate, 16000)
    return np.asarray(audio, np.float32)


def spoken(settings, lang: str, text: str) -> Sample:
    cache = Path(settings.cache_dir) / "bench-speech"
    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{lang}|{text}".encode()).hexdigest()[:16]
    path = cache / f"{lang}-{key}.npy"
    if not path.is_file():
        np.save(path, _speak(text, lang, settings))
    return Sample(lang, text, np.load(path))


def samples(settings, langs: tuple[str, ...] | None = None) -> list[Sample]:
    """The evaluation samples (synthesised once, then read from the cache)."""
    return [spoken(settings, lang, text) for lang, texts in SENTENCES.items() if not langs or lang in langs
            for text in texts]
