"""Smoke test of the da/hr/ro/id/zh lexicons: short review-like posts we wrote ourselves (not evidence;
the held-out figures are in docs/triage.md) get the sign a reader would give them."""

from __future__ import annotations

import pytest

from monitor.triage import triage

SIX = ("en", "da", "hr", "ro", "id", "zh")

NEGATIVE = [
    ("zh", "质量太差了，再也不买"),
    ("zh", "非常不好"),
    ("zh", "快递太慢了，等了一个星期还没收到货"),
    ("zh", "房间很脏，隔音也差"),
    ("zh", "客服态度差，根本没人理"),
    ("zh", "用了两天就坏了，要退货"),
    ("zh", "不值这个价"),
    ("zh", "不太好用"),
    ("zh", "質量太差，再也不買了"),  # traditional characters
    ("zh", "东西还行，但是物流太慢了"),  # what follows "but" weighs more
    ("zh", "衣服色差很大，和图片完全不一样"),
    ("zh", "外卖送到都凉了，而且还洒了"),
    ("zh", "下单三天了还不发货"),
    ("zh", "拍照模糊，跟宣传的差远了"),
    ("zh", "早餐种类少，味道一般"),
    ("id", "pesanan belum sampai, admin slow respon"),
    ("id", "makanannya enak, tapi pelayanannya lama banget"),
    ("id", "barang rusak, kecewa berat"),
    ("id", "kurang enak dan kemahalan"),  # "kurang" negates "enak" only
    ("id", "cs nya gak bisa diandelin, chat dari kemarin ga dibales"),
    ("id", "udah bayar tapi pesanan dibatalin sepihak"),
    ("ro", "Comanda nu a ajuns nici acum, bătaie de joc"),
    ("ro", "Calitate slabă, nu mai cumpăr"),
    ("ro", "frumos, dar calitate slaba"),  # without diacritics, and "dar" (but)
    ("ro", "Aplicația se blochează mereu"),
    ("ro", "Am sunat de cinci ori și nimeni nu m-a ajutat"),
    ("da", "Pakken er ikke modtaget, aldrig igen"),
    ("da", "Alt for dyrt og langsomt"),
    ("da", "Maden var god, men betjeningen var elendig"),
    ("hr", "Paket nije stigao, nitko ne odgovara"),
    ("hr", "Lijepo, ali preskupo"),
    ("hr", "Prljava soba i bahato osoblje"),
]

POSITIVE = [
    ("zh", "非常好"),
    ("zh", "质量很好，物流也快，还会再买"),
    ("zh", "酒店干净，服务周到"),
    ("zh", "物流有点慢，但是东西很好"),
    ("zh", "不会让我失望"),
    ("zh", "服務很好"),  # traditional characters
    ("zh", "客服很负责，问题马上解决了"),
    ("zh", "宝贝收到了，跟描述一样"),
    ("zh", "不差"),
    ("id", "enak banget, recommended"),
    ("id", "pengiriman cepat, barang sesuai deskripsi"),
    ("id", "tidak mengecewakan"),
    ("ro", "Produs excelent, livrare rapidă, recomand cu încredere"),
    ("ro", "Mulțumesc, totul a ajuns la timp"),
    ("da", "God service og hurtig levering"),
    ("da", "Lidt dyrt, men god kvalitet"),
    ("hr", "Odlično, brza dostava, preporučam"),
    ("hr", "Nije loše"),
]


def _sentiment(lang: str, text: str) -> float:
    score = triage(text, lang_hint=lang, languages=SIX if lang == "zh" else [lang])
    assert score.lang == lang and score.sentiment is not None
    return score.sentiment


@pytest.mark.parametrize(("lang", "text"), NEGATIVE)
def test_complaint_reads_negative(lang, text):
    assert _sentiment(lang, text) <= -0.05


@pytest.mark.parametrize(("lang", "text"), POSITIVE)
def test_praise_reads_positive(lang, text):
    assert _sentiment(lang, text) >= 0.05
