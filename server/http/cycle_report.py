"""A coaching cycle's printable report (`GET /api/cycles/{id}/report.html`, docs/cycles.md).

It is for the teacher's portfolio: a record kept, printed or handed on long after the cycle
closed, so it is one self-contained HTML document (inline style, no script, nothing fetched)
that still reads the same when opened years later off-line. It is built from what the cycle's
page shows (`whole`, server/http/cycle_view.py), so the two never disagree, and it is read by
exactly those who may read the JSON export: the cycle's people and those the teacher shared
the closed cycle with.

Everything a person wrote (the focus, notes, action steps, names, titles) is escaped: the
report is served from the app's own origin, and the strict Content-Security-Policy is only the
second line of defence.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from server.cycles.model import ACTION_STATUSES
from server.http.cycle_view import whole
from server.http.cycles import cycle_for
from server.http.request import worker_of
from server.http.signed_in import require_person

# `whole()` is plain JSON-shaped data (what the cycle page reads); the report only reads it.
View = Mapping[str, Any]

HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Nothing but the inline style may run or load: a note that slipped past escaping still
    # could not script, fetch, or post anywhere.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
}

# English month names rather than strftime's %B, which follows the server's locale.
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

NONE = "—"

STYLE = """
body { font: 11pt/1.45 Georgia, "Times New Roman", serif; color: #1a1a1a; max-width: 50rem;
  margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; }
h2 { font-size: 1.2rem; border-bottom: 1px solid #999; margin: 1.8rem 0 .6rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; }
th, td { border: 1px solid #bbb; padding: .25rem .45rem; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; }
dt { font-weight: bold; }
dd { margin: 0; }
ul.evidence { margin: .3rem 0 0; padding-left: 1.2rem; font-size: .92em; }
.moment { font-variant-numeric: tabular-nums; font-weight: bold; }
.tags, .descriptor, .muted { color: #555; }
.action { margin: 0 0 .9rem; }
footer { margin-top: 2rem; font-size: .85em; color: #555; }
@page { margin: 18mm 15mm; }
@media print {
  body { margin: 0; max-width: none; padding: 0; color: #000; }
  th { background: none; }
  table, tr, .action, .lesson, dl { break-inside: avoid; page-break-inside: avoid; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def day(timestamp: float) -> str:
    """'5 December 2026', in UTC so the same report reads the same wherever it is printed."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return f"{moment.day} {MONTHS[moment.month - 1]} {moment.year}"


def clock(seconds: float) -> str:
    """A moment of a lesson as its player shows it: m:ss, or h:mm:ss past an hour."""
    whole_seconds = int(seconds)
    hours, rest = divmod(whole_seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def number(value: float | None) -> str:
    """A rate or a ratio; none when it has no meaning (no length known, nothing to divide by)."""
    return NONE if value is None else f"{value:.2f}"


def table(head: Iterable[str], rows: Iterable[Iterable[str]], numeric: int = 0) -> str:
    """Cells are HTML already; the last `numeric` columns are right-aligned figures."""
    heads = list(head)
    first_figure = len(heads) - numeric
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{cell}</td>' if i >= first_figure else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    header = "".join(f"<th>{cell}</th>" for cell in heads)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def section(title: str, content: str) -> str:
    return f"<section><h2>{esc(title)}</h2>{content or '<p class=muted>None.</p>'}</section>"


def name_of(view: View, person: str) -> str:
    return str(view["names"].get(person, person))


def lesson_title(view: View, video: str | None) -> str | None:
    info = view["lesson_info"].get(video) if video else None
    return None if info is None else str(info["title"])


def tag_labels(view: View) -> dict[str, str]:
    return {t["id"]: t["label"] for t in view["framework_info"]["tags"]}


def summary(view: View) -> str:
    coaches = ", ".join(esc(name_of(view, c)) for c in view["coaches"]) or NONE
    criteria = "".join(f"<li>{esc(c)}</li>" for c in view["success_criteria"])
    rows = [
        ("Teacher", esc(name_of(view, view["teacher"]))),
        ("Coaches", coaches),
        ("Status", esc(view["status"])),
        ("Created", esc(day(view["created"]))),
        ("Framework", esc(view["framework_info"]["name"])),
        ("Success criteria", f"<ul>{criteria}</ul>" if criteria else NONE),
    ]
    facts = "".join(f"<dt>{term}</dt><dd>{value}</dd>" for term, value in rows)
    return (
        f"<header><p class=muted>Coaching cycle</p><h1>{esc(view['focus'])}</h1>"
        f"<dl>{facts}</dl></header>"
    )


def sessions(view: View) -> str:
    rows = [
        (str(i), esc(s["kind"]), esc(day(s["created"])), esc(lesson_title(view, s["video"]) or ""))
        for i, s in enumerate(view["sessions"], 1)
    ]
    return section("Sessions", table(("#", "Kind", "Date", "Lesson"), rows) if rows else "")


def lessons(view: View) -> str:
    rows = [
        (esc(info["title"]), clock(info["duration_s"]) if info["duration_s"] else NONE)
        for info in view["lesson_info"].values()
    ]
    return section("Lessons", table(("Lesson", "Length"), rows, numeric=1) if rows else "")


def evidence(view: View, note_ids: Iterable[str]) -> str:
    """The notes cited, each at its moment of its lesson; a note of a deleted lesson is gone
    from `view["evidence"]`, so it is simply not listed."""
    labels = tag_labels(view)
    items = []
    for note_id in note_ids:
        note = view["evidence"].get(note_id)
        if note is None:
            continue
        title = lesson_title(view, note["video"])
        where = f"{esc(title)}, " if title else ""
        tags = ", ".join(esc(labels.get(t, t)) for t in note["tags"])
        items.append(
            f'<li>{where}<span class="moment">{clock(note["start"])}</span> {esc(note["text"])}'
            + (f' <span class="tags">[{tags}]</span>' if tags else "")
            + "</li>"
        )
    return f'<ul class="evidence">{"".join(items)}</ul>' if items else ""


def actions(view: View) -> str:
    steps = []
    for action in view["actions"]:
        author = view["names"].get(action["author"]) or action.get("author_name") or NONE
        steps.append(
            f'<div class="action"><p><strong>{esc(action["text"])}</strong><br>'
            f'<span class="muted">{esc(action["status"])}, by {esc(author)}</span></p>'
            f"{evidence(view, action['evidence'])}</div>"
        )
    counts = view["progress"]["actions"]
    by_status = table(
        ACTION_STATUSES,
        [[str(counts.get(s, 0)) for s in ACTION_STATUSES]],
        numeric=len(ACTION_STATUSES),
    )
    return section("Action steps", "".join(steps) + "<h3>By status</h3>" + by_status)


def scorers(view: View, scores: Iterable[Mapping[str, Any]]) -> list[str]:
    """The teacher first, then the coaches, then anyone else who scored: in columns."""
    scored = {s["scorer"] for s in scores}
    order = [view["teacher"], *view["coaches"], *sorted(scored)]
    return [p for p in dict.fromkeys(order) if p in scored]


def scorer_heading(view: View, person: str) -> str:
    role = "teacher" if person == view["teacher"] else "coach"
    return f'{esc(name_of(view, person))} <span class="muted">({role})</span>'


def level_cell(criterion: Mapping[str, Any], score: Mapping[str, Any] | None, view: View) -> str:
    if score is None:
        return f'<span class="muted">{NONE}</span>'
    descriptor = next(
        (lv["descriptor"] for lv in criterion["levels"] if lv["level"] == score["level"]), ""
    )
    return (
        f"<strong>{esc(score['level'])}</strong> "
        f'<span class="descriptor">{esc(descriptor)}</span>{evidence(view, score["evidence"])}'
    )


def scores(view: View) -> str:
    """Each scorer's level in a column of its own: the teacher's self-score and a coach's are
    two views of the lesson, never one number."""
    rubric = view["framework_info"]["rubric"]
    if rubric is None:
        return section("Rubric scores", "<p class=muted>The framework has no rubric.</p>")
    parts = []
    for video, info in view["lesson_info"].items():
        given = [s for s in view["scores"] if s["video"] == video]
        if not given:
            continue
        people = scorers(view, given)
        by = {(s["scorer"], s["criterion"]): s for s in given}
        head = ["Criterion", *(scorer_heading(view, p) for p in people)]
        rows = [
            [esc(c["label"]), *(level_cell(c, by.get((p, c["id"])), view) for p in people)]
            for c in rubric["criteria"]
        ]
        parts.append(f'<div class="lesson"><h3>{esc(info["title"])}</h3>{table(head, rows)}</div>')
    return section("Rubric scores", "".join(parts))


def tag_figures(view: View) -> str:
    """Per lesson, so lessons of different lengths compare: rates are per 10 minutes."""
    labels = tag_labels(view)
    ratio_labels = {r["id"]: r["label"] for r in view["framework_info"]["ratios"]}
    parts = []
    for lesson in view["progress"]["lessons"]:
        title = lesson_title(view, lesson["video"]) or lesson["video"]
        tags = [
            (esc(labels.get(tag, tag)), str(f["count"]), number(f["per_10_min"]))
            for tag, f in lesson["tags"].items()
        ]
        ratios = [
            (esc(ratio_labels.get(ratio, ratio)), number(value))
            for ratio, value in lesson["ratios"].items()
        ]
        parts.append(
            f'<div class="lesson"><h3>{esc(title)}</h3>'
            + table(("Tag", "Count", "Per 10 minutes"), tags, numeric=2)
            + (table(("Ratio", "Value"), ratios, numeric=1) if ratios else "")
            + "</div>"
        )
    return section("Tags and ratios by lesson", "".join(parts))


def document(view: View) -> str:
    body = "".join(
        (
            summary(view),
            sessions(view),
            lessons(view),
            actions(view),
            scores(view),
            tag_figures(view),
        )
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Coaching cycle: {esc(view['focus'])}</title><style>{STYLE}</style></head>"
        f"<body>{body}<footer>From cocoach, {esc(day(time.time()))}. Dates are UTC.</footer>"
        "</body></html>\n"
    )


async def report_html(request: Request) -> Response:
    worker = worker_of(request)
    me = await require_person(request)
    cycle = await cycle_for(request, me, report=True)
    disposition = "attachment" if request.query_params.get("download") == "1" else "inline"
    headers = {
        **HEADERS,
        "Content-Disposition": f'{disposition}; filename="cocoach-cycle-{cycle.id}.html"',
    }
    return HTMLResponse(document(await whole(worker, cycle)), headers=headers)
