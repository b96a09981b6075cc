"""`panel desk` over HTTP: what it refuses (no token, wrong CSRF, forged Host, oversized bodies, foreign
Origin), edits stored exactly as `panel override` stores them, approval and publication with their history,
the writer lock taken per write only, and `panel publish` from the command line."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx2
import pytest

from panel.ask_again import NOTE_PREFIX
from panel.editorial import pair_state, pair_status
from panel.store import Store
from panel.tally import tally_run
from panel.web.desk import DeskServer
from tests.desk_clients import (
    TLS,
    csrf_of,
    desk_settings,
    first_pair_path,
    job_page_when_done,
    noted_responder,
    pair_form,
    signed_in,
)
from tests.fake_openai import FakeOpenAI
from tests.helpers import PANEL, chat_requests, run_panel, writer_lock_held_elsewhere


@pytest.fixture
def noted_fake() -> Iterator[FakeOpenAI]:
    """The fake endpoint: the reference labels, and a reviewer asked again with a note skips and quotes it."""
    with FakeOpenAI(responder=noted_responder()) as server:
        yield server


@pytest.fixture
def desk(store: Store, tmp_path: Path, noted_fake: FakeOpenAI) -> Iterator[DeskServer]:
    with DeskServer(desk_settings(store, tmp_path, noted_fake.base_url, editor="Ada")) as running:
        yield running


def assert_desk_headers(response: httpx2.Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "script-src 'none'" in csp and "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def ship_percents(client: httpx2.Client, path: str) -> list[str]:
    """The Panel ship figures of the preview, left tool first."""
    preview = client.get(path + "/preview").text
    return re.findall(r"<strong>([^<]+)</strong><span>Panel ship</span>", preview)


def override_rows(store: Store) -> list[tuple]:
    with duckdb.connect(str(store.path), read_only=True) as con:
        return con.execute(
            "SELECT persona_id, verdict, review, editor, note FROM overrides ORDER BY override_id"
        ).fetchall()


def test_every_request_without_the_token_or_its_cookie_is_refused(desk: DeskServer, store: Store) -> None:
    path = first_pair_path(store)
    stranger = httpx2.Client(base_url=desk.url, timeout=10, verify=TLS)
    for method, url in (("GET", "/"), ("GET", path), ("GET", path + "/preview"), ("POST", path + "/approve")):
        refused = stranger.request(method, url)
        assert refused.status_code == 403 and refused.text.count("\n") == 1
        assert_desk_headers(refused)
    assert stranger.get("/?token=" + "x" * 43).status_code == 403
    made_up = {"cookie": "panel_desk=" + "A" * 22 + "." + "0" * 64}
    assert stranger.get("/", headers=made_up).status_code == 403
    assert stranger.cookies.get("panel_desk") is None


def test_the_token_becomes_a_strict_httponly_cookie_and_leaves_the_url(desk: DeskServer) -> None:
    client = httpx2.Client(base_url=desk.url, timeout=10, verify=TLS)
    traded = client.get(f"/runs?token={desk.access.token}&x=1")
    assert traded.status_code == 303 and traded.headers["location"] == "/runs?x=1"
    cookie = traded.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/").status_code == 200


def test_a_wrong_csrf_token_is_refused_and_stores_nothing(desk: DeskServer, store: Store) -> None:
    client, path = signed_in(desk), first_pair_path(store)
    [left, _] = tally_run(store.load_run(store.resolve_run_id(None))).pairs[0].tools
    form = {"persona": "business", "tool": left.tool_id, "verdict": "ship"}
    for csrf in ("0" * 64, "", "é"):
        refused = client.post(path + "/edit", data={**form, "csrf": csrf})
        assert refused.status_code == 403 and refused.text.count("\n") == 1
    assert (
        signed_in(desk).post(path + "/edit", data={**form, "csrf": csrf_of(client.get(path).text)}).status_code == 403
    )
    assert override_rows(store) == []


def test_a_forged_host_is_refused_with_400_and_the_headers(desk: DeskServer) -> None:
    client = signed_in(desk)
    forged = client.get("/", headers={"host": "evil.example"})
    assert forged.status_code == 400
    assert_desk_headers(forged)
    assert client.get("/", headers={"host": f"localhost:{desk.port}"}).status_code == 200


def test_an_oversized_body_is_refused_with_413(desk: DeskServer, store: Store) -> None:
    client, path = signed_in(desk), first_pair_path(store)
    csrf = csrf_of(client.get(path).text)
    refused = client.post(path + "/edit", data={"csrf": csrf, "persona": "business", "quote": "x" * 70_000})
    assert refused.status_code == 413
    assert_desk_headers(refused)
    assert override_rows(store) == []


def test_a_post_from_another_origin_is_refused(desk: DeskServer, store: Store) -> None:
    client, path = signed_in(desk), first_pair_path(store)
    csrf = csrf_of(client.get(path).text)
    refused = client.post(path + "/approve", data={"csrf": csrf}, headers={"origin": "http://evil.example"})
    assert refused.status_code == 403
    assert store.approvals(store.resolve_run_id(None)) == []


def test_a_flip_is_stored_as_panel_override_stores_it_and_changes_the_panel_ship(
    desk: DeskServer, store: Store
) -> None:
    client, path = signed_in(desk), first_pair_path(store)
    page = client.get(path).text
    [left, _] = tally_run(store.load_run(store.resolve_run_id(None))).pairs[0].tools
    assert ship_percents(client, path) == ["75%", "75%"]
    flipped = client.post(
        path + "/edit", data={"csrf": csrf_of(page), "persona": "business", "tool": left.tool_id, "verdict": "ship"}
    )
    assert flipped.status_code == 303 and flipped.headers["location"] == path + "?done=saved"
    assert ship_percents(client, path) == ["100%", "75%"]
    # Only the verdict: the model's quote is not stored as an edit.
    assert override_rows(store) == [("business", "ship", None, "Ada", None)]
    listed = run_panel("overrides", "--db", str(store.path))
    assert listed.returncode == 0 and "Ada" in listed.stdout


def test_an_edit_after_approval_makes_the_pair_edited_again(desk: DeskServer, store: Store) -> None:
    client, path = signed_in(desk), first_pair_path(store)
    run_id = store.resolve_run_id(None)
    csrf = csrf_of(client.get(path).text)
    assert client.post(path + "/approve", data={"csrf": csrf}).status_code == 303
    pair = tally_run(store.load_run(run_id)).pairs[0]
    assert pair_status(pair, store.approvals(run_id), []) == "approved"
    form = {"csrf": csrf, "persona": "skeptic", "tool": pair.left.tool_id, "quote": "Too small to trust. " * 3}
    assert client.post(path + "/edit", data=form).status_code == 303
    edited = tally_run(store.load_run(run_id)).pairs[0]
    assert pair_state(edited) != pair_state(pair)
    assert pair_status(edited, store.approvals(run_id), []) == "edited"
    refused = client.post(path + "/publish", data={"csrf": csrf})
    assert refused.status_code == 400 and "was edited since its approval" in refused.text
    assert not (desk.publish_dir).exists()


def test_publishing_writes_the_files_and_republishing_replaces_them_keeping_the_history(
    desk: DeskServer, store: Store
) -> None:
    client, path = signed_in(desk), first_pair_path(store)
    run_id = store.resolve_run_id(None)
    csrf = csrf_of(client.get(path).text)
    [left, _] = tally_run(store.load_run(run_id)).pairs[0].tools
    for verdict in ("ship", "skip"):
        assert client.post(path + "/approve", data={"csrf": csrf}).status_code == 303
        assert client.post(path + "/publish", data={"csrf": csrf}).status_code == 303
        html = (desk.publish_dir / "smolvlm2-2b-vs-perplexity-sonar-pro-2-api.html").read_text(encoding="utf-8")
        assert "<script" not in html
        edit = {"csrf": csrf, "persona": "business", "tool": left.tool_id, "verdict": verdict}
        assert client.post(path + "/edit", data=edit).status_code == 303
    assert sorted(p.name for p in desk.publish_dir.iterdir()) == [
        "smolvlm2-2b-vs-perplexity-sonar-pro-2-api.html",
        "smolvlm2-2b-vs-perplexity-sonar-pro-2-api.md",
    ]
    published = store.publications(run_id)
    assert [p.editor for p in published] == ["Ada", "Ada"] and published[0].state_hash != published[1].state_hash
    assert "100%" in html  # the second publication: business flipped to ship on the left tool
    assert len(store.approvals(run_id)) == 2


def test_a_lock_held_elsewhere_is_a_one_line_notice_and_the_desk_holds_none_between_edits(
    desk: DeskServer, store: Store
) -> None:
    client, path = signed_in(desk), first_pair_path(store)
    csrf = csrf_of(client.get(path).text)
    with writer_lock_held_elsewhere(store.path):
        busy = client.post(path + "/approve", data={"csrf": csrf})
    assert busy.status_code == 409
    assert "another panel run is writing this database" in busy.text and "Traceback" not in busy.text
    assert store.approvals(store.resolve_run_id(None)) == []
    # The desk is open and has just written: the command-line writers and readers still work beside it.
    assert client.post(path + "/approve", data={"csrf": csrf}).status_code == 303
    flip = run_panel(
        "override",
        "--db",
        str(store.path),
        "--tool",
        "SmolVLM2-2B",
        "--persona",
        "builder",
        "--verdict",
        "skip",
        "--editor",
        "Bo",
        "--out",
        str(desk.publish_dir.parent / "pages"),
    )
    assert flip.returncode == 0, flip.stderr
    query = run_panel("sql", "SELECT count(*) AS n FROM approvals", "--db", str(store.path), "--format", "csv")
    assert query.returncode == 0 and query.stdout.split() == ["n", "1"]
    assert "edited" in client.get("/").text  # the CLI's edit left the desk's approval behind


def test_a_pair_number_of_5000_digits_or_an_unknown_run_is_404(desk: DeskServer, store: Store) -> None:
    client = signed_in(desk)
    run_id = store.resolve_run_id(None)
    assert client.get(f"/runs/{run_id}/pairs/{'9' * 5000}").status_code == 404
    assert client.get(f"/runs/{run_id}/pairs/2").status_code == 404
    assert client.get("/runs/abcdef123456/pairs/1").status_code == 404


def test_panel_publish_needs_an_approval_and_records_who_published(store: Store, tmp_path: Path) -> None:
    db = str(store.path)
    (tmp_path / "panel.toml").write_text('[paths]\npublish = "out"\n[desk]\neditor = "Grace"\n', encoding="utf-8")
    env = {"PANEL_PROJECT": str(tmp_path)}
    refused = run_panel("publish", "--db", db, env_extra=env)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--approve" in refused.stderr
    done = run_panel("publish", "--db", db, "--pair", "1", "--approve", env_extra=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "smolvlm2-2b-vs-perplexity-sonar-pro-2-api.md").is_file()
    assert [p.editor for p in store.publications(store.resolve_run_id(None))] == ["Grace"]
    shown = run_panel("config", env_extra=env)
    assert re.search(r"panel\.toml:4\s+desk\.editor=Grace", shown.stdout), shown.stdout


def test_panel_desk_prints_one_tokened_url_and_warns_off_loopback(store: Store) -> None:
    desk = subprocess.Popen(
        [*PANEL, "desk", "--port", "0", "--host", "0.0.0.0", "--db", str(store.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert desk.stdout is not None and desk.stderr is not None
        line = desk.stdout.readline()
        urls = re.findall(r"http://\S+", line)
        assert len(urls) == 1 and re.fullmatch(r"http://0\.0\.0\.0:\d+/\?token=[A-Za-z0-9_-]{43}", urls[0])
        client = httpx2.Client(timeout=10, verify=TLS)
        local = urls[0].replace("0.0.0.0", "127.0.0.1")
        assert client.get(local.split("?")[0]).status_code == 403
        assert client.get(local).status_code == 303
    finally:
        desk.terminate()
        desk.wait(timeout=30)
    assert "warning: the desk listens on 0.0.0.0" in desk.stderr.read()


def test_the_configured_editor_signs_panel_override_too(store: Store, tmp_path: Path) -> None:
    (tmp_path / "panel.toml").write_text('[desk]\neditor = "Grace Hopper"\n', encoding="utf-8")
    args = ("override", "--db", str(store.path), "--out", str(tmp_path / "pages"), "--tool", "SmolVLM2-2B")
    done = run_panel(*args, "--persona", "builder", "--verdict", "skip", env_extra={"PANEL_PROJECT": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "(by Grace Hopper)" in done.stdout
    assert override_rows(store)[-1][3] == "Grace Hopper"


# --- ask again, answer versions, add a pair: the desk's jobs ------------------------------------------------
def test_asking_again_from_the_desk_sends_the_note_as_its_own_message_and_a_picked_version_needs_a_new_approval(
    desk: DeskServer, store: Store, noted_fake: FakeOpenAI
) -> None:
    client, path = signed_in(desk), first_pair_path(store)
    run_id = store.resolve_run_id(None)
    [_, right] = tally_run(store.load_run(run_id)).pairs[0].tools
    csrf = csrf_of(client.get(path).text)
    assert client.post(path + "/approve", data={"csrf": csrf}).status_code == 303
    note = "Weigh the <offline> use case."
    asked = client.post(
        path + "/ask-again", data={"csrf": csrf, "persona": "skeptic", "tool": right.tool_id, "note": note}
    )
    assert asked.status_code == 303 and re.fullmatch(r"/jobs/job-\d+", asked.headers["location"])
    done, _ = job_page_when_done(client, asked.headers["location"])
    assert "finished" in done and f'href="{path}"' in done and "version 1 of Perplexity Sonar Pro 2 API" in done
    assert "<h1>Asking the skeptic again about Perplexity Sonar Pro 2 API <span" in done
    [question] = chat_requests(noted_fake)
    messages = question.body["messages"]
    assert messages[-1] == {"role": "user", "content": NOTE_PREFIX + note}
    assert note not in json.dumps([m for m in messages[:-1]])  # not in the system role, not mixed with vendor text

    page = client.get(path).text
    assert "Version 1" in page and "note: Weigh the &lt;offline&gt; use case." in page and "<offline>" not in page
    assert ship_percents(client, path) == ["75%", "75%"]  # the page keeps the original until a version is picked
    assert "approved" in client.get("/").text
    pick = {"csrf": csrf, "persona": "skeptic", "tool": right.tool_id, "version": "1"}
    picked = client.post(path + "/version", data=pick)
    assert picked.status_code == 303 and picked.headers["location"] == path + "?done=picked"
    assert ship_percents(client, path) == ["75%", "50%"]
    assert "The editor wrote: Weigh the &lt;offline&gt; use case." in client.get(path + "/preview").text
    pair = tally_run(store.load_run(run_id)).pairs[0]
    assert pair.right.answers["skeptic"].version == 1
    assert pair_status(pair, store.approvals(run_id), []) == "edited"  # the approval was of version 0
    assert ">edited<" in client.get("/").text
    refused = client.post(path + "/publish", data={"csrf": csrf})
    assert refused.status_code == 400 and "was edited since its approval" in refused.text
    unknown = client.post(path + "/version", data={**pick, "version": "7"})
    assert unknown.status_code == 400 and "has no version 7 (versions: 0, 1)" in unknown.text


def test_the_add_pair_form_refuses_a_bad_card_in_one_escaped_line_and_keeps_what_was_typed(
    desk: DeskServer,
) -> None:
    client = signed_in(desk)
    form = pair_form(left="Acme <b>Vector</b>") | {"right.pricing.entry": "", "csrf": csrf_of(client.get("/").text)}
    refused = client.post("/pairs", data=form)
    assert refused.status_code == 400
    [line] = re.findall(r'<p class="notice" role="alert">(.*?)</p>', refused.text, re.DOTALL)
    assert "form: tool 'Other Vector': field 'pricing.entry'" in html.unescape(line) and "\n" not in line
    assert 'value="Acme &lt;b&gt;Vector&lt;/b&gt;"' in refused.text and "<b>Vector" not in refused.text
    assert "A vector database.</textarea>" in refused.text  # the description kept
    assert not (desk.settings.runs_dir / "desk").exists() or not any((desk.settings.runs_dir / "desk").glob("*.yaml"))


def test_an_added_pair_lands_verdict_by_verdict_then_links_to_its_draft(desk: DeskServer, store: Store) -> None:
    client = signed_in(desk)
    started = client.post("/pairs", data=pair_form() | {"csrf": csrf_of(client.get("/").text)})
    assert started.status_code == 303
    done, seen = job_page_when_done(client, started.headers["location"], also="/")  # the list read as it lands
    assert "finished" in done and "<strong>8 of 8</strong>" in done, re.sub(r"(?s).*<main>", "", done)[:1500]
    assert seen[-1].startswith("<strong>8 of 8</strong>")
    pair_link = re.search(r'href="(/runs/[0-9a-f]+/pairs/1)"><strong>Open the new pair', done)
    assert pair_link is not None, re.sub(r"(?s).*<main>", "", done)[:1500]
    assert (desk.settings.runs_dir / "desk" / "acme-vector-vs-other-vector.yaml").is_file()
    pair_page = client.get(pair_link.group(1)).text
    assert "Acme Vector vs Other Vector" in pair_page and '<span class="status draft">draft</span>' in pair_page
    listed = client.get("/").text
    assert listed.index("Acme Vector vs Other Vector") < listed.index("SmolVLM2-2B vs Perplexity")  # newest first
    assert listed.count('<span class="status draft">draft</span>') == 2
    assert "job-1</a> Reviewing acme-vector-vs-other-vector.yaml · <strong>finished</strong> (8 of 8)" in listed


def test_a_dead_endpoint_fails_the_job_in_one_escaped_line_and_the_desk_goes_on(store: Store, tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}/<i>v1</i>"
    # No model configured: the job asks the endpoint which it serves, and cannot connect.
    settings = dataclasses.replace(desk_settings(store, tmp_path, dead, editor="Bo"), model=None)
    with DeskServer(settings) as desk:
        client, path = signed_in(desk), first_pair_path(store)
        [left, _] = tally_run(store.load_run(store.resolve_run_id(None))).pairs[0].tools
        csrf = csrf_of(client.get(path).text)
        asked = client.post(path + "/ask-again", data={"csrf": csrf, "persona": "builder", "tool": left.tool_id})
        done, _ = job_page_when_done(client, asked.headers["location"])
        [line] = re.findall(r'<p class="notice" role="alert">Failed: (.*?)</p>', done, re.DOTALL)
        assert "cannot connect to" in line and "&lt;i&gt;v1&lt;/i&gt;" in line and "<i>" not in done
        assert client.get(path).status_code == 200
    assert store.versions(store.resolve_run_id(None), 0, left.tool_id, "builder")[-1].number == 0


def test_an_edit_while_a_job_holds_the_writer_lock_gets_the_one_line_409(store: Store, tmp_path: Path) -> None:
    answering = threading.Event()
    release = threading.Event()
    reviewers = noted_responder()

    def slow(body: dict) -> str:
        answering.set()
        release.wait(30)
        return reviewers(body)

    with (
        FakeOpenAI(responder=slow) as server,
        DeskServer(desk_settings(store, tmp_path, server.base_url, editor="Bo")) as desk,
    ):
        client, path = signed_in(desk), first_pair_path(store)
        [left, _] = tally_run(store.load_run(store.resolve_run_id(None))).pairs[0].tools
        csrf = csrf_of(client.get(path).text)
        form = {"csrf": csrf, "persona": "builder", "tool": left.tool_id, "note": "Shorter."}
        asked = client.post(path + "/ask-again", data=form)
        try:
            assert answering.wait(30)  # the job holds the lock while the model answers
            busy = client.post(
                path + "/edit", data={"csrf": csrf, "persona": "business", "tool": left.tool_id, "verdict": "ship"}
            )
            assert busy.status_code == 409 and "another panel run is writing this database" in busy.text
            assert client.get("/").status_code == 200  # reading goes on
        finally:
            release.set()
        done, _ = job_page_when_done(client, asked.headers["location"])
        assert "finished" in done
        again = client.post(
            path + "/edit", data={"csrf": csrf, "persona": "business", "tool": left.tool_id, "verdict": "ship"}
        )
        assert again.status_code == 303
    assert override_rows(store) == [("business", "ship", None, "Bo", None)]


def test_the_jobs_routes_refuse_no_token_a_wrong_csrf_a_forged_host_and_oversized_bodies(
    desk: DeskServer, store: Store
) -> None:
    path = first_pair_path(store)
    posts = {
        path + "/ask-again": {"persona": "skeptic"},
        path + "/version": {"persona": "skeptic", "version": "0"},
        "/pairs": pair_form(),
    }
    stranger = httpx2.Client(base_url=desk.url, timeout=10, verify=TLS)
    for url, form in posts.items():
        refused = stranger.post(url, data=form)
        assert refused.status_code == 403 and refused.text.count("\n") == 1
        assert_desk_headers(refused)
    assert stranger.get("/jobs/job-1").status_code == 403
    client = signed_in(desk)
    for url, form in posts.items():
        assert client.post(url, data={**form, "csrf": "0" * 64}).status_code == 403
        forged = client.post(url, data=form, headers={"host": "evil.example"})
        assert forged.status_code == 400
        assert_desk_headers(forged)
    csrf = csrf_of(client.get("/").text)
    assert client.post(path + "/ask-again", data={"csrf": csrf, "note": "x" * 70_000}).status_code == 413
    big = client.post("/pairs", data=pair_form() | {"csrf": csrf, "left.description": "é" * 30_000})
    assert big.status_code == 413
    assert_desk_headers(big)
    assert client.get("/jobs/job-1").status_code == 404 and client.get("/jobs/../x").status_code == 404
    assert desk.app is not None and desk.app.jobs.recent() == []  # nothing was started
