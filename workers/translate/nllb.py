"""NLLB-200 (and M2M-100: the same architecture and code) translation: one model, every pair.

Languages are named by NLLB's FLORES-200 codes ("spa_Latn"); LiveDub's ISO 639-1 codes map to
them through ISO 639-3 and the script the model's own language tokens carry.
"""

from __future__ import annotations

from typing import ClassVar

from workers.errors import UnsupportedLanguageError
from workers.stage import Capabilities
from workers.translate.languages import ISO1_TO_ISO3
from workers.translate.seq2seq import Seq2SeqMt, local_checkpoint

# ISO 639-1 codes whose NLLB code is not "<iso639-3>_<script>" of the macrolanguage.
NLLB_OVERRIDES = {"zh": "zho_Hans", "ar": "arb_Arab", "fa": "pes_Arab", "ms": "zsm_Latn", "et": "est_Latn",
                  "lv": "lvs_Latn", "sw": "swh_Latn", "uz": "uzn_Latn", "mn": "khk_Cyrl", "no": "nob_Latn",
                  "sq": "als_Latn", "az": "azj_Latn", "ne": "npi_Deva", "or": "ory_Orya", "ps": "pbt_Arab"}


def nllb_codes(special_tokens: list[str]) -> dict[str, str]:
    """ISO 639-1 -> the model's language token, for the language tokens it has."""
    codes = [t for t in special_tokens if len(t) == 8 and t[3] == "_"]
    out: dict[str, str] = {}
    for iso1, iso3 in ISO1_TO_ISO3.items():
        want = NLLB_OVERRIDES.get(iso1)
        match = want if want in codes else next((c for c in codes if c.startswith(iso3 + "_")), None)
        if match:
            out[iso1] = match
    return out


class Nllb(Seq2SeqMt):
    name: ClassVar[str] = "nllb"
    capabilities: ClassVar[Capabilities] = Capabilities(languages=None, devices=("cpu", "cuda"))

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self._codes: dict[str, str] | None = None

    @property
    def model_id(self) -> str:
        return self.settings.translate.nllb_model

    def codes(self) -> dict[str, str]:
        if self._codes is None:
            _, tok = self.model(self.model_id)
            self._codes = nllb_codes(list(tok.additional_special_tokens) or list(tok.get_vocab()))
        return self._codes

    def local_pairs(self) -> bool:
        return local_checkpoint(self.settings, self.model_id)

    def pairs(self) -> frozenset[tuple[str, str]]:
        if not local_checkpoint(self.settings, self.model_id):
            return frozenset()
        langs = sorted(self.codes())
        return frozenset((a, b) for a in langs for b in langs if a != b)

    def missing_models(self) -> str:
        return (f"the NLLB model {self.model_id!r} is not here: run `livedub models pull {self.model_id}` "
                "on a machine with hub access (or set LIVEDUB_TRANSLATE__NLLB_MODEL to a local directory)")

    def translate(self, text: str, source: str, target: str) -> str:
        codes = self.codes()
        if source not in codes or target not in codes:
            missing = source if source not in codes else target
            raise UnsupportedLanguageError(f"nllb has no language token for {missing!r}")
        _, tok = self.model(self.model_id)
        tok.src_lang = codes[source]
        return self.generate(self.model_id, text,
                             generate_kwargs={"forced_bos_token_id": tok.convert_tokens_to_ids(codes[target])})
