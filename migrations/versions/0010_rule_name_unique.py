"""rule names are unique whatever their case: a unique index on lower(name)

Rules saved before this one may share a name (in any case, or with spaces around it): the later ones are renamed
"<name> (2)", "(3)", ... (trimmed, oldest keeps its name) so the index can be built; each rename is printed.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 18:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def _rename_duplicates(conn):
    rows = conn.execute(sa.text("SELECT id, name FROM suspension_rules ORDER BY id")).all()
    taken = {(name or "").strip().lower() for _id, name in rows}
    seen = set()
    for rule_id, name in rows:
        clean = (name or "").strip()
        key = clean.lower()
        if key not in seen:
            seen.add(key)
            if clean != name:
                conn.execute(sa.text("UPDATE suspension_rules SET name = :name WHERE id = :id"),
                             {"name": clean, "id": rule_id})
            continue
        number = 2
        while f"{clean} ({number})".lower() in taken | seen:
            number += 1
        new = f"{clean[:100 - len(f' ({number})')]} ({number})"
        print(f"Rule #{rule_id} {name!r} shares its name with an older rule: renamed {new!r}.")
        conn.execute(sa.text("UPDATE suspension_rules SET name = :name WHERE id = :id"), {"name": new, "id": rule_id})
        seen.add(new.lower())


def upgrade():
    _rename_duplicates(op.get_bind())
    with op.batch_alter_table('suspension_rules', schema=None) as batch_op:
        batch_op.create_index('ux_suspension_rules_name_lower', [sa.text('lower(name)')], unique=True)


def downgrade():
    with op.batch_alter_table('suspension_rules', schema=None) as batch_op:
        batch_op.drop_index('ux_suspension_rules_name_lower')
