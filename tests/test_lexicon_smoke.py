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
    # second pass (issue 13): hotels, goods, after-sales; negation past particles, 就是 as "but", 好几 is "many"
    ("zh", "快递太慢了，包装也破了"),
    ("zh", "隔音不好，晚上根本睡不着"),
    ("zh", "商家不给退款"),  # a negated refund is no good news
    ("zh", "打了好几次电话都没人接"),
    ("zh", "没有想象中的好"),
    ("zh", "东西不错，就是太贵了"),
    ("zh", "牛奶有股怪味，难喝"),
    ("zh", "电脑经常蓝屏，客服推来推去"),
    ("zh", "离地铁站很远，交通不便"),
    ("zh", "还没发货，客服也没回复"),
    ("zh", "菜量太少了，吃不饱"),
    ("zh", "隔音不好，衛生很差，房間太舊了"),  # traditional characters of the new words
    ("zh", "手机发热很厉害"),  # after a complaint 厉害 is "badly"
    ("zh", "酒店的设施已经很老了"),
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
    ("da", "Varen er beskadiget og virker ikke"),
    ("da", "Jeg har stadig ikke fået mine penge tilbage"),
    ("da", "Appen crasher hele tiden"),
    ("da", "Pakken er aldrig modtaget og der er ingen hjælp at få"),
    ("hr", "Paket nije stigao, nitko ne odgovara"),
    ("hr", "Lijepo, ali preskupo"),
    ("hr", "Prljava soba i bahato osoblje"),
    ("hr", "Soba smrdi, a dostava je bila sporo"),
    ("hr", "Proizvod ne odgovara opisu"),
    ("hr", "Osoblje je bilo neljubazno i neprofesionalno"),
    ("hr", "Paket je izgubljen, a kurir je zakasnio"),
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
    ("zh", "太好了"),
    ("zh", "这是一家好店"),  # 好 before a noun is "good"; before an adjective "so" (好冷)
    ("zh", "这个师傅很厉害"),  # alone 厉害 is "great"
    ("zh", "牛奶很好喝"),
    ("zh", "服务没得说"),
    ("zh", "包装很精美，下次还会入住"),
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


# Words our lexicons must not read as sentiment at all (no "sentence ..." reason in `explain`):
# 好 as "OK" or "so", 快 as "soon", 一般 as "usually", 最好 as "had better", A-不-A questions;
# afinn's Danish function words "når" (when), "fik" (got).
NEITHER = [
    ("zh", "好，我们走吧"),
    ("zh", "你觉得好不好"),
    ("zh", "你满意不满意"),
    ("zh", "我一般周末在家"),
    ("zh", "快到了"),
    ("zh", "你最好先问一下"),
    ("da", "Når kommer pakken"),
    ("da", "Jeg fik pakken i går"),
]


@pytest.mark.parametrize(("lang", "text"), NEITHER)
def test_function_words_carry_no_sentiment(lang, text):
    score = triage(text, lang_hint=lang, languages=SIX if lang == "zh" else [lang])
    assert score.lang == lang
    assert not [s for s in score.signals if s.startswith("sentence")]
