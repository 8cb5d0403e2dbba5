"""Language codes: everything inside LiveDub speaks ISO 639-1 ("en", "es").

Tools name languages their own way: Apertium modes use ISO 639-3 or 639-1 with
variants ("eng-spa", "spa-eng_US", "fr-es"); espeak-ng voices use BCP-47-like
tags, sometimes with a 639-3 primary subtag ("cmn", "en-gb-x-rp"). These helpers
map such codes to ISO 639-1 so backends can discover what they support instead
of hard-coding it.
"""

from __future__ import annotations

from dataclasses import dataclass


def _table(text: str) -> dict[str, str]:
    """'a:b c:d' -> {'a': 'b', 'c': 'd'}: keeps the code tables below compact and readable."""
    return dict(pair.split(":", 1) for pair in text.split())


# ISO 639-1 -> ISO 639-3 (the terminology / individual-language code).
ISO1_TO_ISO3: dict[str, str] = _table(
    """
    aa:aar ab:abk ae:ave af:afr ak:aka am:amh an:arg ar:ara as:asm av:ava ay:aym az:aze ba:bak be:bel
    bg:bul bi:bis bm:bam bn:ben bo:bod br:bre bs:bos ca:cat ce:che ch:cha co:cos cr:cre cs:ces cu:chu
    cv:chv cy:cym da:dan de:deu dv:div dz:dzo ee:ewe el:ell en:eng eo:epo es:spa et:est eu:eus fa:fas
    ff:ful fi:fin fj:fij fo:fao fr:fra fy:fry ga:gle gd:gla gl:glg gn:grn gu:guj gv:glv ha:hau he:heb
    hi:hin ho:hmo hr:hrv ht:hat hu:hun hy:hye hz:her ia:ina id:ind ie:ile ig:ibo ii:iii ik:ipk io:ido
    is:isl it:ita iu:iku ja:jpn jv:jav ka:kat kg:kon ki:kik kj:kua kk:kaz kl:kal km:khm kn:kan ko:kor
    kr:kau ks:kas ku:kur kv:kom kw:cor ky:kir la:lat lb:ltz lg:lug li:lim ln:lin lo:lao lt:lit lu:lub
    lv:lav mg:mlg mh:mah mi:mri mk:mkd ml:mal mn:mon mr:mar ms:msa mt:mlt my:mya na:nau nb:nob nd:nde
    ne:nep ng:ndo nl:nld nn:nno no:nor nr:nbl nv:nav ny:nya oc:oci oj:oji om:orm or:ori os:oss pa:pan
    pi:pli pl:pol ps:pus pt:por qu:que rm:roh rn:run ro:ron ru:rus rw:kin sa:san sc:srd sd:snd se:sme
    sg:sag si:sin sk:slk sl:slv sm:smo sn:sna so:som sq:sqi sr:srp ss:ssw st:sot su:sun sv:swe sw:swa
    ta:tam te:tel tg:tgk th:tha ti:tir tk:tuk tl:tgl tn:tsn to:ton tr:tur ts:tso tt:tat tw:twi ty:tah
    ug:uig uk:ukr ur:urd uz:uzb ve:ven vi:vie vo:vol wa:wln wo:wol xh:xho yi:yid yo:yor za:zha zh:zho
    zu:zul
    """
)
ISO1: frozenset[str] = frozenset(ISO1_TO_ISO3)

# Other 3-letter codes tools use for a language that has a 639-1 code: 639-2/B
# bibliographic codes and the main member of a macrolanguage (Mandarin for zh).
_ALIASES: dict[str, str] = _table(
    """
    alb:sq arm:hy baq:eu bur:my chi:zh cze:cs dut:nl fre:fr geo:ka ger:de gre:el ice:is mac:mk mao:mi
    may:ms per:fa rum:ro slo:sk tib:bo wel:cy cmn:zh arb:ar ekk:et lvs:lv swh:sw uzn:uz azj:az khk:mn
    plt:mg ory:or npi:ne pbt:ps gug:gn pes:fa zsm:ms
    """
)
ISO3_TO_ISO1: dict[str, str] = {**{v: k for k, v in ISO1_TO_ISO3.items()}, **_ALIASES}


def to_iso1(code: str) -> str | None:
    """ISO 639-1 code for a tool's language code ("eng", "en_US", "pt-BR", "cmn"), or None.

    Only the primary subtag counts: regional or script variants map to their language.
    """
    primary = code.strip().lower().replace("_", "-").split("-", 1)[0]
    if len(primary) == 2:
        return primary if primary in ISO1 else None
    return ISO3_TO_ISO1.get(primary)


@dataclass(frozen=True)
class ApertiumMode:
    """One Apertium translation mode as `apertium -l` lists it."""

    mode: str  # e.g. "spa-eng_US"
    source: str  # ISO 639-1
    target: str  # ISO 639-1
    variant: str | None  # "US" for "spa-eng_US"; None for a plain pair


def parse_apertium_mode(mode: str) -> ApertiumMode | None:
    """Read a mode name; None for modes that are not a plain src-tgt translation ("eco-es-fr")."""
    parts = mode.strip().split("-")
    if len(parts) != 2:
        return None
    (src, src_var), (tgt, tgt_var) = (_split_variant(p) for p in parts)
    source, target = to_iso1(src), to_iso1(tgt)
    if source is None or target is None or source == target:
        return None
    variant = "_".join(v for v in (src_var, tgt_var) if v) or None
    return ApertiumMode(mode.strip(), source, target, variant)


def _split_variant(part: str) -> tuple[str, str | None]:
    code, _, variant = part.partition("_")
    return code, variant or None


def _preference(m: ApertiumMode) -> tuple[bool, int, bool, str]:
    """Sort key of the modes for one pair, best first: a plain mode before a variant ("spa-cat" before
    "spa-cat_valencia"), a shorter variant before a longer one ("cat-por_BR" before
    "cat-por_PTpre1990"), Apertium's current ISO 639-3 names before the older two-letter ones
    ("spa-cat" before "es-ca"), then by name, so the choice never depends on listing order."""
    codes = [_split_variant(p)[0] for p in m.mode.split("-")]
    return m.variant is not None, len(m.variant or ""), not all(len(c) == 3 for c in codes), m.mode


def choose_modes(modes: list[str]) -> dict[tuple[str, str], str]:
    """(source, target) ISO pair -> the mode to run; a plain mode wins over a regional variant.

    Modes that are not a plain src-tgt translation are left out: the developers' debug pipelines
    ("en-eo-bytecode", "es-eo-no_cg"), other encodings ("gl-pt-latin1") and transliterators
    ("Cyrl-Latn", "ca-eo-translit").
    """
    chosen: dict[tuple[str, str], ApertiumMode] = {}
    for name in modes:
        m = parse_apertium_mode(name)
        if m is None:
            continue
        key = (m.source, m.target)
        best = chosen.get(key)
        if best is None or _preference(m) < _preference(best):
            chosen[key] = m
    return {k: m.mode for k, m in chosen.items()}
