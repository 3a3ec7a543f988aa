"""The account's page and the parts of it that refresh themselves read `accounts` only by the account's id.

Counted per class (a GROUP BY over every account) on each page, the class choices alone cost a pass over the
whole table: at 1,000,000 accounts about 40 ms of CPU on every super admin's account page, and again in each
refresh of its status card, people and timeline. tests/test_query_plans.py's check does not see that pass
(`customer_class_id IS NOT NULL` is a range on the class index), so this one asks for a primary-key lookup.
"""
import re

from tests.test_query_plans import captured, explain  # noqa: F401  (captured is a fixture)


def reads_beyond_the_account(plan):
    """The plan lines that read accounts other than by primary key."""
    bad = []
    for n, line in enumerate(plan):
        text = line.strip().lstrip("->").strip()
        if re.match(r"(SCAN|SEARCH) accounts\b", text):  # SQLite
            if "USING INTEGER PRIMARY KEY (rowid=?)" not in text:
                bad.append(line)
        elif re.search(r"\bon accounts\b", text):  # PostgreSQL
            by_key = re.match(r"Index Scan using pk_accounts on accounts", text) or (
                text.startswith("Bitmap Heap Scan on accounts")  # (the same lookup, as a bitmap of one)
                and any(re.search(r"Bitmap Index Scan on pk_accounts\b", f) for f in plan[n + 1:n + 4]))
            if not (by_key and any(re.search(r"Index Cond: \(id = ", f) for f in plan[n + 1:n + 4])):
                bad.append(line)
    return bad


def test_the_account_page_and_its_parts_read_only_the_account(app, world, make, auth, client, captured):  # noqa: F811
    make.customer_class()
    auth.login(world.admin.email)  # a super admin: the page offers the class choices
    captured.clear()
    for path in ("", "/status-card", "/people", "/timeline"):
        response = client.get(f"/accounts/{world.account}{path}", headers={"HX-Request": "true"} if path else {})
        assert response.status_code == 200
        if not path:
            assert 'name="customer_class"' in response.get_data(as_text=True)
    assert captured
    problems = []
    for statement, parameters in captured:
        plan = explain(app, statement, parameters)
        if reads_beyond_the_account(plan):
            problems.append(f"{' '.join(statement.split())[:200]}\n    plan: {plan}")
    assert not problems, "queries reading more than the account:\n" + "\n".join(problems)
