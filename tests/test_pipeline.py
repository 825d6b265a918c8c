"""The ingest pipeline: stored once, triaged, routed, cases opened or attached, outbox written, cursor moved."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from connectors.console import ConsoleNotifier
from monitor import store
from monitor.cases import pipeline
from monitor.delivery.outbox import Deliverer
from monitor.model import Author, Case, Mention, NewMention, Outbox, OutboxKind
from monitor.store import get_cursor


def tweet(n: int, text: str, *, author: str = "anna", conversation: str = "", at=None, mentions_brand=True,
          followers: int = 120, kind: str = "mention") -> NewMention:
    return NewMention(
        platform="x", kind=kind, external_id=str(1000 + n), text=text,
        author=Author(id=f"u-{author}", handle=author, name=author.title(), followers=followers),
        created_at=at, conversation_id=conversation or str(1000 + n), url=f"https://x.com/{author}/status/{1000 + n}",
        mentions_brand=mentions_brand,
    )


def test_batch_is_stored_once_and_opens_one_case_per_conversation(engine, simple_rules, clock):
    now = clock.now()
    batch = [
        tweet(1, "@nordlysshop my order never arrived. Terrible, awful service, I am furious 😡", at=now),
        tweet(2, "@nordlysshop love the new lamp, thank you!", author="bo", at=now),
        tweet(3, "@nordlysshop still waiting, nobody answers my emails", conversation="1001",
              at=now + timedelta(seconds=5)),
    ]
    first = pipeline.ingest(engine, source="x-mentions", batch=batch, cursor="c1", ruleset=simple_rules, now=now)
    assert (first.stored, first.duplicates, first.cases_opened, first.attached) == (3, 0, 1, 1)

    with Session(engine) as s:
        case = s.exec(select(Case)).one()
        assert case.rule == "urgent"
        assert case.sla_due_at == now + timedelta(minutes=30)
        assert case.mention_count == 2
        stored = {m.external_id: m.case_id for m in s.exec(select(Mention)).all()}
        assert stored == {"1001": case.id, "1002": None, "1003": case.id}
        rows = s.exec(select(Outbox)).all()
        kinds = sorted(o.kind for o in rows)
        assert kinds.count(OutboxKind.ALERT) == 1
        notes = sorted(o.payload.get("note", "") for o in rows if o.kind == OutboxKind.THREAD)
        # the follow-up goes to the thread; without an X connector the acknowledgement waits for approval
        assert notes == ["ack_approval", "followup"]
        assert get_cursor(s, "x-mentions") == "c1"

    again = pipeline.ingest(engine, source="x-mentions", batch=batch, cursor="c2", ruleset=simple_rules, now=now)
    assert (again.stored, again.duplicates, again.cases_opened, again.alerts) == (0, 3, 0, 0)
    with Session(engine) as s:
        assert s.exec(select(sa.func.count()).select_from(Outbox)).one() == len(kinds)
        assert get_cursor(s, "x-mentions") == "c2"


def test_alert_and_followup_are_delivered_in_one_thread(engine, simple_rules, clock):
    now = clock.now()
    batch = [tweet(1, "@nordlysshop the package arrived broken, terrible awful service", at=now),
             tweet(2, "@nordlysshop hello?? still waiting", conversation="1001", at=now)]
    pipeline.ingest(engine, source="x-mentions", batch=batch, cursor="c", ruleset=simple_rules, now=now)
    out = io.StringIO()
    notifier = ConsoleNotifier(stream=out)
    deliverer = Deliverer(engine=engine, notifier=notifier, sources={}, worker="t")
    deliverer.run_once(now=now)
    deliverer.run_once(now=now + timedelta(seconds=3))
    text = out.getvalue()
    assert "the package arrived broken, terrible awful service" in text
    assert "Follow-up from @anna" in text and "hello?? still waiting" in text
    with Session(engine) as s:
        case = s.exec(select(Case)).one()
        assert case.alert_ref  # the alert's message id was recorded with the case
        pending = s.exec(select(Outbox).where(Outbox.state != "sent")).all()
        assert [(o.kind, o.state) for o in pending] == []


def test_a_mention_another_replica_stores_meanwhile_is_a_duplicate_with_no_second_case(engine, simple_rules, clock):
    now = clock.now()
    batch = [tweet(1, "@nordlysshop my order never arrived. Terrible, awful service, I am furious 😡", at=now),
             tweet(2, "@nordlysshop love the new lamp, thank you!", author="bo", at=now)]
    other: list[pipeline.IngestResult] = []

    def triage_while_the_other_replica_stores(texts, **kwargs):
        # triage runs between the dedup read and the write: the other replica stores the complaint first
        if not other:
            other.append(pipeline.ingest(engine, source="x-mentions", batch=batch[:1], cursor=None,
                                         ruleset=simple_rules, now=now))
        return pipeline.triage_many(texts, **kwargs)

    result = pipeline.ingest(engine, source="x-mentions", batch=batch, cursor="c1", ruleset=simple_rules, now=now,
                             triage_fn=triage_while_the_other_replica_stores)
    assert (other[0].stored, other[0].cases_opened) == (1, 1)
    assert (result.stored, result.duplicates, result.cases_opened) == (1, 1, 0)
    with Session(engine) as s:
        stored = s.exec(select(Mention.id, Mention.external_id)).all()
        assert sorted(external_id for _, external_id in stored) == ["1001", "1002"]
        assert result.stored_ids == [mention_id for mention_id, external_id in stored if external_id == "1002"]
        assert s.exec(select(sa.func.count()).select_from(Case)).one() == 1
        assert get_cursor(s, "x-mentions") == "c1"


def test_cooldown_counts_per_platform_author_a_shared_id_on_another_platform_is_someone_else(
        engine, simple_rules, clock):
    from connectors.platforms import FACEBOOK, X

    policies = {"x": pipeline.ReplyPolicy(platform=X), "facebook": pipeline.ReplyPolicy(platform=FACEBOOK)}
    now = clock.now()
    pipeline.ingest(engine, source="x-mentions", batch=[tweet(1, "@nordlysshop lamp arrived broken", at=now)],
                    cursor="c1", ruleset=simple_rules, now=now, policies=policies)
    later = now + timedelta(hours=1)
    comment = NewMention(platform="facebook", kind="comment", external_id="fb-1", conversation_id="post-1",
                         text="my refund never arrived", author=Author(id="u-anna", name="Anna"), created_at=later)
    again = tweet(2, "@nordlysshop and now the refund is refused?!", at=later)  # anna on X, a new conversation
    result = pipeline.ingest(engine, source="mixed", batch=[comment, again], cursor="c2", ruleset=simple_rules,
                             now=later, policies=policies)
    assert result.acks_queued == 1
    with Session(engine) as s:
        cases = {c.platform + ":" + c.conversation_id: c.ack_mode for c in s.exec(select(Case)).all()}
        assert cases == {"x:1001": "auto", "facebook:post-1": "auto", "x:1002": "off"}
        public = s.exec(select(Outbox.platform).where(Outbox.kind == OutboxKind.REPLY_PUBLIC)).all()
        assert sorted(public) == ["facebook", "x"]


def test_brand_replies_in_pages_of_any_size_answer_their_cases_and_the_look_ups_stay_few(engine, simple_rules, clock):
    """A page's brand replies look up each conversation's waiting cases in one statement; one built per count
    of conversations (1 to 200) was kept for the process's life, ~6 KB a conversation (bench/memory.py)."""
    from monitor.runtime.memory import release_caches

    now = clock.now()
    angry = "@nordlysshop my order never arrived. Terrible, awful service, I am furious 😡"
    release_caches()
    n = 0
    for page, conversations in enumerate((1, 3, 5, 6, 7, 2)):
        ids = []
        batch = []
        for c in range(conversations):
            n += 1
            ids.append(str(1000 + n))
            batch.append(tweet(n, angry, author=f"p{page}c{c}", at=now))
        pipeline.ingest(engine, source="x-mentions", batch=batch, cursor=f"a{page}", ruleset=simple_rules, now=now)
        replies = []
        for conversation in ids:
            n += 1
            reply = tweet(n, "Sorry to hear that, we are on it", author="nordlysshop", conversation=conversation,
                          at=now + timedelta(minutes=1), mentions_brand=False)
            replies.append(replace(reply, from_brand=True, parent_id=conversation))
        pipeline.ingest(engine, source="x-mentions", batch=replies, cursor=f"b{page}", ruleset=simple_rules,
                        now=now + timedelta(minutes=1))
        with Session(engine) as s:
            cases = s.exec(select(Case).where(Case.conversation_id.in_(ids))).all()
            assert len(cases) == conversations
            assert all(case.first_response_at == now + timedelta(minutes=1) for case in cases)
    assert sorted(pipeline._FIRST_WAITING) == [1, 2, 4, 8]  # 1, 3-4, 5-8 and 2 conversations
    built = list(pipeline._FIRST_WAITING.values())
    assert all(any(key[0] is statement for key in store._SELECT_BINDS) for statement in built)
    release_caches()  # what going idle lets go, with what select_rows compiled for them (it kept them alive)
    assert pipeline._FIRST_WAITING == {}
    for kept in (store._SELECT_BINDS, store._SELECTS):
        assert not any(key[0] is statement for key in kept for statement in built)


def test_page_look_ups_find_what_sqlalchemy_finds_for_lists_of_any_length(engine, simple_rules, clock):
    """`store.select_rows` (the page's look-ups: stored mentions, each author's cases) against SQLAlchemy's
    own execution of the same statement, for lists of 1 to 300 values, none, and pairs that match no row.
    On PostgreSQL each look-up is one SQL text whatever the lists' lengths (IN lists as arrays): psycopg
    parsed a text of more than 50 parameters anew at every execution, and PostgreSQL planned each anew."""
    now = clock.now()
    angry = "@nordlysshop my order never arrived. Terrible, awful service, I am furious 😡"
    batch = [tweet(n, angry, author=f"a{n % 40}", conversation=str(1000 + n % 60), at=now) for n in range(120)]
    pipeline.ingest(engine, source="x-mentions", batch=batch, cursor="c1", ruleset=simple_rules, now=now)
    texts: set[str] = set()

    def seen(_conn, _cursor, statement, _params, _context, _many):
        texts.add(statement)

    def ours(s, statement, params):  # select_rows, the SQL texts it runs noted
        sa.event.listen(engine, "before_cursor_execute", seen)
        try:
            return store.select_rows(s, statement, params)
        finally:
            sa.event.remove(engine, "before_cursor_execute", seen)

    with Session(engine) as s:
        for n in (1, 2, 3, 51, 120, 300):
            ids = [str(1000 + i) for i in range(0, 2 * n, 2)]  # half of them stored (ids up to 1119)
            params = {"platforms": ["facebook", "x"], "ids": ids}
            found = ours(s, pipeline._STORED, params)
            assert sorted(found) == sorted(tuple(r) for r in s.execute(pipeline._STORED, params))
            assert len(found) == len([i for i in ids if int(i) < 1120])
            triples = [("x", str(1000 + i % 60), f"u-a{i % 40}") for i in range(n)] + [("x", "1", "u-nobody")]
            params = {"authors": sorted({t[2] for t in triples}), "triples": triples}
            cases = ours(s, pipeline._AUTHORS_CASES, params)
            assert sorted(cases) == sorted(tuple(r) for r in s.execute(pipeline._AUTHORS_CASES, params))
            assert cases and all((c[1], c[2], c[3]) in triples for c in cases)
        assert store.select_rows(s, pipeline._STORED, {"platforms": ["x"], "ids": []}) == []
    if engine.dialect.name == "postgresql":
        assert len(texts) == 2, texts  # one text for each look-up


def test_a_page_of_rows_is_written_as_an_executemany_would_write_it(engine, simple_rules, clock):
    """`store.execute_many`, which on PostgreSQL writes a page as one statement over arrays: the rows in their
    order (ids drawn in it), None, JSON, times and text with quotes and braces kept, the number of rows
    stored, and where one statement could not (a key twice in an upsert, an id twice in an UPDATE) what
    one execution per row gives, the last row winning."""
    from monitor.delivery import outbox
    from monitor.model import Event

    now = clock.now()
    pipeline.ingest(engine, source="x-mentions", batch=[tweet(1, "@nordlysshop my order never arrived 😡", at=now)],
                    cursor="c1", ruleset=simple_rules, now=now)
    details = [{"mention_id": i, "note": 'say "{hi}", \\o/ ,; NULL 😡'} if i % 3 else {} for i in range(40)]
    with store.transaction(engine) as s:
        case_id = s.exec(select(Case.id)).one()
        events = [{"case_id": case_id, "at": None if i % 5 == 0 else now + timedelta(seconds=i),
                   "kind": f"k{i}", "actor": 'a "q" {x}' if i % 2 else "", "detail": d} for i, d in enumerate(details)]
        assert store.execute_many(s, outbox._INSERT_EVENTS, events) == 40
    with Session(engine) as s:
        stored = s.exec(select(Event).where(Event.kind.startswith("k")).order_by(Event.id)).all()
        assert [(e.kind, e.at, e.actor, e.detail) for e in stored] == [
            (r["kind"], r["at"], r["actor"], r["detail"]) for r in events]
    with store.transaction(engine) as s:
        outbox.begin_batch(s)
        for minutes, channel in ((1, "#a"), (2, "#b")):
            outbox.request_update(s, case_id=case_id, channel=channel, now=now + timedelta(minutes=minutes))
        batch = outbox.current_batch(s)
        rows = list(batch.updates.values())
        outbox.flush_batch(s)
        twice = [dict(rows[0], target="#c", next_attempt_at=now + timedelta(minutes=3)),
                 dict(rows[0], target="#d", next_attempt_at=now + timedelta(minutes=4))]
        store.execute_many(s, outbox._statement(s, "update"), twice)  # the same dedup key twice in one page
        links = [{"b_id": 1, "b_case": None}, {"b_id": 1, "b_case": case_id}]
        assert store.execute_many(s, pipeline._LINK_MENTIONS, links) == 2
    with Session(engine) as s:
        row = s.exec(select(Outbox).where(Outbox.dedup_key == f"update:{case_id}")).one()
        # an existing row keeps its target; the upsert moves its next attempt (the later row's)
        assert (row.target, row.next_attempt_at) == ("#b", now + timedelta(minutes=4))
        assert s.exec(select(Mention.case_id).where(Mention.id == 1)).one() == case_id
