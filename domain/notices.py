"""What a reminder or an escalation says: the texts of the notifications the relay delivers.

One notice per person told, in their language (`Person.language`, Chinese by default): what
is late or due, since when, for which customer (a visit) or which month (a plan), the
escalation level, and what to do next, with the `visits` command that does it. The
subject is short; the body comes as plain text, HTML (every value escaped) and Markdown
(for the DingTalk and WeCom robots). Pure: the relay gathers the facts.
"""

import html
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from domain.calendar import local_text
from domain.deadlines import CHECK_IN, PLAN_APPROVAL, REPORT
from domain.month_plan import PLAN_CONCERN
from domain.people import Language
from domain.state import ITEM_PREFIX

# Concerns the deadline rules added later than the keys imported above; a concern without a
# template of its own still gets a notice, built around the event's own sentence.
REVIEW = "review"
PLAN_REVIEW = "plan_review"


class NoticeFacts(BaseModel):
    """Everything a notice says, gathered by the relay from the outbox row, the stream's
    read model and the directory."""

    model_config = ConfigDict(frozen=True)

    stream: Literal["visit", "plan"]
    stream_id: str
    kind: Literal["reminder", "escalation"]
    level: int | None = None
    concern: str
    due_at: datetime
    message: str
    """The event's own sentence (English): the body of a concern without a template."""
    timezone: str
    at: datetime
    """When the notice is written: how late the thing is is counted up to here."""
    customer_name: str | None = None
    month: str | None = None
    owner_id: str | None = None
    """Who owes the thing (the rep; the manager for an approval or a review)."""
    owner_name: str | None = None
    recipient_id: str
    recipient_role: str
    recipient_name: str
    standing_in_for: str | None = None
    """The absent person (name and id) whose notification a deputy receives."""
    standing_in_for_id: str | None = None
    """That absent person's id: the deputy's commands act for them (`--for`)."""
    key: str = ""
    """The notification's idempotency key, shown so a person can tell a repeat."""


class Notice(BaseModel):
    """One rendered notification."""

    model_config = ConfigDict(frozen=True)

    language: Language
    subject: str
    text: str
    html: str
    markdown: str


_WORDS = {
    Language.zh: {
        "what": "事项",
        "visit": "拜访",
        "plan": "月度计划",
        "customer": "客户",
        "month": "月份",
        "owner": "负责人",
        "due": "截止时间",
        "late": "已逾期",
        "level": "升级级别",
        "for": "代理",
        "next": "下一步",
        "hello": "{name}，您好：",
        "deputy": "{absent} 不在岗期间，由您代为处理。",
        "reminder_head": "提醒：{what}将于 {due} 到期。",
        "escalation_head": "逾期（第 {level} 级升级）：{what}已于 {due} 到期，至今未完成（已逾期 {late}）。",
        "reminder_subject": "【提醒】{what}",
        "escalation_subject": "【逾期·{level}级】{what}",
        "footer": "此消息由 visitflow 自动发送；同一通知可能重复送达，编号相同者请忽略重复。",
        "key": "通知编号：{key}",
        "colon": "：",
        "days": "{n} 天",
        "hours": "{n} 小时",
        "minutes": "{n} 分钟",
        "sep": " ",
    },
    Language.en: {
        "what": "What",
        "visit": "Visit",
        "plan": "Monthly plan",
        "customer": "Customer",
        "month": "Month",
        "owner": "Owed by",
        "due": "Due",
        "late": "Overdue by",
        "level": "Escalation level",
        "for": "Standing in for",
        "next": "Next step",
        "hello": "Hello {name},",
        "deputy": "You receive this while {absent} is away.",
        "reminder_head": "Reminder: the {what} is due by {due}.",
        "escalation_head": (
            "Overdue (escalation level {level}): the {what} was due by {due} and is still outstanding "
            "({late} late)."
        ),
        "reminder_subject": "Reminder: {what}",
        "escalation_subject": "Overdue (level {level}): {what}",
        "footer": "Sent by visitflow. A notification may arrive twice; ignore a repeat with the same id.",
        "key": "Notification id: {key}",
        "colon": ": ",
        "days": "{n} d",
        "hours": "{n} h",
        "minutes": "{n} min",
        "sep": " ",
    },
}


def _what(f: NoticeFacts, lang: Language) -> str:
    """The thing due or late, in a few words."""
    zh = lang is Language.zh
    customer = f.customer_name or f.stream_id
    month = f.month or f.stream_id
    c = f.concern
    if c == REPORT:
        return f"拜访报告（{customer}）" if zh else f"visit report ({customer})"
    if c == REVIEW:
        return f"拜访报告审阅（{customer}）" if zh else f"review of the visit report ({customer})"
    if c == PLAN_APPROVAL:
        return f"拜访计划审批（{customer}）" if zh else f"approval of the visit plan ({customer})"
    if c == CHECK_IN:
        return f"拜访签到（{customer}）" if zh else f"check-in of the visit ({customer})"
    if c.startswith(ITEM_PREFIX):
        item = c.removeprefix(ITEM_PREFIX)
        return f"承诺事项 {item}（{customer}）" if zh else f"promised item {item} ({customer})"
    if c == PLAN_CONCERN:
        return f"{month} 月度拜访计划" if zh else f"visit plan for {month}"
    if c == PLAN_REVIEW:
        return f"{month} 月度拜访计划审批" if zh else f"review of the visit plan for {month}"
    return f"{c}（{f.stream_id}）" if zh else f"{c} ({f.stream_id})"


def _owner(f: NoticeFacts) -> str:
    return f.owner_name or f.owner_id or "-"


def _next_step(f: NoticeFacts, lang: Language) -> tuple[str, str | None]:
    """What the person told should do next, and the `visits` command for it (or None)."""
    zh = lang is Language.zh
    v, owner, who = f.stream_id, f.owner_id or "OWNER", f"{f.recipient_role}:{f.recipient_id}"
    if f.standing_in_for_id:
        who += f" --for {f.standing_in_for_id}"  # a deputy acts with the absent manager's authority
    show = f"visits show {v}"
    c, owes = f.concern, f.kind == "reminder"
    if f.stream == "plan":
        rep, month = (f.owner_id or "REP"), (f.month or "YYYY-MM")
        if f.month and f.stream_id.endswith(f"-{f.month}"):
            rep = f.stream_id.removesuffix(f"-{f.month}")
        plan_show = f"visits plan show {rep} {month}"
        if c == PLAN_CONCERN:
            if owes:
                return (
                    "请提交月度拜访计划" if zh else "Submit your visit plan for the month",
                    f"visits plan submit {rep} {month} --as rep:{rep} --visit 'ID|CUSTOMER|AT|MIN|PURPOSE'",
                )
            return (f"请督促 {_owner(f)} 提交月度计划" if zh else f"Ask {_owner(f)} for the plan", plan_show)
        if c == PLAN_REVIEW:
            if owes:
                return (
                    "请审批月度计划：批准或退回修改" if zh else "Review the plan: approve it or return it",
                    f"visits plan approve {rep} {month} --as {who}",
                )
            return (
                f"请督促 {_owner(f)} 审批月度计划" if zh else f"Ask {_owner(f)} to review the plan",
                plan_show,
            )
        return (f.message, plan_show)
    if c == REPORT:
        if owes:
            return (
                "请提交拜访报告" if zh else "Submit the visit report",
                f"visits report {v} --as rep:{owner} --outcome '...'",
            )
        return (
            f"请督促 {_owner(f)} 提交拜访报告；确实无需报告的，可豁免并说明理由"
            if zh
            else f"Ask {_owner(f)} for the report, or waive it with a reason",
            f"visits waive {v} --as {who} --reason '...'",
        )
    if c == REVIEW:
        if owes:
            return (
                "请审阅拜访报告：接受或退回修改" if zh else "Review the report: accept it or return it",
                f"visits accept-report {v} --as {who}",
            )
        return (f"请督促 {_owner(f)} 审阅报告" if zh else f"Ask {_owner(f)} to review the report", show)
    if c == PLAN_APPROVAL:
        return (
            "请审批拜访计划：批准、退回或拒绝" if zh else "Decide on the plan: approve, return or reject it",
            f"visits approve {v} --as {who}",
        )
    if c == CHECK_IN:
        if owes:
            return (
                "请登记拜访签到" if zh else "Record the visit (check in)",
                f"visits check-in {v} --as rep:{owner} --start ... --end ...",
            )
        return (
            f"请向 {_owner(f)} 核实拜访是否进行" if zh else f"Ask {_owner(f)} whether the visit took place",
            show,
        )
    if c.startswith(ITEM_PREFIX):
        item = c.removeprefix(ITEM_PREFIX)
        if owes:
            return (
                "请完成对客户的承诺并登记结果" if zh else "Keep the promise and record how",
                f"visits complete-item {v} --item {item} --as rep:{owner} --resolution '...' --reply '...'",
            )
        return (
            f"请督促 {_owner(f)} 兑现对客户的承诺" if zh else f"Ask {_owner(f)} to keep the promise",
            show,
        )
    return (f.message, show)


def _duration(length: timedelta, lang: Language) -> str:
    words = _WORDS[lang]
    minutes = max(0, int(length.total_seconds()) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [
        words[unit].format(n=n) for n, unit in ((days, "days"), (hours, "hours"), (minutes, "minutes")) if n
    ]
    return words["sep"].join(parts[:2]) or words["minutes"].format(n=0)


ALL_FORMATS = frozenset({"text", "html", "markdown"})


def render(
    facts: NoticeFacts, language: Language = Language.zh, formats: frozenset[str] = ALL_FORMATS
) -> Notice:
    """The notice `facts` make in `language`: the subject, and of plain text, HTML and
    Markdown those `formats` names (a channel asks for what it sends; the others stay "")."""
    words = _WORDS[language]
    what = _what(facts, language)
    due = local_text(facts.due_at, facts.timezone)
    if facts.kind == "reminder":
        subject = words["reminder_subject"].format(what=what)
        head = words["reminder_head"].format(what=what, due=due)
    else:
        late = _duration(facts.at - facts.due_at, language)
        subject = words["escalation_subject"].format(what=what, level=facts.level)
        head = words["escalation_head"].format(what=what, due=due, level=facts.level, late=late)
    rows: list[tuple[str, str]] = [(words["what"], what)]
    if facts.stream == "visit":
        rows.append((words["visit"], facts.stream_id))
        if facts.customer_name:
            rows.append((words["customer"], facts.customer_name))
    else:
        rows.append((words["plan"], facts.stream_id))
        if facts.month:
            rows.append((words["month"], facts.month))
    if facts.owner_id:
        name = facts.owner_name
        rows.append(
            (
                words["owner"],
                f"{name} ({facts.owner_id})" if name and name != facts.owner_id else facts.owner_id,
            )
        )
    rows.append((words["due"], due))
    if facts.kind == "escalation":
        rows.append((words["late"], _duration(facts.at - facts.due_at, language)))
        rows.append((words["level"], str(facts.level)))
    if facts.standing_in_for:
        rows.append((words["for"], facts.standing_in_for))
    step, command = _next_step(facts, language)
    hello = words["hello"].format(name=facts.recipient_name)
    deputy = words["deputy"].format(absent=facts.standing_in_for) if facts.standing_in_for else None

    text_lines = [hello, ""]
    if deputy:
        text_lines += [deputy, ""]
    text_lines += [head, ""]
    colon = words["colon"]
    text_lines += [f"{label}{colon}{value}" for label, value in rows]
    text_lines += ["", f"{words['next']}{colon}{step}"]
    if command:
        text_lines.append(f"  {command}")
    footer = [words["footer"]] + ([words["key"].format(key=facts.key)] if facts.key else [])
    text_lines += ["", *footer]
    text = "\n".join(text_lines) + "\n" if "text" in formats else ""
    html_body = (
        _html(language, hello, deputy, head, rows, step, command, footer, colon) if "html" in formats else ""
    )
    markdown = ""
    if "markdown" in formats:
        md = _markdown_safe
        md_lines = [f"### {md(subject)}", "", md(head), ""]
        if deputy:
            md_lines += [md(deputy), ""]
        md_lines += [f"- **{md(label)}**{colon}{md(value)}" for label, value in rows]
        md_lines += ["", f"**{md(words['next'])}**{colon}{md(step)}"]
        if command:
            md_lines += ["", "`" + command.replace("`", "'") + "`"]
        markdown = "\n".join(md_lines)
    return Notice(
        language=language, subject=" ".join(subject.split()), text=text, html=html_body, markdown=markdown
    )


def _html(
    language: Language,
    hello: str,
    deputy: str | None,
    head: str,
    rows: list[tuple[str, str]],
    step: str,
    command: str | None,
    footer: list[str],
    colon: str,
) -> str:
    words = _WORDS[language]
    e = html.escape
    html_rows = "".join(
        f'<tr><th align="left">{e(label)}</th><td>{e(value)}</td></tr>' for label, value in rows
    )
    html_parts = [f"<p>{e(hello)}</p>"]
    if deputy:
        html_parts.append(f"<p>{e(deputy)}</p>")
    html_parts += [
        f"<p><strong>{e(head)}</strong></p>",
        f"<table>{html_rows}</table>",
        f"<p>{e(words['next'])}{e(colon)}{e(step)}</p>",
    ]
    if command:
        html_parts.append(f"<pre><code>{e(command)}</code></pre>")
    html_parts.append(f"<p><small>{'<br>'.join(e(line) for line in footer)}</small></p>")
    lang_attr = "zh-CN" if language is Language.zh else "en"
    return (
        f'<!DOCTYPE html>\n<html lang="{lang_attr}"><body>\n' + "\n".join(html_parts) + "\n</body></html>\n"
    )


def _markdown_safe(text: str) -> str:
    """Text for the robots' Markdown: no tags (nor a WeCom mention) and no code spans by accident.

    Neither robot documents backslash escapes, so emphasis characters are left as they are.
    """
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")
