"""The newsletter: sign up on a served page, confirm by mail, get `panel digest`, unsubscribe; sends never repeat."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import httpx2
import pytest
import yaml

from panel.config import Settings
from panel.errors import MailError
from panel.mail.addresses import new_token, normalise_address
from panel.mail.digest import build_digest, send_digest
from panel.mail.messages import Digest, DigestItem, digest_message
from panel.mail.smtp import SmtpSender
from panel.store import Store
from panel.web.serve import VoteServer
from tests.fake_openai import FakeOpenAI
from tests.helpers import (
    EXAMPLE_RUN,
    GOOD_CARD,
    PANEL,
    copy_db,
    make_draft,
    publish_every_pair,
    reference_reviewers,
    run_panel,
)
from tests.smtp_sink import SmtpSink

SITE = "https://verdicts.example"
_SIGNUP_CSRF = re.compile(
    r'<form class="signup" method="post" action="/newsletter">\s*'
    r'<input type="hidden" name="csrf" value="([0-9a-f]{64})">'
)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    running = SmtpSink().start()
    yield running
    running.stop()


@pytest.fixture
def db(reviewed_db: Path, tmp_path: Path) -> Path:
    """The reviewed example run, its pairs approved and published: what a digest holds."""
    copied = copy_db(reviewed_db, tmp_path)
    publish_every_pair(Store(copied), tmp_path / "published")
    return copied


def mail_settings(sink: SmtpSink) -> Settings:
    return Settings(smtp_host="127.0.0.1", smtp_port=sink.port, smtp_max_per_minute=6000, site_url=SITE)


def sign_up(server: VoteServer, address: str) -> httpx2.Response:
    """A reader opens the pair's page and posts its sign-up form."""
    [target] = server.store.vote_targets()
    with httpx2.Client(base_url=server.url, timeout=10) as client:
        page = client.get(f"/runs/{target.run_id}/pairs/1")
        match = _SIGNUP_CSRF.search(page.text)
        assert match, "no sign-up form on the served page"
        return client.post("/newsletter", data={"email": address, "consent": "yes", "csrf": match.group(1)})


def follow(server: VoteServer, link: str) -> httpx2.Response:
    """Open a mailed link on `server` (whatever host the mail named) and press its one button."""
    parts = urlsplit(link)
    with httpx2.Client(base_url=server.url, timeout=10) as client:
        page = client.get(f"{parts.path}?{parts.query}")
        assert page.status_code == 200 and "<script" not in page.text
        action = re.search(r'<form method="post" action="([^"]+)">', page.text)
        assert action
        return client.post(action.group(1).replace("&amp;", "&"), data={"List-Unsubscribe": "One-Click"})


def confirm_link(mail_text: str) -> str:
    match = re.search(r"https?://\S+/newsletter/confirm\?token=\S+", mail_text)
    assert match, mail_text
    return match.group(0)


def subscribed(server: VoteServer, sink: SmtpSink, *addresses: str) -> None:
    """Sign each address up on the page and confirm it from its mail."""
    for address in addresses:
        assert "Check your inbox" in sign_up(server, address).text
        deadline = time.monotonic() + 10
        while not sink.to(address):
            assert time.monotonic() < deadline, "no confirmation mail"
            time.sleep(0.02)
        assert "Signed up" in follow(server, confirm_link(sink.to(address)[-1].part("plain"))).text


def digest(db: Path, sink: SmtpSink, *extra: str) -> subprocess.CompletedProcess:
    return run_panel(
        "digest",
        "--send",
        "--db",
        str(db),
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        str(sink.port),
        "--site-url",
        SITE,
        *extra,
    )


def test_sign_up_confirm_then_the_digest_arrives_with_the_pairs_and_a_second_send_sends_none(
    db: Path, sink: SmtpSink
) -> None:
    with VoteServer(Store(db), mail=mail_settings(sink)) as server:
        [target] = server.store.vote_targets()
        subscribed(server, sink, "reader@example.org")
    [confirmation] = sink.to("reader@example.org")
    assert confirmation.message["Subject"] == "Confirm your sign-up to Weekly AI Tool Verdicts"
    assert Store(db).confirmed_subscribers() == ["reader@example.org"]

    first = digest(db, sink)
    assert first.returncode == 0, first.stderr
    assert "sent 1, refused 0, already sent before 0" in first.stdout
    mail = sink.to("reader@example.org")[-1]
    assert mail.rcpt_tos == ["reader@example.org"]
    text, html = mail.part("plain"), mail.part("html")
    title = f"{target.left_name} vs {target.right_name}"
    assert title in text and title in html and "Panel verdict: ship either" in text
    assert f"{SITE}/runs/{target.run_id}/pairs/1" in text
    assert re.search(r"\d+% of the panel say ship", text)
    unsubscribe = mail.message["List-Unsubscribe"]
    assert unsubscribe.startswith(f"<{SITE}/newsletter/unsubscribe?token=")
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Inline CSS only; nothing the mail client would fetch or run.
    assert "<script" not in html and "<img" not in html and "<link" not in html and "<style" not in html
    assert not re.search(r"""src=|url\(""", html)

    second = digest(db, sink)
    assert second.returncode == 0 and "sent 0, refused 0, already sent before 1" in second.stdout
    assert len(sink.to("reader@example.org")) == 2  # the confirmation and one digest


def test_a_repeat_sign_up_answers_the_same_and_adds_no_subscriber(db: Path, sink: SmtpSink) -> None:
    with VoteServer(Store(db), mail=mail_settings(sink)) as server:
        subscribed(server, sink, "twice@example.org")
        again = sign_up(server, "Twice@EXAMPLE.org")
        fresh = sign_up(server, "new@example.org")
        assert again.status_code == fresh.status_code == 200
        assert re.sub(r"[0-9a-f]{64}", "", again.text) == re.sub(r"[0-9a-f]{64}", "", fresh.text)
        sink.wait_for(2)
        time.sleep(0.3)
    assert [m.rcpt_tos for m in sink.received] == [["twice@example.org"], ["new@example.org"]]
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(DISTINCT address) FROM subscriber_events").fetchone() == (2,)
    assert Store(db).confirmed_subscribers() == ["twice@example.org"]


def test_the_unsubscribe_link_stops_the_next_digest_and_hostile_text_arrives_escaped(
    db: Path, sink: SmtpSink, tmp_path: Path
) -> None:
    with VoteServer(Store(db), mail=mail_settings(sink)) as server:
        subscribed(server, sink, "stays@example.org", "leaves@example.org")
    assert digest(db, sink).returncode == 0
    link = sink.to("leaves@example.org")[-1].message["List-Unsubscribe"].strip("<>")
    with VoteServer(Store(db), mail=mail_settings(sink)) as server:
        assert "Unsubscribed" in follow(server, link).text
        assert "Unsubscribed" in follow(server, link).text  # a second click changes nothing
    # The next digest: a new comparison, of a hostile card, reviewed into the same database.
    hostile = dict(GOOD_CARD, name="Evil <script>alert(1)</script>\u202eTool", tagline="x")
    run_file = tmp_path / "hostile.yaml"
    run_file.write_text(yaml.safe_dump({"title": "Next", "pairs": [[hostile, GOOD_CARD]]}), encoding="utf-8")
    with FakeOpenAI(responder=reference_reviewers()) as fake:
        make_draft(fake, Settings(db_path=db, out_dir=tmp_path / "pages", max_retries=1, timeout_s=10), run_file)
    publish_every_pair(Store(db), tmp_path / "published")
    before = len(sink.received)
    result = digest(db, sink)
    assert result.returncode == 0 and "sent 1," in result.stdout, result.stdout + result.stderr
    [mail] = sink.received[before:]
    assert mail.rcpt_tos == ["stays@example.org"]
    html, text = mail.part("html"), mail.part("plain")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
    assert "\u202e" not in html and "\u202e" not in text and "\u202e" not in str(mail.message["Subject"])
    assert "Evil <script>alert(1)</script>Tool" in text  # the text part is plain text, cleaned as pages clean it


def test_kill_9_mid_send_then_rerun_sends_each_missing_mail_exactly_once(
    db: Path, sink: SmtpSink, tmp_path: Path
) -> None:
    store = Store(db)
    addresses = [f"reader{n}@example.org" for n in range(5)]
    for address in addresses:
        token, token_hash = new_token()
        assert store.subscribe(address, token_hash) and store.confirm(token_hash)
    project = tmp_path / "project"
    project.mkdir()
    (project / "panel.toml").write_text("[smtp]\nmax_per_minute = 6000\n", encoding="utf-8")
    sink.accept_before_hold = 2
    env = dict(os.environ, PANEL_SMTP_HOST="127.0.0.1", PANEL_SMTP_PORT=str(sink.port))
    sender = subprocess.Popen(
        [*PANEL, "digest", "--send", "--db", str(db)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert sink.holding.wait(30), "the third mail never reached the SMTP server"
    os.kill(sender.pid, signal.SIGKILL)
    sender.wait(10)
    sink.release()
    sink.accept_before_hold = None
    assert len(sink.received) == 2
    rerun = run_panel("digest", "--send", "--db", str(db), cwd=project, env_extra=env)
    assert rerun.returncode == 0, rerun.stderr
    assert "sent 3, refused 0, already sent before 2 (1 left mid-send" in rerun.stdout
    assert sorted(rcpt for mail in sink.received for rcpt in mail.rcpt_tos) == addresses
    assert "sent 0," in run_panel("digest", "--send", "--db", str(db), cwd=project, env_extra=env).stdout


def test_a_permanent_refusal_is_recorded_and_skipped_and_a_temporary_one_retried(db: Path, sink: SmtpSink) -> None:
    store = Store(db)
    for address in ("gone@example.org", "here@example.org"):
        token, token_hash = new_token()
        store.subscribe(address, token_hash)
        store.confirm(token_hash)
    sink.refuse = {"gone@example.org": "550 5.1.1 no such user"}
    sink.temporary = 2
    settings = mail_settings(sink)
    made = build_digest(store, *_window(), SITE)
    with SmtpSender(settings, backoff_s=0.01) as smtp:
        report = send_digest(store, made, smtp, SITE, _window())
    assert (report.sent, report.failed) == (1, 1)
    assert [m.rcpt_tos for m in sink.received] == [["here@example.org"]]
    assert store.send_statuses(made.digest_id) == {"gone@example.org": "failed", "here@example.org": "sent"}
    with SmtpSender(settings) as smtp:
        assert send_digest(store, made, smtp, SITE, _window()).already == 2


def _window() -> tuple:
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    return now - timedelta(days=7), now


def test_no_field_can_add_a_header_or_a_recipient() -> None:
    name = "Tool\r\nBcc: victim@example.org\r\nX-Evil: 1"
    item = DigestItem(f"{name} vs B", "ship with B", None, None, ((name, "50%"),), "https://x.example/runs/a/pairs/1")
    made = Digest("abc", f"Weekly AI Tool Verdicts: {name}", (item,), (("a", 0),))
    raw = digest_message(made, "panel@example.org", "to@example.org", "https://x.example/u?token=t").as_bytes()
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in headers and b"\nX-Evil:" not in headers
    assert b"Subject: Weekly AI Tool Verdicts: Tool Bcc: victim@example.org X-Evil: 1" in headers
    for hostile in ("a@example.org\r\nBcc: b@example.org", "a@example.org, b@example.org", "not an address"):
        with pytest.raises(MailError):
            normalise_address(hostile)
    assert normalise_address("  Reader@Example.ORG ") == "reader@example.org"


def test_sign_up_refuses_forged_cookie_csrf_origin_bad_address_and_floods(db: Path, sink: SmtpSink) -> None:
    with VoteServer(Store(db), mail=mail_settings(sink)) as server:
        with httpx2.Client(base_url=server.url, timeout=10) as client:
            form = {"email": "a@example.org", "consent": "yes", "csrf": "0" * 64}
            assert client.post("/newsletter", data=form).status_code == 403  # no cookie this server issued
            page = client.get("/newsletter")
            csrf = _SIGNUP_CSRF.search(page.text).group(1)  # type: ignore[union-attr]
            assert client.post("/newsletter", data=form).status_code == 403  # a CSRF token it did not issue
            foreign = client.post("/newsletter", data=dict(form, csrf=csrf), headers={"origin": "https://evil.example"})
            assert foreign.status_code == 403
            bad = client.post("/newsletter", data=dict(form, csrf=csrf, email="<b>x</b>@@nowhere"))
            assert bad.status_code == 400 and "not a valid email address" in bad.text and "<b>x" not in bad.text
            assert client.post("/newsletter", data=dict(form, csrf=csrf, email="a" * 2000)).status_code == 413
            evil_host = client.get("/newsletter", headers={"host": "evil.example"})
            assert evil_host.status_code == 400 and "content-security-policy" in evil_host.headers
            assert client.get("/newsletter/confirm?token=" + "A" * 43).status_code == 200  # a button, no change
            assert client.post("/newsletter/confirm?token=" + "A" * 43).status_code == 404
            statuses = [client.post("/newsletter", data=dict(form, csrf=csrf)).status_code for _ in range(12)]
            assert statuses.count(200) == 9 and statuses[-1] == 429  # 10 an hour per address, the bad one counted
    assert {rcpt for m in sink.received for rcpt in m.rcpt_tos} <= {"a@example.org"}


def test_static_pages_link_the_configured_sign_up_url_and_serve_and_digest_take_smtp_settings(
    db: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "panel.toml").write_text(
        '[smtp]\nhost = "mail.example"\nport = 587\nsecurity = "starttls"\n'
        '[site]\nsignup_url = "https://verdicts.example/join"\n',
        encoding="utf-8",
    )
    rendered = run_panel("render", "--db", str(db), "--out", str(tmp_path / "pages"), cwd=project)
    assert rendered.returncode == 0, rendered.stderr
    [page] = (tmp_path / "pages").rglob("*.html")
    html = page.read_text(encoding="utf-8")
    assert "Get the next comparison in your inbox" in html and "<form" not in html
    assert 'href="https://verdicts.example/join"' in html
    assert "(<https://verdicts.example/join>)" in page.with_suffix(".md").read_text(encoding="utf-8")
    shown = run_panel("config", cwd=project, env_extra={"PANEL_SMTP_PORT": "2525"}).stdout
    assert re.search(r"panel\.toml:2\s+smtp\.host=mail\.example", shown)
    assert re.search(r"env PANEL_SMTP_PORT\s+smtp\.port=2525", shown)
    assert re.search(r"panel\.toml:4\s+smtp\.security=starttls", shown)
    bad = run_panel("digest", "--db", str(db), "--smtp-port", "0", cwd=project)
    assert bad.returncode == 2 and "--smtp-port" in bad.stderr


def test_pages_a_review_writes_link_the_sign_up_page_of_the_configured_site(tmp_path: Path) -> None:
    settings = Settings(db_path=tmp_path / "panel.duckdb", out_dir=tmp_path / "pages", site_url=SITE)
    with FakeOpenAI(responder=reference_reviewers()) as fake:
        draft = make_draft(fake, settings, EXAMPLE_RUN)
    [page] = draft.pages
    assert f'href="{SITE}/newsletter"' in page.read_text(encoding="utf-8")
    assert f"(<{SITE}/newsletter>)" in page.with_suffix(".md").read_text(encoding="utf-8")
