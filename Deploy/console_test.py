#!/usr/bin/env python3
"""The browser tests of the supervision console, run by ./Deploy/console (Python 3.11, selenium 4).

Drives Debian's Chromium (/usr/bin/chromium, /usr/bin/chromedriver; never Selenium Manager) against
a running `itaku serve` with the demo and the seeding of Deploy/console. Environment: ITAKU_URL,
ITAKU_CLIENT_ADMIN_KEY (acme-retail), ITAKU_OTHER_CLIENT_ADMIN_KEY (kobe-insurance),
ITAKU_REVIEWER_KEY, ITAKU_OPERATOR_KEY, ITAKU_DEMO_PHONE, ITAKU_SCREENSHOTS. The tests run in
order and build on each other (one browser, one session at a time). Downloads and CSRF probes go
through urllib with the browser's cookies. Exit status: 0 when every test passed, 1 otherwise.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException, NoSuchElementException, StaleElementReferenceException, WebDriverException)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE = os.environ["ITAKU_URL"].rstrip("/")
SHOTS = os.environ.get("ITAKU_SCREENSHOTS", ".itaku/screenshots")
KEYS = {name: os.environ[f"ITAKU_{name}_KEY"] for name in ("CLIENT_ADMIN", "OTHER_CLIENT_ADMIN", "REVIEWER", "OPERATOR")}
PHONE = os.environ.get("ITAKU_DEMO_PHONE", "")
T, OTHER, PURPOSE = "acme-retail", "kobe-insurance", "order-support"
SEARCH_FIELDS = ["agent", "purpose", "operation", "decision", "reason", "from", "to",
                 "lookup_kind", "lookup_value", "record", "case", "limit"]
driver = None


# ---- helpers: browser -------------------------------------------------------------------------

def url(path):
    return path if path.startswith("http") else f"{BASE}/console{path}"


def path():
    return urllib.parse.urlparse(driver.current_url).path


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def page_replaced(error):
    """Chromium's ways of saying an element's page is gone or being replaced (a navigation,
    a redirect after a form): "stale element", or "Node with given id does not belong to the
    document"."""
    return isinstance(error, StaleElementReferenceException) or "does not belong to the document" in str(error)


def wait_for(css, timeout=30):
    def present(d):
        try:
            return d.find_element(By.CSS_SELECTOR, css)
        except NoSuchElementException:
            return False
        except WebDriverException as error:
            if page_replaced(error):
                return False  # look again on the page that replaces it
            raise
    return WebDriverWait(driver, timeout).until(present, message=f"no {css} within {timeout} s")


def find(css):
    return driver.find_element(By.CSS_SELECTOR, css)


def finds(css):
    return driver.find_elements(By.CSS_SELECTOR, css)


def visit(p, wait_css="main#main"):
    driver.get(url(p))
    return wait_for(wait_css)


def click_to(target, wait_css, timeout=30):
    """Clicks (a selector or an element), waits for the next page to replace this one and for wait_css."""
    element = find(target) if isinstance(target, str) else target
    old = driver.find_element(By.TAG_NAME, "html")
    element.click()
    wait_replaced(old, f"no navigation after clicking {target}", timeout)
    return wait_for(wait_css, timeout)


def wait_replaced(old, message, timeout=30):
    """Waits until the page holding element `old` is gone."""
    def replaced(_):
        try:
            old.is_enabled()
            return False
        except WebDriverException as error:
            if page_replaced(error):
                return True
            raise
    WebDriverWait(driver, timeout).until(replaced, message=message)


def lang():
    return driver.find_element(By.TAG_NAME, "html").get_attribute("lang")


def set_value(element, value):
    driver.execute_script("arguments[0].value = arguments[1]", element, value)


def fill(form, name, value):
    element = form.find_element(By.NAME, name)
    if element.tag_name.lower() == "select":
        Select(element).select_by_value(value)
    else:
        set_value(element, value)


def look(name, signed_in=True):
    """The contract of every page, then a screenshot of the viewport as <name>.png."""
    check(lang() in ("ja", "en"), f"html lang is {lang()!r}")
    check(len(finds("main#main")) == 1, "not one main#main")
    check(len(finds("h1")) == 1, f"{len(finds('h1'))} h1 elements")
    if signed_in:
        for css in ("nav#nav", "form#sign-out button#sign-out-button", "a#lang-ja", "a#lang-en"):
            check(finds(css), f"no {css}")
        check(find("form#sign-out input[name=csrf]").get_attribute("value"), "the sign-out form has no csrf value")
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def error_code():
    return find("p.error-code").text.strip()


def rows():
    return finds("table#entries tr.entry")


def count_in(css):
    match = re.search(r"\d[\d,]*", find(css).text)
    check(match, f"{css} shows no number: {find(css).text!r}")
    return int(match.group().replace(",", ""))


# ---- helpers: HTTP with the browser's cookies -------------------------------------------------

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def cookies():
    return {c["name"]: c["value"] for c in driver.get_cookies()}


def fetch(target, jar=None, form=None):
    """GET (or POST a form) without following redirects: (status, headers, body bytes)."""
    headers = {"Accept-Language": "ja"}
    if jar:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers.update({"Content-Type": "application/x-www-form-urlencoded", "Origin": BASE})
    request = urllib.request.Request(url(target), data=data, headers=headers, method="POST" if form is not None else "GET")
    try:
        with OPENER.open(request, timeout=120) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def check_headers(headers, what):
    csp = headers.get("Content-Security-Policy") or ""
    check(csp, f"{what}: no Content-Security-Policy")
    check((headers.get("X-Frame-Options") or "").upper() == "DENY" or "frame-ancestors" in csp,
          f"{what}: neither X-Frame-Options DENY nor frame-ancestors")
    check("no-store" in (headers.get("Cache-Control") or ""), f"{what}: Cache-Control {headers.get('Cache-Control')!r}")


def check_page(p, status=200):
    """Fetches a console page with the session: its status and security headers; returns the body."""
    got, headers, body = fetch(p, cookies())
    check(got == status, f"{p} answered {got}, not {status}")
    check_headers(headers, p)
    return body.decode("utf-8", "replace")


def download(link_css, content_type):
    href = find(link_css).get_attribute("href")
    status, headers, body = fetch(href, cookies())
    check(status == 200, f"{link_css} ({href}) answered {status}")
    got = headers.get("Content-Type") or ""
    check(got.startswith(content_type), f"{link_css}: Content-Type {got!r}, not {content_type}")
    return href, body


def csv_text(body, what):
    text = body.decode("utf-8-sig")
    check(text.splitlines() and text.splitlines()[0].strip(), f"{what}: no header line")
    return text


def redirects_to_sign_in(status, headers, what):
    check(status in (302, 303), f"{what} answered {status}, not a redirect")
    target = urllib.parse.urlparse(headers.get("Location") or "").path
    check(target == "/console/sign-in", f"{what} redirects to {target!r}")


def sign_in(key, landing_css="nav#nav"):
    visit("/sign-in", "form#sign-in")
    find("input#key").send_keys(key)
    click_to("button#sign-in-button", landing_css)


def sign_out():
    if finds("button#sign-out-button"):
        click_to("button#sign-out-button", "form#sign-in")
    driver.delete_cookie("itaku_session")


# ---- the tests, in order ----------------------------------------------------------------------

def test_sign_in_page_and_wrong_key():
    status, headers, _ = fetch("/")
    redirects_to_sign_in(status, headers, "/console/ without a session")
    visit("/", "form#sign-in")
    check(path() == "/console/sign-in", f"/console/ led to {path()}")
    form = find("form#sign-in")
    check((form.get_attribute("method") or "").lower() == "post", "the sign-in form does not POST")
    check(urllib.parse.urlparse(form.get_attribute("action")).path == "/console/sign-in", "the sign-in form posts elsewhere")
    key = find("input#key")
    check(key.get_attribute("type") == "password" and key.get_attribute("name") == "key", "input#key is not a password named key")
    csrf = find("form#sign-in input[name=csrf]").get_attribute("value")
    check(csrf, "the sign-in form has no csrf value")
    look("sign-in", signed_in=False)
    check_page("/sign-in")
    # The wrong key's status, through urllib with the page's own cookies and form token.
    status, _, body = fetch("/sign-in", cookies(), {"csrf": csrf, "key": "itaku_not_a_key"})
    check(status == 401 and b"invalid_key" in body, f"a wrong key answered {status}")
    visit("/sign-in", "form#sign-in")
    find("input#key").send_keys("itaku_not_a_key")
    click_to("button#sign-in-button", "p.error-code")
    check(error_code() == "invalid_key", f"error code {error_code()!r}")
    check(not any(c["name"] == "itaku_session" for c in driver.get_cookies()), "a wrong key got a session")
    look("sign-in-error", signed_in=False)


def test_client_admin_sign_in_and_tenants():
    sign_in(KEYS["CLIENT_ADMIN"], "a#link-datasets")
    check(path() == f"/console/tenants/{T}/", f"the client admin landed on {path()}")
    session = next((c for c in driver.get_cookies() if c["name"] == "itaku_session"), None)
    check(session, "no itaku_session cookie")
    check(session.get("httpOnly") is True and session.get("secure") is True, f"cookie flags {session}")
    check(session.get("sameSite") == "Strict" and session.get("path") in ("/console", "/console/"), f"cookie scope {session}")
    for link in ("datasets", "purposes", "roster", "access-log", "charts", "report"):
        check(finds(f"a#link-{link}"), f"no a#link-{link} on the tenant home")
    look("tenant")
    check_page(f"/tenants/{T}/")
    visit("/tenants", "table#tenants")
    names = [a.text.strip() for a in finds("table#tenants a.tenant-link")]
    check(names == [T], f"the client admin sees tenants {names}")
    look("tenants")
    check_page("/tenants")
    click_to("table#tenants a.tenant-link", "a#link-datasets")
    check(path() == f"/console/tenants/{T}/", f"the tenant link led to {path()}")


def test_foreign_and_missing_tenant_identical_404():
    texts = {}
    for p in (f"/tenants/{OTHER}/", f"/tenants/{OTHER}/purposes", "/tenants/no-such-tenant/"):
        check_page(p, 404)
        visit(p, "p.error-code")
        check(error_code() == "not_found", f"{p}: error code {error_code()!r}")
        texts[p] = find("main#main").text
    check(len(set(texts.values())) == 1, f"the 404 pages differ: {texts}")
    look("not-found", signed_in=False)


def test_datasets():
    visit(f"/tenants/{T}/", "a#link-datasets")
    click_to("a#link-datasets", "table.dataset")
    check(finds("tr.field"), "no tr.field rows")
    for row in finds("table.dataset tr.field"):
        category = " ".join(td.text for td in row.find_elements(By.CSS_SELECTOR, "td.category"))
        if re.search(r"sensitive|要配慮|individual|個人番号", category, re.I):
            check(row.find_elements(By.CSS_SELECTOR, "span.special"), f"category {category!r} without span.special")
    # The demo's customers have health_note (sensitive) and my_number (individual number).
    specials = " ".join(s.text for s in finds("span.special"))
    check("要配慮" in specials and "個人番号" in specials, f"span.special texts: {specials!r}")
    look("datasets")
    check_page(f"/tenants/{T}/datasets")


def test_purposes_edit_and_diff():
    visit(f"/tenants/{T}/", "a#link-purposes")
    click_to("a#link-purposes", "table#purposes")
    links = {a.text.strip(): a for a in finds("table#purposes a.purpose-link")}
    check(PURPOSE in links, f"purpose links {sorted(links)}")
    look("purposes")
    click_to(links[PURPOSE], "#current-version")
    purpose_path = path()
    check(purpose_path.rstrip("/") == f"/console/tenants/{T}/purposes/{PURPOSE}", f"the purpose link led to {purpose_path}")
    old = int(find("#current-version").text.strip())
    check(finds("table#versions tr"), "no table#versions rows")
    look("purpose")
    click_to("a#edit-purpose", "textarea#definition")
    check(int(find("form#purpose-form input[name=version]").get_attribute("value")) == old, "the form's version is not the current one")
    definition = json.loads(find("textarea#definition").get_attribute("value"))
    look("purpose-edit")
    limits = definition.get("limits")
    if isinstance(limits, dict) and isinstance(limits.get("lookups_per_minute"), int):
        limits["lookups_per_minute"] += 1
        new_value = str(limits["lookups_per_minute"])
    elif isinstance(definition.get("description"), str):
        definition["description"] += " (console test)"
        new_value = definition["description"]
    else:
        definition["name"] += " (console test)"
        new_value = definition["name"]
    set_value(find("textarea#definition"), json.dumps(definition, ensure_ascii=False, indent=2))
    click_to("button#save-purpose", "#current-version")
    check(path() == purpose_path, f"saving led to {path()}")
    check(int(find("#current-version").text.strip()) == old + 1, f"version {find('#current-version').text} after saving {old}")
    form = find("form#diff-form")
    check((form.get_attribute("method") or "get").lower() == "get", "the diff form does not GET")
    for name, version in (("a", old), ("b", old + 1)):
        select = Select(form.find_element(By.CSS_SELECTOR, f"select[name={name}]"))
        try:
            select.select_by_value(str(version))
        except NoSuchElementException:
            option = next((o for o in select.options if re.search(rf"\b{version}\b", o.text)), None)
            check(option, f"select[name={name}] offers no version {version}")
            select.select_by_visible_text(option.text)
    click_to("button#diff-button", "table#diff")
    changed = finds("table#diff tr.changed")
    check(changed, "no tr.changed in the diff")
    for row in changed:
        check(row.find_elements(By.CSS_SELECTOR, "td.before") and row.find_elements(By.CSS_SELECTOR, "td.after"), "a changed row without td.before/td.after")
    afters = " ".join(td.text for td in finds("table#diff tr.changed td.after"))
    check(new_value in afters, f"the diff does not show {new_value!r}")
    look("purpose-diff")
    # Invalid JSON: the form again, naming the problem (400 invalid_json, as the API), and no new version.
    visit(f"/tenants/{T}/purposes/{PURPOSE}/edit", "textarea#definition")
    csrf = find("form#purpose-form input[name=csrf]").get_attribute("value")
    set_value(find("textarea#definition"), '{"name": "broken",')
    click_to("button#save-purpose", "main#main")
    check(finds("ul#problems") or finds("p.error-code"), "the invalid definition's page has no ul#problems or p.error-code")
    look("purpose-invalid")
    status, _, _ = fetch(f"/tenants/{T}/purposes/{PURPOSE}/edit", cookies(),
                         {"csrf": csrf, "version": str(old + 1), "definition": "{not json"})
    check(status == 400, f"an invalid definition answered {status}, not 400")
    visit(f"/tenants/{T}/purposes/{PURPOSE}", "#current-version")
    check(int(find("#current-version").text.strip()) == old + 1, "an invalid definition made a version")


def test_roster_escaping_and_csv():
    visit(f"/tenants/{T}/", "a#link-roster")
    click_to("a#link-roster", "table#roster")
    try:
        driver.switch_to.alert
        raise AssertionError("an alert is open: the agent's name ran as script")
    except NoAlertPresentException:
        pass
    assignments = finds("table#roster tr.assignment")
    check(len(assignments) >= 3, f"{len(assignments)} assignments (A0001, A0002, A0999 expected)")
    hostile = [r for r in assignments if "A0999" in r.text]
    check(hostile, "no row for A0999")
    name = hostile[0].find_element(By.CSS_SELECTOR, "td.agent-name").text
    site = hostile[0].find_element(By.CSS_SELECTOR, "td.site").text
    check(name == "<script>alert(1)</script>", f"A0999's name shows as {name!r}")
    check(site == "<b>Kobe</b>", f"A0999's site shows as {site!r}")
    check(not finds("table#roster script, table#roster b"), "markup from the agent's data made it into the DOM")
    check("&lt;script&gt;alert(1)&lt;/script&gt;" in driver.page_source, "the page source lacks the escaped name")
    look("roster")
    check_page(f"/tenants/{T}/roster")
    _, body = download("a#roster-csv", "text/csv")
    check("A0999" in csv_text(body, "roster CSV"), "the roster CSV lacks A0999")


def test_access_log_search_paging_detail_exports():
    visit(f"/tenants/{T}/", "a#link-access-log")
    click_to("a#link-access-log", "form#search")
    form = find("form#search")
    # The form posts (a phone number typed into it must reach no address bar); the page it leads
    # to carries the other filters in its address.
    check((form.get_attribute("method") or "get").lower() == "post", "the search form does not POST")
    for name in SEARCH_FIELDS:
        check(form.find_elements(By.NAME, name), f"the search form has no field {name}")
    fill(form, "operation", "lookup")
    fill(form, "limit", "2")
    click_to("button#search-button", "table#entries")
    query = urllib.parse.parse_qs(urllib.parse.urlparse(driver.current_url).query)
    check(query.get("operation") == ["lookup"] and query.get("limit") == ["2"], f"the search URL is {driver.current_url}")
    check(len(rows()) == 2, f"{len(rows())} rows on a page of 2")
    check(count_in("#result-count") >= 2, f"#result-count says {find('#result-count').text!r}")
    first = find("tr.entry a.entry-link").get_attribute("href")
    look("access-log")
    page_one = driver.current_url
    check_page(page_one)
    for link in ("jsonl", "csv", "ocsf"):
        href = find(f"a#export-{link}").get_attribute("href")
        check("operation=lookup" in href, f"a#export-{link} ({href}) lacks the filter")
    _, body = download("a#export-jsonl", "application/x-ndjson")
    lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    check(lines, "the JSONL export is empty")
    check(all(e.get("operation", "lookup") == "lookup" for e in lines), "the JSONL export has other operations")
    csv_text(download("a#export-csv", "text/csv")[1], "access-log CSV")
    _, body = download("a#export-ocsf", "")  # the contract names no media type for OCSF
    events = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    check(events and all("class_uid" in e for e in events), "OCSF events without class_uid")
    click_to("a#next-page", "table#entries")
    check(rows(), "the next page is empty")
    check(find("tr.entry a.entry-link").get_attribute("href") != first, "the next page starts with the same entry")
    driver.get(page_one)
    click_to(wait_for("tr.entry a.entry-link"), "dl#entry")
    check(finds("dl#entry dt"), "dl#entry is empty")
    look("entry")
    # Other filters: the case, the caller's phone number, the denial.
    searches = [({"operation": "lookup", "case": "CALL-1"}, 5), ({"operation": "lookup", "decision": "deny"}, 1)]
    if PHONE:
        searches.append(({"lookup_kind": "phone", "lookup_value": PHONE}, 5))
    for filters, least in searches:
        visit(f"/tenants/{T}/access-log?" + urllib.parse.urlencode(filters | {"limit": "100"}), "form#search")
        check(len(rows()) >= least, f"{filters}: {len(rows())} entries, fewer than {least}")
    if PHONE:
        # Typed into the form, the number is in no address: not the page's, not its links'.
        visit(f"/tenants/{T}/access-log", "form#search")
        form = find("form#search")
        fill(form, "lookup_kind", "phone")
        fill(form, "lookup_value", PHONE)
        fill(form, "limit", "100")
        click_to("button#search-button", "table#entries")
        digits = re.sub(r"\D", "", PHONE)
        addresses = [driver.current_url] + [a.get_attribute("href") or "" for a in finds("a")]
        leaked = [a for a in addresses if digits in re.sub(r"\D", "", urllib.parse.unquote(a))]
        check(not leaked, f"the phone number is in addresses: {leaked}")
        check("sealed=" in driver.current_url, f"the search URL is {driver.current_url}")
        check(len(rows()) >= 5, f"the phone search by the form finds {len(rows())} entries")


def test_charts():
    visit(f"/tenants/{T}/", "a#link-charts")
    click_to("a#link-charts", "svg#chart-hourly")
    for chart in ("hourly", "denials", "agents", "purposes"):
        check(finds(f"svg#chart-{chart}"), f"no svg#chart-{chart}")
        check(find(f"svg#chart-{chart}").size["width"] > 0, f"svg#chart-{chart} has no width")
    check(finds("form#period"), "no form#period")
    look("charts")
    check_page(f"/tenants/{T}/charts")
    old = driver.find_element(By.TAG_NAME, "html")
    find("form#period").submit()
    wait_replaced(old, "submitting form#period did not navigate")
    wait_for("svg#chart-agents")


def test_report_pdf_and_csv():
    visit(f"/tenants/{T}/", "a#link-report")
    click_to("a#link-report", "table#report-agents")
    look("report")
    check_page(f"/tenants/{T}/report")
    _, pdf = download("a#report-pdf", "application/pdf")
    check(pdf.startswith(b"%PDF"), f"the PDF starts with {pdf[:8]!r}")
    if shutil.which("pdftotext"):
        with tempfile.NamedTemporaryFile(suffix=".pdf") as file:
            file.write(pdf)
            file.flush()
            text = subprocess.run(["pdftotext", "-enc", "UTF-8", file.name, "-"], capture_output=True, check=True).stdout
        check("取扱状況報告" in re.sub(r"\s+", "", text.decode("utf-8", "replace")), "the PDF's text lacks 取扱状況報告")
    csv_text(download("a#report-csv", "text/csv")[1], "report CSV")


def test_language_switch():
    visit(f"/tenants/{T}/", "a#lang-en")
    home = path()
    check(lang() == "ja", f"with Accept-Language ja, html lang is {lang()!r}")
    click_to("a#lang-en", "main#main")
    check(lang() == "en" and path() == home, f"after a#lang-en: lang {lang()!r} at {path()}")
    look("lang-en")
    click_to("a#lang-ja", "main#main")
    check(lang() == "ja" and path() == home, f"after a#lang-ja: lang {lang()!r} at {path()}")


def test_csrf_refusals():
    edit = f"/tenants/{T}/purposes/{PURPOSE}/edit"
    visit(edit, "textarea#definition")
    version = find("form#purpose-form input[name=version]").get_attribute("value")
    fields = {"version": version, "definition": find("textarea#definition").get_attribute("value")}
    status, _, body = fetch(edit, cookies(), fields)
    check(status == 403 and b"csrf_failed" in body, f"an edit without csrf answered {status}")
    status, _, body = fetch(edit, cookies(), fields | {"csrf": "A" * 43})
    check(status == 403, f"an edit with a wrong csrf answered {status}")
    visit(f"/tenants/{T}/purposes/{PURPOSE}", "#current-version")
    check(find("#current-version").text.strip() == version, "a refused edit made a version")
    status, _, body = fetch("/sign-out", cookies(), {})
    check(status == 403 and b"csrf_failed" in body, f"a sign-out without csrf answered {status}")
    status, _, _ = fetch(f"/tenants/{T}/", cookies())
    check(status == 200, f"after a refused sign-out the session answers {status}")


def test_sign_out():
    visit(f"/tenants/{T}/", "button#sign-out-button")
    old = cookies()
    check("itaku_session" in old, "no session before signing out")
    click_to("button#sign-out-button", "form#sign-in")
    check(path() == "/console/sign-in", f"signing out led to {path()}")
    driver.get(url(f"/tenants/{T}/"))
    wait_for("form#sign-in")
    check(path() == "/console/sign-in", f"after signing out the tenant home shows {path()}")
    status, headers, _ = fetch(f"/tenants/{T}/", {"itaku_session": old["itaku_session"]})
    redirects_to_sign_in(status, headers, "the ended session")


def test_reviewer_tenants_search_verify_review():
    sign_in(KEYS["REVIEWER"], "table#tenants")
    check(path() == "/console/tenants", f"the reviewer landed on {path()}")
    names = sorted(a.text.strip() for a in finds("table#tenants a.tenant-link"))
    check(names == [T, OTHER], f"the reviewer sees tenants {names}")
    look("reviewer-tenants")
    visit(f"/tenants/{T}/", "a#link-access-log")
    check(not finds("a#link-datasets") and not finds("a#link-purposes"), "the reviewer is offered datasets or purposes")
    status, _, _ = fetch(f"/tenants/{T}/datasets", cookies())
    check(status in (403, 404), f"the reviewer's datasets page answered {status}")
    visit(f"/tenants/{T}/access-log?operation=lookup&limit=100", "table#entries")
    check(len(rows()) >= 5, f"the reviewer sees {len(rows())} lookups of {T}")
    # Across tenants: each tenant's seeding entry, and both together in one search.
    visit("/access-log", "form#search")
    check(find("form#search").find_elements(By.NAME, "tenant"), "the reviewer's search has no tenant field")
    counts = {}
    for tenant in (T, OTHER, ""):
        visit("/access-log?" + urllib.parse.urlencode({"tenant": tenant, "operation": "configure", "limit": "100"}), "form#search")
        counts[tenant] = len(rows())
    check(counts[T] >= 1 and counts[OTHER] >= 1, f"configure entries per tenant: {counts}")
    check(counts[""] >= counts[T] + counts[OTHER], f"the all-tenant search misses entries: {counts}")
    visit("/access-log?" + urllib.parse.urlencode({"tenant": T, "operation": "lookup", "limit": "100"}), "table#entries")
    check(len(rows()) >= 5, f"the reviewer's cross-tenant search finds {len(rows())} lookups of {T}")
    look("reviewer-access-log")
    check_page("/access-log")
    click_to("form#verify button#verify-button", "#verify-result", timeout=300)
    check(finds("table#verified-streams tr td"), "table#verified-streams has no rows")
    check(finds("#checkpoints-checked"), "no #checkpoints-checked")
    look("verify")
    visit("/access-log?operation=review&limit=100", "form#search")
    check(rows(), "viewing the log wrote no review entries")
    sign_out()


def test_other_client_admin_sees_only_its_tenant():
    sign_in(KEYS["OTHER_CLIENT_ADMIN"], "a#link-datasets")
    check(path() == f"/console/tenants/{OTHER}/", f"the kobe client admin landed on {path()}")
    visit("/tenants", "table#tenants")
    names = [a.text.strip() for a in finds("table#tenants a.tenant-link")]
    check(names == [OTHER], f"the kobe client admin sees tenants {names}")
    look("kobe-tenants")
    check_page(f"/tenants/{T}/", 404)
    visit(f"/tenants/{T}/", "p.error-code")
    check(error_code() == "not_found", f"acme-retail shows {error_code()!r} to kobe's admin")
    sign_out()


TESTS = [
    test_sign_in_page_and_wrong_key,
    test_client_admin_sign_in_and_tenants,
    test_foreign_and_missing_tenant_identical_404,
    test_datasets,
    test_purposes_edit_and_diff,
    test_roster_escaping_and_csv,
    test_access_log_search_paging_detail_exports,
    test_charts,
    test_report_pdf_and_csv,
    test_language_switch,
    test_csrf_refusals,
    test_sign_out,
    test_reviewer_tenants_search_verify_review,
    test_other_client_admin_sees_only_its_tenant,
]


# ---- the runner -------------------------------------------------------------------------------

def start_browser():
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800", "--disable-gpu"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": "ja"})
    browser = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))
    browser.set_page_load_timeout(300)
    browser.set_window_size(1280, 800)
    # Screenshots are of the viewport: make that 1280×800, whatever the window's frame takes.
    inner = browser.execute_script("return [window.innerWidth, window.innerHeight]")
    if inner != [1280, 800]:
        browser.set_window_size(1280 + 1280 - inner[0], 800 + 800 - inner[1])
    return browser


def reason(error):
    text = getattr(error, "msg", None) or str(error)
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0].strip() if lines else ''}"


def main():
    global driver
    os.makedirs(SHOTS, exist_ok=True)
    try:
        driver = start_browser()
    except Exception as error:  # noqa: BLE001 - any start failure is one failed test
        print(f"FAIL start_browser: {reason(error)}", flush=True)
        print("console: 0 passed, 1 failed", flush=True)
        return 1
    passed = failed = 0
    try:
        for test in TESTS:
            name = test.__name__.removeprefix("test_")
            try:
                test()
            except Exception as error:  # noqa: BLE001 - the runner reports every failure
                failed += 1
                try:
                    driver.switch_to.alert.dismiss()
                except Exception:  # noqa: BLE001
                    pass
                try:
                    at = driver.current_url
                    driver.save_screenshot(os.path.join(SHOTS, f"FAIL-{name}.png"))
                except Exception:  # noqa: BLE001
                    at = "?"
                print(f"FAIL {name}: {reason(error)} (at {at})", flush=True)
            else:
                passed += 1
                print(f"ok {name}", flush=True)
    finally:
        driver.quit()
    print(f"console: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
