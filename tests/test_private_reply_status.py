"""A Facebook private reply that went out while its answer was lost (a timeout) is reported as sent.

The retry looked for it among the comment's public replies, did not find it, sent it again, and read
Graph's "(#10900) Activity already replied to" as a refusal: the thread said "The private message was
not sent" about a message the customer had received."""

from __future__ import annotations

from sqlmodel import Session, select

from connectors.facebook import FacebookSource
from monitor.model import Event
from tests.test_acknowledge import fb_comment, make_daemon
from tests.test_slack_flow import thread, top_level

PAGE_ID = "104000000000001"


def test_a_private_reply_whose_answer_timed_out_is_reported_sent_once(sandbox, db_url, simple_rules,
                                                                       simple_rules_file, clock):
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock, names=("fb-comments",))
    # the real connector with a short client timeout, so the slow answer below is a timeout in 0.3 s
    quick = FacebookSource(page_token="sandbox-token-not-secret", page_id=PAGE_ID, base_url=sandbox.url, clock=clock,
                           timeout=0.3)
    daemon.sources["fb-comments"].connector = quick
    daemon.deliverer.sources["facebook"] = daemon.replies.sources["facebook"] = quick
    comment = fb_comment(sandbox, clock, "The lamp arrived broken. I want a refund.")
    # Graph takes the private reply, then answers after the client gave up
    sandbox.add_fault(platform="facebook", path=f"/v21.0/{PAGE_ID}/messages", method="POST", delay_s=1.0, times=1)
    for _ in range(4):
        daemon.poll("fb-comments")
        daemon.drain()
        clock.advance(120)
    private = [p for p in sandbox.fb_posts() if p["kind"] == "private_reply"]
    assert [p["in_reply_to"] for p in private] == [comment], "sent once"
    alert = top_level(sandbox)[0]
    lines = [m["text"] for m in thread(sandbox, alert["ts"])]
    assert not [line for line in lines if "The private message was not sent" in line], lines
    assert [line for line in lines if line.startswith("Private message sent (facebook)")] != []
    with Session(daemon.engine) as s:
        assert [e.kind for e in s.exec(select(Event).where(Event.kind == "private_sent")).all()] == ["private_sent"]
    daemon.engine.dispose()
