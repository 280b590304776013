"""Machine totals by namespace and status, kept by a trigger, for the `celgate_machines` gauge.

Counting machines per scrape would read every row (a million and more). Instead a trigger adds
a +1/-1 row to `machine_count_deltas` whenever a machine appears, disappears or changes status;
inserts only, so concurrent steps never wait on a shared counter row. A scrape adds the deltas
to `machine_counts` and reads the few rows there. Steps that leave the status alone (nearly
all of them) do not fire the trigger at all (`UPDATE OF status`).

Revision ID: 0005_operate
Revises: 0003_cashback_rates
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_operate"
down_revision = "0003_cashback_rates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "machine_counts",
        sa.Column("namespace", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "machine_count_deltas",
        sa.Column("namespace", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("delta", sa.Integer, nullable=False),
    )
    # Each scrape deletes what it folded: vacuum soon, so reads step over few dead rows.
    op.execute("ALTER TABLE machine_count_deltas SET (autovacuum_vacuum_threshold = 1000, "
               "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_insert_threshold = 1000)")
    op.execute("""
        CREATE FUNCTION machine_count_delta() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'UPDATE' AND OLD.status = NEW.status AND OLD.namespace = NEW.namespace
            THEN
                RETURN NULL;
            END IF;
            IF TG_OP IN ('UPDATE', 'DELETE') THEN
                INSERT INTO machine_count_deltas VALUES (OLD.namespace, OLD.status, -1);
            END IF;
            IF TG_OP IN ('UPDATE', 'INSERT') THEN
                INSERT INTO machine_count_deltas VALUES (NEW.namespace, NEW.status, 1);
            END IF;
            RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER machines_count AFTER INSERT OR DELETE OR UPDATE OF status, namespace
        ON machines FOR EACH ROW EXECUTE FUNCTION machine_count_delta()
    """)
    op.execute("""
        INSERT INTO machine_counts (namespace, status, count)
        SELECT namespace, status, count(*) FROM machines GROUP BY namespace, status
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER machines_count ON machines")
    op.execute("DROP FUNCTION machine_count_delta()")
    op.drop_table("machine_count_deltas")
    op.drop_table("machine_counts")
